/**
 * The one place that knows every remote kind: maps a URL's scheme to the kind
 * that opens it. Each kind is loaded with import() when first used, so an SDK
 * (S3, GCS, SSH) is only loaded by the processes that talk to it.
 */
import { ConfigError } from '../errors.js'
import type { Remote } from './remote.js'

/** Options of `openRemote`. */
export interface OpenRemoteOptions {
  /** Create the storage location when it does not exist (`init`). Kinds that cannot create ignore it. */
  create?: boolean
}

/** Parses a URL of one kind and opens it. */
type OpenKind = (url: string, options: OpenRemoteOptions) => Promise<Remote>

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
  ['s3', null],
  ['gs', null],
  ['sftp', null],
  ['b2', null],
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
 * (local directory), or `memory://name` (in-memory, for tests).
 *
 * @throws ConfigError for an empty URL, an unknown scheme, a kind that is not
 *   available yet (`s3://`, `gs://`, `sftp://`, `b2://`), or a URL its kind rejects.
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
