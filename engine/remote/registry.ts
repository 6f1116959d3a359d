/**
 * The one place that knows every remote kind: maps a URL's scheme to the kind
 * that opens it. Each kind is loaded with import() when first used, so an SDK
 * (S3, GCS, SSH) is only loaded by the processes that talk to it.
 */
import { ConfigError } from '../errors.js'
import type { Remote } from './remote.js'

/** Settings of a remote besides its URL: the keys of a named remote in coldstore.yaml (`region`, `endpoint`, `path_style`, `storage_class`...). */
export type RemoteSettings = Readonly<Record<string, string | number | boolean>>

/** Options of `openRemote`. */
export interface OpenRemoteOptions {
  /** Create the storage location when it does not exist (`init`). Kinds that cannot create ignore it. */
  create?: boolean
  /**
   * Settings of the kind, as config keys (snake_case). The same keys may be given as URL query
   * parameters (`s3://b/p?region=eu-west-1&path_style=true`); a query parameter wins over a setting.
   */
  settings?: RemoteSettings
  /**
   * Environment variables the kind may read credentials from (AWS_*, GOOGLE_APPLICATION_CREDENTIALS,
   * SSH_AUTH_SOCK, COLDSTORE_SSH_KNOWN_HOSTS...). The engine never reads process.env itself: callers pass
   * it (the CLI passes process.env). Default: empty.
   */
  env?: Readonly<Record<string, string | undefined>>
  /**
   * A local directory where network kinds stage a pack before uploading it (StagedObjectWriter). Without
   * it they keep the pack in memory until it is complete (BufferedObjectWriter).
   */
  stagingDir?: string
}

/** What a kind's `open` gets besides its parsed configuration. */
export interface KindContext {
  create: boolean
  env: Readonly<Record<string, string | undefined>>
  stagingDir?: string
}

/** Parses a URL of one kind and opens it. */
type OpenKind = (url: string, options: OpenRemoteOptions) => Promise<Remote>

/**
 * The settings of `url`: its query parameters over `settings`. Values stay strings as written in the URL;
 * kinds convert (`settingBool`, `settingNumber`).
 */
export function mergeSettings(url: string, settings: RemoteSettings = {}): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = { ...settings }
  const q = url.indexOf('?')
  if (q === -1) return out
  const h = url.indexOf('#', q)
  for (const [k, v] of new URLSearchParams(url.slice(q + 1, h === -1 ? undefined : h))) out[k] = v
  return out
}

/** A boolean setting (`true`/`false`/`1`/`0`/`yes`/`no`); `fallback` when absent. @throws ConfigError otherwise. */
export function settingBool(settings: RemoteSettings, key: string, fallback: boolean): boolean {
  const v = settings[key]
  if (v === undefined || v === '') return fallback
  if (typeof v === 'boolean') return v
  const s = String(v).toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(s)) return true
  if (['false', '0', 'no', 'off'].includes(s)) return false
  throw new ConfigError(`remote setting ${key}: expected true or false, got ${JSON.stringify(v)}`)
}

/** A number setting; `fallback` when absent. @throws ConfigError when not a finite number. */
export function settingNumber(settings: RemoteSettings, key: string, fallback: number): number {
  const v = settings[key]
  if (v === undefined || v === '') return fallback
  const n = typeof v === 'number' ? v : Number(v)
  if (!Number.isFinite(n)) throw new ConfigError(`remote setting ${key}: expected a number, got ${JSON.stringify(v)}`)
  return n
}

/** A string setting, or undefined when absent or empty. */
export function settingString(settings: RemoteSettings, key: string): string | undefined {
  const v = settings[key]
  if (v === undefined || v === '') return undefined
  return String(v)
}

/** What a kind's `open` gets from `openRemote`'s options. */
function kindContext(options: OpenRemoteOptions): KindContext {
  return { create: options.create ?? false, env: options.env ?? {}, stagingDir: options.stagingDir }
}

async function loadS3(): Promise<OpenKind> {
  const { S3Remote, parseConfig } = await import('./s3/index.js')
  return (url, options) => S3Remote.open(parseConfig(url, options.settings), kindContext(options))
}

