/**
 * coldstore.yaml: parsing and validation, pure (the caller reads the file and
 * passes its text). Every error is a ConfigError naming the file and the key
 * path that is wrong (`coldstore.yaml: remotes.cold.storage_class: ...`).
 *
 * Secrets are never written inline by default: a remote's credentials come
 * from files (`password_file`, `env_file`, `key_file`...) or from the
 * environment. A key that looks like a secret with an inline value is refused
 * unless the file sets `allow_inline_secrets: true`.
 */
import { parse as parseYaml } from 'yaml'
import { ConfigError } from '../errors.js'

/** A named remote (`remotes:` entry). Usable as a URL scheme: `cold://sub/path`. */
export interface RemoteDefinition {
  name: string
  /** The remote's URL (`s3://bucket/prefix`, `sftp://user@host/path`, a local path...). */
  url: string
  /** Kind settings (endpoint, region, path_style, storage_class...), as written. */
  settings: Record<string, string | number | boolean>
  /** The repository password file for this remote. */
  passwordFile?: string
  /** Environment variables for the remote's kind (non-secret ones, like AWS_PROFILE or AWS_REGION). */
  env: Record<string, string>
  /** A file of KEY=VALUE lines merged into `env` (for secrets: AWS_SECRET_ACCESS_KEY=...). */
  envFile?: string
}

/** The parsed configuration file. Sections other than `remotes` are kept as parsed, for their own validators. */
export interface ColdstoreConfig {
  /** The file it came from, for messages. */
  path: string
  remotes: Map<string, RemoteDefinition>
  /** The raw sections other parts of coldstore validate (jobs, notify, server, freeze, prices). */
  sections: Record<string, unknown>
  /** `allow_inline_secrets: true`: section validators (notify:) then accept secrets written inline. */
  allowInlineSecrets: boolean
}

/** Top-level keys of coldstore.yaml. */
export const CONFIG_SECTIONS = ['remotes', 'jobs', 'notify', 'server', 'daemon', 'freeze', 'prices', 'defaults', 'allow_inline_secrets'] as const

/**
 * Settings a remote entry may carry besides url/password_file/env/env_file, by the kinds that read them.
 * Unknown keys are refused, so a typo (`storage_clas`) is an error instead of a silent default.
 */
export const REMOTE_SETTINGS: ReadonlySet<string> = new Set([
  // S3, B2, GCS
  'endpoint', 'region', 'path_style', 'storage_class', 'hot_storage_class', 'object_lock_mode',
  // S3, B2
  'part_size', 'max_connections', 'conditional_writes', 'profile',
  // GCS
  'project_id', 'location', 'retention_mode', 'chunk_size', 'resumable_threshold', 'list_page_size',
  // SFTP
  'key_file', 'known_hosts', 'port', 'connections',
  // every network kind (wrappers)
  'limit_upload', 'limit_download', 'retries', 'timeout',
])

/** Scheme names a named remote cannot take: they are remote kinds. */
const RESERVED = new Set(['file', 'memory', 's3', 'gs', 'sftp', 'b2', 'http', 'https'])

const NAME = /^[a-z][a-z0-9-]{1,62}$/
const SECRETISH = /(secret|password|passwd|token|credential|private|access_key)(?!_file$)/i

function where(path: string, key: string): string {
  return `${path}: ${key}`
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Parses and validates the text of a coldstore.yaml.
 *
 * @param path shown in messages.
 * @throws ConfigError naming the file and key for anything wrong.
 */
export function parseConfigFile(text: string, path: string): ColdstoreConfig {
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (err) {
    throw new ConfigError(`${path}: not valid YAML: ${(err as Error).message}`, { cause: err })
  }
  if (doc === null || doc === undefined) doc = {}
  if (!isMapping(doc)) throw new ConfigError(`${path}: expected a mapping of sections (remotes:, jobs:, ...)`)
  for (const k of Object.keys(doc)) {
    if (!(CONFIG_SECTIONS as readonly string[]).includes(k)) {
      throw new ConfigError(`${where(path, k)}: unknown section (known: ${CONFIG_SECTIONS.join(', ')})`)
    }
  }
  const inline = doc.allow_inline_secrets
  if (inline !== undefined && typeof inline !== 'boolean') throw new ConfigError(`${where(path, 'allow_inline_secrets')}: must be true or false`)
  const remotes = new Map<string, RemoteDefinition>()
  const raw = doc.remotes
  if (raw !== undefined && raw !== null) {
    if (!isMapping(raw)) throw new ConfigError(`${where(path, 'remotes')}: expected a mapping of remote names`)
    for (const [name, def] of Object.entries(raw)) {
      remotes.set(name, parseRemote(path, name, def, inline === true))
    }
  }
  const sections: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(doc)) if (k !== 'remotes' && k !== 'allow_inline_secrets') sections[k] = v
  return { path, remotes, sections, allowInlineSecrets: inline === true }
}

