/**
 * Parsing of `s3://` and `b2://` remote URLs and settings, and the credentials lookup in an injected
 * environment (the engine never reads process.env). No SDK imports here: the registry and tests can parse
 * a URL without loading the AWS SDK.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError } from '../../errors.js'
import { mergeSettings, settingBool, settingNumber, settingString, type RemoteSettings } from '../registry.js'

const MiB = 1024 * 1024

/** Storage classes S3 defines (a compatible server may accept fewer). */
export const S3_STORAGE_CLASSES: readonly string[] = [
  'STANDARD', 'REDUCED_REDUNDANCY', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER', 'DEEP_ARCHIVE',
  'GLACIER_IR', 'OUTPOSTS', 'SNOW', 'EXPRESS_ONEZONE',
]

/** Classes whose objects must be restored (RestoreObject) before a GET can read them. */
export const RESTORE_CLASSES: ReadonlySet<string> = new Set(['GLACIER', 'DEEP_ARCHIVE'])

/** Which provider's price table applies (ArchiveAccess.provider). */
export type S3Provider = 'aws-s3' | 'b2' | 's3-compatible'

/** Whether exclusive puts use conditional writes (`If-None-Match: *`). */
export type ConditionalWrites = 'auto' | 'on' | 'off'

/** A parsed `s3://` or `b2://` location and its settings (`parseConfig`). */
export interface S3Config {
  scheme: 's3' | 'b2'
  bucket: string
  /** Key prefix of every object: '' or segments ending in '/' (`backups/host1/`). */
  prefix: string
  /** Custom endpoint (`http://127.0.0.1:9000`); undefined: AWS, found from the region. */
  endpoint?: string
  /** Region from the URL or settings; undefined: from AWS_REGION / AWS_DEFAULT_REGION / the profile, else us-east-1. */
  region?: string
  /** Path-style addressing (`endpoint/bucket/key`), needed by most local and compatible servers. */
  pathStyle: boolean
  /** Class of data packs (`storage_class`). */
  dataClass: string
  /** Class of every other object (`hot_storage_class`). */
  hotClass: string
  /** Mode of Object Lock retention set by `protection.protect` (`object_lock_mode`). */
  objectLockMode: 'COMPLIANCE' | 'GOVERNANCE'
  /** Multipart part size of `putFile` (`part_size`, at least 5 MiB). */
  partSizeBytes: number
  /** Parallel requests (`max_connections`). */
  maxConnections: number
  /** `conditional_writes`: auto (probe the server once), on (trust it), off (never send If-None-Match). */
  conditionalWrites: ConditionalWrites
  /** AWS profile of the shared config files (`profile`); else AWS_PROFILE; else `default`. */
  profile?: string
  provider: S3Provider
}