/**
 * Remote kinds by URL scheme (lower case). `null` marks a kind that is planned
 * but not implemented yet. Adding a kind is one entry: a loader importing
 * `./<kind>/index.js` and calling its `parseConfig` and `open`.
 */
const KINDS: ReadonlyMap<string, (() => Promise<OpenKind>) | null> = new Map<string, (() => Promise<OpenKind>) | null>([
  [
    'file',
    async () => {
      const { LocalRemote, parseConfig } = await import('./local/index.js')
      return (url, options) => LocalRemote.open({ ...parseConfig(url), create: options.create })
    },
  ],
  [
    'memory',
    async () => {
      const { MemoryRemote, parseConfig } = await import('./memory/index.js')
      return (url) => MemoryRemote.open(parseConfig(url))
    },
  ],
  ['s3', loadS3],
  [
    'gs',
    async () => {
      const { GcsRemote, parseConfig } = await import('./gcs/index.js')
      return (url, options) => GcsRemote.open(parseConfig(url, options.settings), kindContext(options))
    },
  ],
  [
    'sftp',
    async () => {
      const { SftpRemote, parseConfig } = await import('./sftp/index.js')
      return (url, options) => SftpRemote.open(parseConfig(url, options.settings), kindContext(options))
    },
  ],
  // Backblaze B2 through its S3-compatible API: the S3 kind with B2's endpoint and credentials.
  ['b2', loadS3],
])

/**
 * The scheme of `url` in lower case, or 'file' for a plain path. A scheme has
 * at least two characters so that a Windows drive (`C:\backup`) stays a path;
 * a relative path containing ':' must be written `./name:x`.
 */
function schemeOf(url: string): string {
  const match = /^([A-Za-z][A-Za-z0-9+.-]+):/.exec(url)
  return match ? match[1].toLowerCase() : 'file'
}

/**
 * Opens the remote at `url`: an absolute or relative path or `file://` URL
 * (local directory), `s3://bucket/prefix` or `b2://bucket/prefix` (S3 API; see remote/s3/config.ts for
 * the settings), `gs://bucket/prefix` (Google Cloud Storage), `sftp://user@host[:port]/path` (a directory
 * on an SSH server), or `memory://name` (in-memory, for tests).
 *
 * @throws ConfigError for an empty URL, an unknown scheme, or a URL its kind rejects.
 * @throws NotFoundError when the location does not exist and `create` is not set.
 * @throws RemoteError when the location cannot be reached.
 */
export async function openRemote(url: string, options: OpenRemoteOptions = {}): Promise<Remote> {
  if (url === '') throw new ConfigError('empty remote URL')
  const kind = schemeOf(url)
  const load = KINDS.get(kind)
  if (load === undefined) {
    throw new ConfigError(`unknown remote kind '${kind}' in ${describeRemoteUrl(url)} (known: ${[...KINDS.keys()].join(', ')})`)
  }
  if (load === null) throw new ConfigError(`remote kind '${kind}' is not available yet`)
  const open = await load()
  return open(url, options)
}

/** Query parameters whose values are secrets in the URL conventions of the planned kinds. */
const SECRET_PARAM = /key|secret|token|password|passwd|credential|signature|sig$/i

/**
 * `url` with credentials removed, for messages and logs: the user-info part
 * (`user:pass@`) is dropped and secret-looking query values are replaced by
 * `***`. Never throws; a string that is not a URL comes back unchanged.
 */
export function describeRemoteUrl(url: string): string {
  // The authority ends at the first '/', '?' or '#'; the greedy match keeps an unescaped '@' in a password out of the result.
  const withoutUser = url.replace(/^([A-Za-z][A-Za-z0-9+.-]+:\/\/)[^/?#]*@/, '$1')
  const query = withoutUser.indexOf('?')
  if (query === -1) return withoutUser
  const hash = withoutUser.indexOf('#', query)
  const end = hash === -1 ? withoutUser.length : hash
  const params = withoutUser
    .slice(query + 1, end)
    .split('&')
    .map((param) => {
      const eq = param.indexOf('=')
      return eq !== -1 && SECRET_PARAM.test(param.slice(0, eq)) ? `${param.slice(0, eq)}=***` : param
    })
  return `${withoutUser.slice(0, query + 1)}${params.join('&')}${withoutUser.slice(end)}`
}
