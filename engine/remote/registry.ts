/**
 * The one place that knows every remote kind: maps a URL's scheme to the kind
 * that opens it. Each kind is loaded with import() when first used, so an SDK
 * (S3, GCS, SSH) is only loaded by the processes that talk to it.
 */
import { ConfigError } from '../errors.js'
import type { Remote } from './remote.js'
import { cleanStaging } from './staged-writer.js'
import { parseByteRate } from './wrappers/bandwidth.js'
import type { CircuitBreakerOptions, CircuitEvent } from './wrappers/circuit-breaker.js'
import type { Clock } from './wrappers/clock.js'
import type { RetryEvent, RetryOptions } from './wrappers/retrying.js'
import { StagingRemote } from './wrappers/staging.js'
import type { TimeoutOptions } from './wrappers/timeout.js'
import { wrapRemote, type WrapOptions } from './wrappers/wrap.js'

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
  /**
   * Bandwidth and connection limits (the CLI's --limit-upload / --limit-download). They win over the
   * `limit_upload` / `limit_download` settings. Any limit wraps even a local or memory remote.
   */
  limits?: RemoteLimits
  /** Retry settings of network kinds (the `retries` setting gives maxAttempts = retries + 1). */
  retry?: Omit<RetryOptions, 'clock' | 'onRetry'>
  /** Time limits of network kinds' calls (the `timeout` setting, in seconds, sets callMs and transferMs). */
  timeouts?: Omit<TimeoutOptions, 'clock'>
  /** Circuit breaker settings of network kinds. */
  breaker?: Omit<CircuitBreakerOptions, 'clock' | 'onStateChange'>
  /** Told before each retry of a network call. */
  onRetry?: (event: RetryEvent) => void
  /** Told when a network remote's circuit breaker opens or closes again. */
  onCircuitChange?: (event: CircuitEvent) => void
  /** Time source of the wrappers (tests). Default: the system clock. */
  clock?: Clock
}

/** Limits a caller may put on any remote (OpenRemoteOptions.limits). */
export interface RemoteLimits {
  /** Average upload rate in bytes per second. */
  uploadBytesPerSecond?: number
  /** Average download rate in bytes per second. */
  downloadBytesPerSecond?: number
  /** Calls at once (default: the kind's maxConnections). */
  connections?: number
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
 * Kinds that reach their objects over a network: openRemote wraps them (wrappers/wrap.ts) with retries,
 * timeouts, a circuit breaker, limits and, given a staging directory, a staged writer. The other kinds are
 * wrapped only when limits are asked for.
 */
const NETWORK_KINDS: ReadonlySet<string> = new Set(['s3', 'gs', 'sftp', 'b2'])

/** Staging files older than this are left by killed processes: openRemote removes them. */
const STALE_STAGING_MS = 24 * 60 * 60 * 1000

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
 *
 * Network kinds (NETWORK_KINDS) come wrapped in wrapRemote's stack (retries, timeouts, circuit breaker,
 * limits, staged writer); other kinds only in the limits, and only when some are asked for.
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
  const remote = await open(url, options)
  try {
    return await wrapForKind(remote, kind, url, options)
  } catch (err) {
    await remote.close()
    throw err
  }
}

/** Settings every kind may carry that are read here, for the wrappers (see OpenRemoteOptions). */
export const WRAPPER_SETTINGS = ['limit_upload', 'limit_download', 'retries', 'timeout'] as const

/**
 * Wraps a just-opened remote of `kind` as openRemote does: a network kind gets the whole stack of
 * wrapRemote (settings from `options.settings` and the URL's query), any other kind only the bandwidth and
 * connection limits, and only when some are asked for (`options.limits`, `limit_upload`/`limit_download`
 * settings). Exported for tests. On a ConfigError `remote` is left open.
 *
 * @throws ConfigError for an invalid `limit_upload`, `limit_download`, `retries` or `timeout` setting.
 */
export async function wrapForKind(remote: Remote, kind: string, url: string, options: OpenRemoteOptions): Promise<Remote> {
  const network = NETWORK_KINDS.has(kind)
  // Network URLs may carry settings as query parameters; a local path's '?' is part of the path.
  const settings = network ? mergeSettings(url, options.settings) : { ...options.settings }
  const limit = (key: string, given: number | undefined): number | undefined => {
    if (given !== undefined) return given
    const v = settings[key]
    if (v === undefined || v === '' || typeof v === 'boolean') {
      if (typeof v === 'boolean') throw new ConfigError(`remote setting ${key}: expected a rate like 20MiB/s, got ${v}`)
      return undefined
    }
    try {
      return parseByteRate(v)
    } catch (err) {
      throw new ConfigError(`remote setting ${key}: ${(err as Error).message}`, { cause: err })
    }
  }
  const uploadBytesPerSecond = limit('limit_upload', options.limits?.uploadBytesPerSecond)
  const downloadBytesPerSecond = limit('limit_download', options.limits?.downloadBytesPerSecond)
  const connections = options.limits?.connections
  if (connections !== undefined && !(Number.isInteger(connections) && connections >= 1)) throw new ConfigError(`connections must be a whole number of at least 1, got ${connections}`)
  const limited = uploadBytesPerSecond !== undefined || downloadBytesPerSecond !== undefined || connections !== undefined
  if (!network) {
    if (!limited) return remote
    return wrapRemote(remote, { retry: false, timeouts: false, breaker: false, connections: connections ?? false, uploadBytesPerSecond, downloadBytesPerSecond, clock: options.clock })
  }
  const retries = settingNumber(settings, 'retries', Number.NaN)
  if (!Number.isNaN(retries) && !(Number.isInteger(retries) && retries >= 0)) throw new ConfigError(`remote setting retries: expected a whole number of at least 0, got ${JSON.stringify(settings.retries)}`)
  const timeoutMs = settingSeconds(settings, 'timeout')
  const wrap: WrapOptions = {
    retry: { ...(Number.isNaN(retries) ? {} : { maxAttempts: retries + 1 }), ...options.retry, onRetry: options.onRetry },
    timeouts: { ...(timeoutMs === undefined ? {} : { callMs: timeoutMs, transferMs: timeoutMs }), ...options.timeouts },
    breaker: { ...options.breaker, onStateChange: options.onCircuitChange },
    connections: connections ?? remote.properties.maxConnections,
    uploadBytesPerSecond,
    downloadBytesPerSecond,
    stagingDir: options.stagingDir,
    clock: options.clock,
  }
  if (options.stagingDir !== undefined && StagingRemote.stages(remote)) await cleanStaging(options.stagingDir, STALE_STAGING_MS, Date.now())
  return wrapRemote(remote, wrap)
}

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 }

/** A duration setting in milliseconds: seconds as a number (`30`), or with a unit (`500ms`, `30s`, `2m`, `1h`); undefined when absent. @throws ConfigError otherwise. */
function settingSeconds(settings: RemoteSettings, key: string): number | undefined {
  const v = settings[key]
  if (v === undefined || v === '') return undefined
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$/.exec(String(v))
  const ms = m ? Number(m[1]) * DURATION_UNITS[m[2] ?? 's'] : Number.NaN
  if (typeof v === 'boolean' || !(ms > 0)) throw new ConfigError(`remote setting ${key}: expected a duration like 30 (seconds), 30s, 2m or 500ms, got ${JSON.stringify(v)}`)
  return ms
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