function parseRemote(path: string, name: string, def: unknown, allowInline: boolean): RemoteDefinition {
  const at = `remotes.${name}`
  if (!NAME.test(name)) {
    throw new ConfigError(`${where(path, at)}: a remote name is 2–63 lower-case letters, digits and '-', starting with a letter (it is used as a URL scheme: ${name}://)`)
  }
  if (RESERVED.has(name)) throw new ConfigError(`${where(path, at)}: '${name}' is a remote kind and cannot name a remote`)
  if (typeof def === 'string') def = { url: def }
  if (!isMapping(def)) throw new ConfigError(`${where(path, at)}: expected a mapping with at least url:`)
  const url = def.url
  if (typeof url !== 'string' || url === '') throw new ConfigError(`${where(path, `${at}.url`)}: required, the remote's URL (s3://bucket/prefix, sftp://user@host/path, /mnt/backup...)`)
  const out: RemoteDefinition = { name, url, settings: {}, env: {} }
  for (const [k, v] of Object.entries(def)) {
    const key = `${at}.${k}`
    if (k === 'url') continue
    if (k === 'password_file' || k === 'env_file') {
      if (typeof v !== 'string' || v === '') throw new ConfigError(`${where(path, key)}: expected a file path`)
      if (k === 'password_file') out.passwordFile = v
      else out.envFile = v
      continue
    }
    if (k === 'env') {
      if (!isMapping(v)) throw new ConfigError(`${where(path, key)}: expected a mapping of NAME: value`)
      for (const [ek, ev] of Object.entries(v)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(ek)) throw new ConfigError(`${where(path, `${key}.${ek}`)}: not an environment variable name`)
        if (typeof ev !== 'string' && typeof ev !== 'number' && typeof ev !== 'boolean') throw new ConfigError(`${where(path, `${key}.${ek}`)}: expected a string`)
        if (!allowInline && SECRETISH.test(ek)) {
          throw new ConfigError(`${where(path, `${key}.${ek}`)}: looks like a secret; put it in env_file (KEY=VALUE lines, readable only by you) or the process environment, or set allow_inline_secrets: true`)
        }
        out.env[ek] = String(ev)
      }
      continue
    }
    if (!REMOTE_SETTINGS.has(k)) {
      if (SECRETISH.test(k)) {
        throw new ConfigError(`${where(path, key)}: secrets are not written inline: use password_file, env_file or the environment`)
      }
      throw new ConfigError(`${where(path, key)}: unknown setting (known: url, password_file, env, env_file, ${[...REMOTE_SETTINGS].join(', ')})`)
    }
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw new ConfigError(`${where(path, key)}: expected a single value`)
    out.settings[k] = v
  }
  return out
}

/**
 * Parses an env file: `KEY=VALUE` lines, `#` comments and blank lines ignored, optional `export `, values
 * optionally in single or double quotes. @throws ConfigError naming the line.
 */
export function parseEnvFile(text: string, path: string): Record<string, string> {
  const out: Record<string, string> = {}
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim()
    if (line === '' || line.startsWith('#')) continue
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line)
    if (!m) throw new ConfigError(`${path}:${i + 1}: expected KEY=VALUE`)
    let v = m[2]
    if (v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))) v = v.slice(1, -1)
    out[m[1]] = v
  }
  return out
}

/** What `resolveRemoteUrl` returns: the real URL and the named remote it came through, if any. */
export interface ResolvedRemote {
  url: string
  remote: RemoteDefinition | null
}

/**
 * Resolves a named remote used as a URL scheme: `cold://nature-2024/` with `remotes.cold.url:
 * s3://bucket/archive?region=eu-west-1` is `s3://bucket/archive/nature-2024?region=eu-west-1`. Other URLs
 * come back unchanged with `remote: null`. `cold://` alone is the remote's own URL.
 *
 * @throws ConfigError for a scheme that is neither a remote kind nor a named remote.
 */
export function resolveRemoteUrl(url: string, remotes: ReadonlyMap<string, RemoteDefinition>): ResolvedRemote {
  const m = /^([A-Za-z][A-Za-z0-9+.-]+):\/\/(.*)$/s.exec(url)
  if (!m) return { url, remote: null }
  const scheme = m[1].toLowerCase()
  if (RESERVED.has(scheme)) return { url, remote: null }
  const def = remotes.get(scheme)
  if (!def) {
    const known = [...remotes.keys()]
    throw new ConfigError(
      `'${scheme}://' is not a remote kind (file paths, s3://, gs://, sftp://, b2://) nor a named remote` +
        (known.length ? ` (named remotes in the configuration: ${known.join(', ')})` : ' (no remotes are defined in the configuration file)'),
    )
  }
  const sub = m[2].split('/').filter((s) => s !== '')
  for (const s of sub) {
    if (s === '.' || s === '..') throw new ConfigError(`${url}: '.' and '..' are not allowed in a named remote's path`)
  }
  if (sub.length === 0) return { url: def.url, remote: def }
  const q = def.url.search(/[?#]/)
  const base = q === -1 ? def.url : def.url.slice(0, q)
  const tail = q === -1 ? '' : def.url.slice(q)
  return { url: `${base.replace(/\/+$/, '')}/${sub.join('/')}${tail}`, remote: def }
}