const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$/
const SEGMENT = /^[A-Za-z0-9._~!$&'()*+,;=:@-]+$/

/**
 * Parses `s3://bucket[/prefix][?settings]` or `b2://bucket[/prefix][?settings]`. Settings are the keys of
 * a named remote (`endpoint`, `region`, `path_style`, `storage_class`, `hot_storage_class`,
 * `object_lock_mode`, `part_size`, `max_connections`, `conditional_writes`, `profile`); URL query
 * parameters win over them. Does no I/O.
 *
 * @throws ConfigError for a malformed URL, credentials in the URL, or an invalid setting.
 */
export function parseConfig(url: string, settings: RemoteSettings = {}): S3Config {
  const m = /^(s3|b2):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?(#.*)?$/i.exec(url)
  if (!m) throw new ConfigError('S3 remote: expected s3://BUCKET[/PREFIX] or b2://BUCKET[/PREFIX]')
  const scheme = m[1].toLowerCase() as 's3' | 'b2'
  const authority = m[2]
  if (authority.includes('@')) {
    throw new ConfigError(`${scheme} remote: credentials in the URL are not supported: use ${scheme === 'b2' ? 'B2_APPLICATION_KEY_ID / B2_APPLICATION_KEY' : 'AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE'}`)
  }
  if (m[5] !== undefined) throw new ConfigError(`${scheme} remote: a URL fragment ('#...') is not allowed`)
  if (!BUCKET.test(authority)) throw new ConfigError(`${scheme} remote: invalid bucket name ${JSON.stringify(authority)}`)
  const prefix = parsePrefix(scheme, m[3] ?? '')
  const s = mergeSettings(url, settings)

  let endpoint = settingString(s, 'endpoint')
  let region = settingString(s, 'region')
  if (endpoint !== undefined) endpoint = parseEndpoint(scheme, endpoint)
  if (scheme === 'b2') {
    if (endpoint === undefined) {
      if (region === undefined) throw new ConfigError('b2 remote: set region (e.g. region=us-west-004, the part of the bucket\'s S3 endpoint s3.<region>.backblazeb2.com) or endpoint')
      if (!/^[a-z0-9-]+$/.test(region)) throw new ConfigError(`b2 remote: invalid region ${JSON.stringify(region)}`)
      endpoint = `https://s3.${region}.backblazeb2.com`
    } else if (region === undefined) {
      const r = /^s3\.([a-z0-9-]+)\.backblazeb2\.com$/i.exec(new URL(endpoint).hostname)
      if (!r) throw new ConfigError('b2 remote: set region (it cannot be read from this endpoint)')
      region = r[1].toLowerCase()
    }
  }
  const host = endpoint === undefined ? undefined : new URL(endpoint).hostname
  const provider: S3Provider = scheme === 'b2' ? 'b2' : host === undefined || /(^|\.)amazonaws\.com(\.cn)?$/i.test(host) ? 'aws-s3' : 's3-compatible'
  // Virtual-hosted style cannot work with an IP address or localhost: default to path style there.
  const localHost = host !== undefined && (/^[0-9.]+$/.test(host) || host.startsWith('[') || host === 'localhost')
  const pathStyle = settingBool(s, 'path_style', localHost)

  const dataClass = storageClass(scheme, s, 'storage_class')
  const hotClass = storageClass(scheme, s, 'hot_storage_class')
  if (RESTORE_CLASSES.has(hotClass)) throw new ConfigError(`${scheme} remote: hot_storage_class ${hotClass} would need a restore before listing snapshots; use STANDARD (or another class readable at once)`)

  const mode = (settingString(s, 'object_lock_mode') ?? 'COMPLIANCE').toUpperCase()
  if (mode !== 'COMPLIANCE' && mode !== 'GOVERNANCE') throw new ConfigError(`${scheme} remote: object_lock_mode must be COMPLIANCE or GOVERNANCE, got ${JSON.stringify(mode)}`)

  const partSizeBytes = parseSize(scheme, s.part_size, 8 * MiB)
  if (partSizeBytes < 5 * MiB || partSizeBytes > 5 * 1024 * MiB) throw new ConfigError(`${scheme} remote: part_size must be between 5 MiB and 5 GiB`)

  const maxConnections = settingNumber(s, 'max_connections', 16)
  if (!Number.isInteger(maxConnections) || maxConnections < 1 || maxConnections > 1024) throw new ConfigError(`${scheme} remote: max_connections must be a whole number from 1 to 1024`)

  const cw = settingString(s, 'conditional_writes') ?? 'auto'
  const conditionalWrites: ConditionalWrites = cw === 'auto' ? 'auto' : settingBool(s, 'conditional_writes', true) ? 'on' : 'off'

  return {
    scheme, bucket: authority, prefix, endpoint, region, pathStyle, dataClass, hotClass, objectLockMode: mode, partSizeBytes, maxConnections,
    conditionalWrites, profile: settingString(s, 'profile'), provider,
  }
}

function parsePrefix(scheme: string, path: string): string {
  const segments = path.split('/').filter((seg, i, all) => !(seg === '' && (i === 0 || i === all.length - 1)))
  const decoded = segments.map((seg) => {
    let d: string
    try {
      d = decodeURIComponent(seg)
    } catch {
      throw new ConfigError(`${scheme} remote: invalid percent-escape in the prefix`)
    }
    if (d === '' || d === '.' || d === '..' || !SEGMENT.test(d)) throw new ConfigError(`${scheme} remote: invalid prefix segment ${JSON.stringify(d)}`)
    return d
  })
  return decoded.length === 0 ? '' : `${decoded.join('/')}/`
}

function parseEndpoint(scheme: string, endpoint: string): string {
  let u: URL
  try {
    u = new URL(endpoint)
  } catch {
    throw new ConfigError(`${scheme} remote: endpoint is not a URL: ${JSON.stringify(endpoint)} (write it as http://HOST:PORT or https://HOST)`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`${scheme} remote: endpoint must be http:// or https://`)
  if (u.username !== '' || u.password !== '') throw new ConfigError(`${scheme} remote: credentials in the endpoint are not supported`)
  if (u.search !== '' || u.hash !== '') throw new ConfigError(`${scheme} remote: endpoint must not have a query or fragment`)
  return u.href.replace(/\/+$/, '')
}

function storageClass(scheme: string, s: RemoteSettings, key: string): string {
  const v = (settingString(s, key) ?? 'STANDARD').toUpperCase()
  if (!S3_STORAGE_CLASSES.includes(v)) throw new ConfigError(`${scheme} remote: unknown ${key} ${JSON.stringify(v)} (known: ${S3_STORAGE_CLASSES.join(', ')})`)
  if (scheme === 'b2' && v !== 'STANDARD') throw new ConfigError(`b2 remote: B2 has a single storage class: ${key} must be STANDARD`)
  return v
}

/** A size in bytes: a number, or `<n>[KiB|MiB|GiB]`. */
function parseSize(scheme: string, v: string | number | boolean | undefined, fallback: number): number {
  if (v === undefined || v === '') return fallback
  if (typeof v === 'number') return v
  const m = /^(\d+(?:\.\d+)?)\s*(|b|kib|k|mib|m|gib|g)$/i.exec(String(v).trim())
  if (!m) throw new ConfigError(`${scheme} remote: part_size: expected bytes or a size like 16MiB, got ${JSON.stringify(v)}`)
  const unit = m[2].toLowerCase()
  const mult = unit.startsWith('k') ? 1024 : unit.startsWith('m') ? MiB : unit.startsWith('g') ? 1024 * MiB : 1
  return Math.round(Number(m[1]) * mult)
}

/** Static credentials. */
export interface StaticCredentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string
}

/** Where the credentials come from (`resolveCredentials`). */
export type CredentialSource =
  | { kind: 'static'; credentials: StaticCredentials; from: string; region?: string }
  /** A profile the SDK resolves itself (assume-role, SSO, credential_process, web identity). */
  | { kind: 'sdk-profile'; profile: string; region?: string }
  /** Nothing found: the SDK's default chain (container and instance roles on AWS). */
  | { kind: 'sdk-chain' }

type Env = Readonly<Record<string, string | undefined>>

/**
 * Finds credentials for `config` in `env`, in this order:
 * 1. b2:// only: B2_APPLICATION_KEY_ID + B2_APPLICATION_KEY, or restic's B2_ACCOUNT_ID + B2_ACCOUNT_KEY;
 * 2. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
 * 3. the profile (`profile` setting, else AWS_PROFILE, else `default`) in the shared files
 *    (AWS_SHARED_CREDENTIALS_FILE, else $HOME/.aws/credentials; AWS_CONFIG_FILE, else $HOME/.aws/config):
 *    static keys are read here; a profile without keys (role_arn, sso_*, credential_process,
 *    web_identity_token_file) is left to the SDK, which resolves those itself;
 * 4. on AWS only, nothing found: the SDK's default chain (ECS container and EC2 instance roles).
 *
 * Also returns the profile's `region`, if any. Never puts a secret in a message.
 *
 * @throws ConfigError for half a key pair, a named profile that does not exist, or no credentials at all
 *   for a non-AWS endpoint.
 */
export function resolveCredentials(config: S3Config, env: Env): CredentialSource {
  if (config.scheme === 'b2') {
    const b2 = pair(env, 'B2_APPLICATION_KEY_ID', 'B2_APPLICATION_KEY') ?? pair(env, 'B2_ACCOUNT_ID', 'B2_ACCOUNT_KEY')
    if (b2) return { kind: 'static', credentials: b2.credentials, from: b2.from }
  }
  const aws = pair(env, 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY')
  if (aws) {
    const token = env.AWS_SESSION_TOKEN
    return { kind: 'static', credentials: { ...aws.credentials, ...(token ? { sessionToken: token } : {}) }, from: aws.from }
  }
  const named = config.profile ?? (env.AWS_PROFILE || undefined)
  const profile = named ?? 'default'
  const home = env.HOME
  const credFile = env.AWS_SHARED_CREDENTIALS_FILE || (home ? join(home, '.aws', 'credentials') : undefined)
  const confFile = env.AWS_CONFIG_FILE || (home ? join(home, '.aws', 'config') : undefined)
  const fromCred = credFile ? readIni(credFile)?.get(profile) : undefined
  const fromConf = confFile ? readIni(confFile)?.get(profile === 'default' ? 'default' : `profile ${profile}`) ?? (profile === 'default' ? undefined : readIni(confFile)?.get(profile)) : undefined
  const region = fromConf?.get('region')
  const keys = [fromCred, fromConf].find((sec) => sec?.get('aws_access_key_id') && sec.get('aws_secret_access_key'))
  if (keys) {
    const token = keys.get('aws_session_token')
    return {
      kind: 'static',
      credentials: { accessKeyId: keys.get('aws_access_key_id') as string, secretAccessKey: keys.get('aws_secret_access_key') as string, ...(token ? { sessionToken: token } : {}) },
      from: `profile ${profile}`,
      region,
    }
  }
  if (fromCred || fromConf) return { kind: 'sdk-profile', profile, region }
  if (named) throw new ConfigError(`${config.scheme} remote: AWS profile ${JSON.stringify(named)} not found in ${[credFile, confFile].filter(Boolean).join(' or ') || 'the shared AWS files (HOME is not set)'}`)
  if (config.provider !== 'aws-s3') {
    throw new ConfigError(config.scheme === 'b2'
      ? 'b2 remote: no credentials: set B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)'
      : `${config.scheme} remote: no credentials for ${config.endpoint}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with keys in ~/.aws/credentials`)
  }
  return { kind: 'sdk-chain' }
}

function pair(env: Env, idVar: string, secretVar: string): { credentials: StaticCredentials; from: string } | undefined {
  const id = env[idVar]
  const secret = env[secretVar]
  if (!id && !secret) return undefined
  if (!id || !secret) throw new ConfigError(`${idVar} and ${secretVar} must be set together (only ${id ? idVar : secretVar} is set)`)
  return { credentials: { accessKeyId: id, secretAccessKey: secret }, from: idVar }
}

/** An INI file as sections of keys (lower case), or undefined when it cannot be read. */
function readIni(file: string): Map<string, Map<string, string>> | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
  const out = new Map<string, Map<string, string>>()
  let section: Map<string, string> | undefined
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const head = /^\[\s*(.+?)\s*\]$/.exec(line)
    if (head) {
      const name = head[1].replace(/\s+/g, ' ')
      section = out.get(name) ?? new Map<string, string>()
      out.set(name, section)
      continue
    }
    const eq = line.indexOf('=')
    if (section && eq > 0) section.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim())
  }
  return out
}
