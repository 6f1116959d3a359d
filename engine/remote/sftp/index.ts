/**
 * remote/sftp/: a Remote on a directory of an SSH server, over SFTP (ssh2-sftp-client on ssh2). Each object
 * is a file under the root at its name's path, as on a local remote (`data/ab/ab12…` → `<root>/data/ab/ab12…`).
 *
 * Imports node builtins, ssh2 and ssh2-sftp-client (only in this folder; registry.ts loads it with import()),
 * ../remote.js, ../registry.js and ../../errors.js.
 */
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs/promises'
import { join, posix } from 'node:path'
import { ConfigError, ExistsError, NotFoundError, RemoteError } from '../../errors.js'
import type { KindContext, RemoteSettings } from '../registry.js'
import { mergeSettings, settingNumber, settingString } from '../registry.js'
import type { ByteRange, ObjectInfo, PutOptions, Remote, RemoteProperties } from '../remote.js'
import { assertObjectName } from '../remote.js'
import { expandHome, gatherCredentials } from './auth.js'
import { parseKnownHosts, type KnownHostEntry } from './known-hosts.js'
import { STATUS, Session, SessionPool, isStatus, type KnownHostsSource } from './session.js'

/**
 * What freezes and `inspect` can say of an SFTP remote, which has no `protection` capability: an SSH server
 * offers no retention or hold, so anyone with write access there can delete the objects.
 */
export const SFTP_IMMUTABILITY_NOTE =
  'the SFTP server cannot enforce immutability (no retention or hold over SFTP); coldstore\'s own prune refuses to remove what a freeze needs, but anyone with write access to the server\'s directory can delete it'

/** Environment variable naming the known_hosts file to check host keys against (instead of ~/.ssh/known_hosts). */
export const KNOWN_HOSTS_ENV = 'COLDSTORE_SSH_KNOWN_HOSTS'

/** The system-wide known_hosts file ssh also reads. */
const GLOBAL_KNOWN_HOSTS = '/etc/ssh/ssh_known_hosts'

/** Default number of SSH connections (each with one SFTP session) per remote. */
export const DEFAULT_CONNECTIONS = 4

/** Connections are capped here whatever the setting says (servers limit unauthenticated connections to 10 by default). */
const MAX_CONNECTIONS = 32

/** Prefix of the temporary files `put` writes next to their target; `list` never yields them. */
const TEMP_PREFIX = '.tmp-'

/**
 * Bytes per SFTP read or write request: OpenSSH's largest (its limits@openssh.com answer); ssh2 splits
 * requests above a smaller server's limit.
 */
const CHUNK_BYTES = 255 * 1024

/** Requests of one transfer in flight at once (about 4 MiB: 40 MB/s per transfer at 100 ms round trips). */
const WINDOW = 16

/** Directories `list` reads at once. */
const LIST_PARALLEL = 8

/** A valid list prefix: complete segments, each followed by '/', then an optional partial segment. */
const LIST_PREFIX = /^([A-Za-z0-9._-]+\/)*[A-Za-z0-9._-]*$/

/** Configuration of an SftpRemote, as returned by `parseConfig`. */
export interface SftpConfig {
  /** Host name or address (an IPv6 address without brackets). */
  host: string
  port: number
  /** Login name from the URL; `open` falls back to USER (then LOGNAME) of its environment. */
  user?: string
  /** The root on the server: an absolute path, or `~` / `~/<path>` relative to the login's home directory. */
  path: string
  /** Private key file (`key_file` setting); `~/` is the local HOME. */
  keyFile?: string
  /** known_hosts file (`known_hosts` setting); `~/` is the local HOME. */
  knownHostsFile?: string
  /** Most SSH connections to open (`connections` setting). */
  maxConnections: number
  /** `sftp://host[:port]/path` for messages (no user). */
  location: string
}

/**
 * Parses `sftp://[user@]host[:port]/path[?settings]`. The path is absolute on the server
 * (`sftp://backup@nas/srv/coldstore` → `/srv/coldstore`); a first segment `~` makes it relative to the home
 * directory (`sftp://backup@nas/~/coldstore`). Percent-escapes are decoded. Settings (config keys, or
 * query parameters, which win): `port`, `key_file`, `known_hosts`, `connections`. A port in the URL wins
 * over the `port` setting. Does no I/O.
 *
 * @throws ConfigError for a URL that is not sftp://, has no host, carries a password (use ssh-agent or a key
 *   file), or has a fragment, and for a bad port or connection count.
 */
export function parseConfig(url: string, settings: RemoteSettings = {}): SftpConfig {
  const merged = mergeSettings(url, settings)
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (err) {
    throw new ConfigError('sftp remote: not a URL of the form sftp://user@host[:port]/path', { cause: err })
  }
  if (parsed.protocol.toLowerCase() !== 'sftp:') throw new ConfigError(`sftp remote: not an sftp:// URL (scheme ${parsed.protocol})`)
  if (parsed.password !== '') {
    throw new ConfigError('sftp remote: the URL must not contain a password: coldstore logs in with ssh-agent or a key file (see the key_file setting)')
  }
  if (parsed.hash !== '') throw new ConfigError('sftp remote: the URL must not have a fragment (#...)')
  const hostname = parsed.hostname.toLowerCase() // host names are case-insensitive; WHATWG keeps the case of non-special URLs
  const host = hostname.replace(/^\[(.*)\]$/, '$1')
  if (host === '') throw new ConfigError('sftp remote: the URL names no host: write sftp://user@host[:port]/path')
  const port = parsed.port !== '' ? Number(parsed.port) : settingNumber(merged, 'port', 22)
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(`sftp remote: invalid port ${port}`)
  const connections = settingNumber(merged, 'connections', DEFAULT_CONNECTIONS)
  if (!Number.isInteger(connections) || connections < 1) throw new ConfigError(`sftp remote: setting connections must be a whole number of at least 1, got ${connections}`)
  let path: string
  try {
    path = decodeURIComponent(parsed.pathname)
  } catch (err) {
    throw new ConfigError('sftp remote: invalid percent-escape in the path', { cause: err })
  }
  if (path === '/~' || path.startsWith('/~/')) path = path.slice(1)
  path = path.replace(/\/+$/, '')
  if (path === '') path = '/'
  if (!path.startsWith('/') && path !== '~' && !path.startsWith('~/')) path = `/${path}`
  const user = parsed.username === '' ? undefined : decodeURIComponent(parsed.username)
  const hostPart = hostname + (port === 22 ? '' : `:${port}`)
  const shownPath = path.startsWith('/') ? path : `/${path}`
  return {
    host,
    port,
    user,
    path,
    keyFile: settingString(merged, 'key_file'),
    knownHostsFile: settingString(merged, 'known_hosts'),
    maxConnections: Math.min(connections, MAX_CONNECTIONS),
    location: `sftp://${hostPart}${shownPath}`,
  }
}

/** Properties of an SFTP remote: the common ones and what freezes can say about immutability. */
export interface SftpProperties extends RemoteProperties {
  /** SFTP_IMMUTABILITY_NOTE: this kind has no `protection` capability. */
  readonly immutabilityNote: string
}

/** The known_hosts files to check, as configured (setting, then environment, then ssh's defaults). */
function knownHostsFiles(config: SftpConfig, env: Readonly<Record<string, string | undefined>>): string[] {
  if (config.knownHostsFile !== undefined) return [expandHome(config.knownHostsFile, env)]
  const fromEnv = env[KNOWN_HOSTS_ENV]
  if (fromEnv) return [expandHome(fromEnv, env)]
  return [...(env.HOME ? [join(env.HOME, '.ssh', 'known_hosts')] : []), GLOBAL_KNOWN_HOSTS]
}

async function loadKnownHosts(files: readonly string[]): Promise<{ entries: KnownHostEntry[]; sources: KnownHostsSource[] }> {
  const entries: KnownHostEntry[] = []
  const sources: KnownHostsSource[] = []
  for (const file of files) {
    try {
      entries.push(...parseKnownHosts(await fs.readFile(file, 'utf8'), file))
      sources.push({ path: file, exists: true })
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw new ConfigError(`sftp: cannot read the known_hosts file ${file}: ${errnoOf(err) ?? String(err)}`, { cause: err })
      sources.push({ path: file, exists: false })
    }
  }
  return { entries, sources }
}

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined
}

function noop(): void {}

/**
 * A Remote storing each object as a file under a directory of an SSH server, over SFTP.
 *
 * - Host keys are checked against known_hosts (on by default; an unknown or changed key refuses the
 *   connection). Logs in with ssh-agent or key files (see `gatherCredentials`).
 * - `put`/`putFile` write `<dir>/.tmp-<random>`, fsync it (fsync@openssh.com when the server has it),
 *   rename it over the target (posix-rename@openssh.com; with `exclusive`, plain SFTP rename, which OpenSSH
 *   does with link(2) and so fails atomically when the target exists → ExistsError), then fsync the
 *   directory where the server lets a directory be opened (OpenSSH does). Missing directories are created
 *   (mkdir -p), each checked once per instance. A crash leaves at most a `.tmp-` file, never a partial object.
 *   Without posix-rename, a non-exclusive put of an existing name keeps the object when the sizes match and
 *   rejects with ExistsError otherwise (never a window in which the object is missing).
 * - `get` with a range reads only the range. `list` walks the prefix's directory recursively.
 * - Up to `maxConnections` SSH connections serve parallel calls. When a connection drops, its calls in
 *   flight reject with a transient RemoteError and the next call connects again. No retries here: the
 *   registry's wrapper retries transient errors.
 * - No `protection`: see SFTP_IMMUTABILITY_NOTE.
 */
export class SftpRemote implements Remote {
  readonly properties: SftpProperties
  /** Absolute root directory on the server. */
  readonly root: string
  private readonly pool: SessionPool
  /** Directories known to exist (or being created): a put into them sends no mkdir. */
  private readonly dirs = new Map<string, Promise<void>>()
  /** False once the server refused to open a directory for fsync (then directories are not fsync'd). */
  private dirSync = true

  private constructor(config: SftpConfig, root: string, pool: SessionPool) {
    this.root = root
    this.pool = pool
    this.properties = { location: config.location, maxConnections: config.maxConnections, immutabilityNote: SFTP_IMMUTABILITY_NOTE }
    this.dirs.set(root, Promise.resolve())
  }

  /**
   * Connects (host key check, login), finds the root directory and returns the remote.
   *
   * @throws ConfigError for missing credentials, an unusable key file, no user name, or a root that is not
   *   a directory.
   * @throws NotFoundError when the root directory does not exist and `ctx.create` is not set.
   * @throws RemoteError when the server cannot be reached (transient), or refuses the host key or the login
   *   (not transient; the message says what to fix).
   */
  static async open(config: SftpConfig, ctx: KindContext): Promise<SftpRemote> {
    const username = config.user ?? (ctx.env.USER || ctx.env.LOGNAME)
    if (!username) throw new ConfigError(`sftp: no user name: write it in the URL (sftp://user@${config.host}/...) or set USER`)
    const credentials = await gatherCredentials({ username, keyFile: config.keyFile, env: ctx.env })
    const known = await loadKnownHosts(knownHostsFiles(config, ctx.env))
    const pool = new SessionPool({
      host: config.host,
      port: config.port,
      username,
      location: config.location,
      methods: credentials.methods,
      tried: credentials.tried,
      skipped: credentials.skipped,
      knownHosts: known.entries,
      knownHostsSources: known.sources,
    }, config.maxConnections)
    try {
      const s = await pool.acquire()
      try {
        const root = await resolveRoot(s, config)
        const remote = new SftpRemote(config, root, pool)
        await remote.prepareRoot(s, ctx.create)
        return remote
      } finally {
        pool.release(s)
      }
    } catch (err) {
      await pool.close()
      throw err
    }
  }

  private async prepareRoot(s: Session, create: boolean): Promise<void> {
    const location = this.properties.location
    let st
    try {
      st = await s.stat(this.root)
    } catch (err) {
      if (!isStatus(err, STATUS.NO_SUCH_FILE)) throw this.mapError(err, s, 'open', this.root)
      if (!create) throw new NotFoundError(location, `remote directory not found: ${location}`, { cause: err })
      this.dirs.delete(this.root)
      try {
        await this.ensureDir(s, this.root)
      } catch (e) {
        throw this.mapError(e, s, 'create remote directory', this.root)
      }
      return
    }
    if (!st.isDirectory()) throw new ConfigError(`remote path is not a directory: ${location}`)
  }

  /** Runs `fn` on a pooled session, translating its errors. */
  private async withSession<T>(op: string, name: string, fn: (s: Session) => Promise<T>): Promise<T> {
    const s = await this.pool.acquire()
    try {
      return await fn(s)
    } catch (err) {
      throw this.mapError(err, s, op, name)
    } finally {
      this.pool.release(s)
    }
  }

  /**
   * Translates an SFTP or connection error, keeping the original as `cause`. A missing file is
   * NotFoundError for reads; a dropped connection is transient; permission and other server-side failures
   * are not.
   */
  private mapError(err: unknown, s: Session, op: string, name: string): Error {
    if (err instanceof TypeError || err instanceof NotFoundError || err instanceof ExistsError || err instanceof ConfigError) return err
    const where = `sftp ${this.properties.location}: ${op} ${name}`
    if (s.lostReason !== null) return new RemoteError(`${where}: connection lost (${s.lostReason})`, { transient: true, objectName: name }, { cause: err })
    if (err instanceof RemoteError) return err
    const detail = err instanceof Error ? err.message : String(err)
    const reading = op === 'get' || op === 'stat'
    if (reading && isStatus(err, STATUS.NO_SUCH_FILE)) return new NotFoundError(name, `${where}: not found`, { cause: err })
    if (isStatus(err, STATUS.PERMISSION_DENIED)) {
      return new RemoteError(`${where}: permission denied on the server (check the owner and mode of ${this.root} and the directories below it)`, { transient: false, objectName: name }, { cause: err })
    }
    const transient = isStatus(err, STATUS.NO_CONNECTION) || isStatus(err, STATUS.CONNECTION_LOST) || detail === 'No response from server'
    return new RemoteError(`${where} failed: ${detail}`, { transient, objectName: name }, { cause: err })
  }

  private pathOf(name: string): string {
    // Valid names contain no '..' and no leading '/', so the result stays below the root.
    return this.root === '/' ? `/${name}` : `${this.root}/${name}`
  }

  /**
   * Writes `data` under `name` atomically and durably.
   *
   * @throws TypeError for an invalid name, or one with a segment starting with `.tmp-`.
   * @throws ExistsError when `options.exclusive` is set and the name exists.
   * @throws RemoteError for failures (transient when the connection dropped).
   */
  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertSftpName(name)
    const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    await this.withSession('put', name, (s) => this.store(s, name, options, (handle) => writeBuffer(s, handle, bytes)))
  }

  /**
   * Stores the local file at `path` as `name`, streamed (at most WINDOW × CHUNK_BYTES, about 4 MiB, of it in memory), with
   * `put`'s guarantees. `path` is not changed.
   *
   * @throws RemoteError (not transient) when the local file cannot be read; otherwise as `put`.
   */
  async putFile(name: string, path: string, options: PutOptions = {}): Promise<void> {
    assertSftpName(name)
    let local: fs.FileHandle
    try {
      local = await fs.open(path, 'r')
    } catch (err) {
      throw new RemoteError(`sftp ${this.properties.location}: put ${name}: cannot read the local file ${path}: ${errnoOf(err) ?? String(err)}`, { transient: false, objectName: name }, { cause: err })
    }
    try {
      await this.withSession('put', name, (s) => this.store(s, name, options, (handle) => writeFile(s, handle, local)))
    } finally {
      await local.close().catch(noop)
    }
  }

  /** The write protocol of put and putFile: temp file, fill, fsync, rename, directory fsync. */
  private async store(s: Session, name: string, options: PutOptions, fill: (handle: Buffer) => Promise<void>): Promise<void> {
    const target = this.pathOf(name)
    const dir = posix.dirname(target)
    const temp = `${dir}/${TEMP_PREFIX}${randomBytes(8).toString('hex')}`
    let handle: Buffer | null = await this.openTemp(s, dir, temp)
    // Opened while the data goes out, so that the directory fsync after the rename costs one round trip.
    const dirHandle = this.dirSync ? s.open(dir, 'r').catch(() => {
      this.dirSync = false // e.g. a server that refuses to open directories
      return null
    }) : Promise.resolve(null)
    let renamed = false
    try {
      await fill(handle)
      await s.fsync(handle)
      const closing = s.close(handle)
      handle = null
      await closing
      if (options.exclusive === true) await this.renameExclusive(s, temp, target, name)
      else await this.renameReplace(s, temp, target, name)
      renamed = true
      const dh = await dirHandle
      if (dh !== null) await s.fsync(dh)
    } catch (err) {
      // Best effort, but awaited so that no temporary file outlives the failed put (unless the connection dropped).
      if (handle !== null) await s.close(handle).catch(noop)
      if (!renamed) await s.unlink(temp).catch(noop)
      throw err
    } finally {
      void dirHandle.then((dh) => (dh === null ? undefined : s.close(dh)), noop).catch(noop)
    }
  }

  /**
   * Opens a new temporary file in `dir`. The open itself tells whether `dir` exists (no extra round trip);
   * on "no such file" the directory (and missing parents) is created and the open tried once more.
   */
  private async openTemp(s: Session, dir: string, temp: string): Promise<Buffer> {
    const observed = this.dirs.get(dir)
    if (observed !== undefined) await observed.catch(noop) // a creation started by a concurrent put
    try {
      const handle = await s.open(temp, 'wx')
      if (!this.dirs.has(dir)) this.dirs.set(dir, Promise.resolve())
      return handle
    } catch (err) {
      if (!isStatus(err, STATUS.NO_SUCH_FILE) || s.lostReason !== null) throw err
      // Known to exist but gone: removed behind our back. Forget it (unless a concurrent put already did).
      if (observed !== undefined && this.dirs.get(dir) === observed) this.forgetDir(dir)
      await this.ensureDir(s, dir)
      return await s.open(temp, 'wx')
    }
  }

  /** Plain SFTP rename fails when the target exists; OpenSSH implements it with link(2) + unlink, atomically. */
  private async renameExclusive(s: Session, temp: string, target: string, name: string): Promise<void> {
    try {
      await s.rename(temp, target)
    } catch (err) {
      if (s.lostReason === null && (await exists(s, target))) throw new ExistsError(name, undefined, { cause: err })
      throw err
    }
  }

  private async renameReplace(s: Session, temp: string, target: string, name: string): Promise<void> {
    if (await s.posixRename(temp, target)) return
    // No posix-rename@openssh.com: plain rename, which refuses to replace.
    try {
      await s.rename(temp, target)
    } catch (err) {
      const [ours, theirs] = await Promise.all([s.stat(temp).catch(() => null), s.stat(target).catch(() => null)])
      if (theirs === null || !theirs.isFile()) throw err
      await s.unlink(temp).catch(noop)
      // Content-addressed names: an object of the same size under the same name is the same object.
      if (ours === null || ours.size !== theirs.size) throw new ExistsError(name, undefined, { cause: err })
    }
  }

  /**
   * Makes sure `dir` exists: mkdir, and on "no such file" its parent first (mkdir -p from the deepest
   * missing level). Each directory is created once per instance; a new directory's entry is fsync'd.
   */
  private ensureDir(s: Session, dir: string): Promise<void> {
    let pending = this.dirs.get(dir)
    if (pending === undefined) {
      const parent = posix.dirname(dir)
      pending = this.mkdirOne(s, dir).catch(async (err: unknown) => {
        if (!isStatus(err, STATUS.NO_SUCH_FILE) || parent === dir) throw err
        await this.ensureDir(s, parent)
        await this.mkdirOne(s, dir)
      })
      this.dirs.set(dir, pending)
      const p = pending
      p.catch(() => {
        if (this.dirs.get(dir) === p) this.dirs.delete(dir)
      })
    }
    return pending
  }

  private async mkdirOne(s: Session, dir: string): Promise<void> {
    try {
      await s.mkdir(dir)
    } catch (err) {
      // mkdir of an existing path fails with a plain "failure": fine when it is a directory.
      if (isStatus(err, STATUS.NO_SUCH_FILE) || s.lostReason !== null) throw err
      const st = await s.stat(dir).catch(() => null)
      if (st?.isDirectory()) return
      throw err
    }
    if (this.dirSync) {
      const h = await s.open(posix.dirname(dir), 'r').catch(() => null)
      if (h !== null) {
        await s.fsync(h).finally(() => s.close(h).catch(noop))
      }
    }
  }

  /** Forgets that `dir` and its parents exist (they were removed behind our back). */
  private forgetDir(dir: string): void {
    for (let d = dir; d !== this.root && d !== posix.dirname(d); d = posix.dirname(d)) this.dirs.delete(d)
  }

  /**
   * Reads an object, or `range.length` bytes of it from `range.offset` (only that part is transferred).
   *
   * @throws TypeError for an invalid name or range.
   * @throws NotFoundError when the object does not exist (or is a directory).
   * @throws RemoteError for other failures.
   */
  async get(name: string, range?: ByteRange): Promise<Buffer> {
    assertObjectName(name)
    if (range !== undefined) assertRange(range)
    return this.withSession('get', name, async (s) => {
      const file = this.pathOf(name)
      // Both in one round trip; the stat tells a directory (which OpenSSH also lets one open) from a file.
      const statP = s.stat(file)
      statP.catch(noop)
      const handle = await s.open(file, 'r')
      try {
        const st = await statP
        if (!st.isFile()) throw notAnObject(name)
        const start = range?.offset ?? 0
        const want = Math.max(0, range === undefined ? st.size : Math.min(range.length, st.size - start))
        return await readRange(s, handle, start, want)
      } finally {
        s.close(handle).catch(noop)
      }
    })
  }

  /**
   * Reports an object's size.
   *
   * @throws TypeError for an invalid name.
   * @throws NotFoundError when the object does not exist (or is a directory).
   * @throws RemoteError for other failures.
   */
  async stat(name: string): Promise<ObjectInfo> {
    assertObjectName(name)
    return this.withSession('stat', name, async (s) => {
      const st = await s.stat(this.pathOf(name))
      if (!st.isFile()) throw notAnObject(name)
      return { name, size: st.size }
    })
  }

  /**
   * Yields every object whose name starts with `prefix`, in no particular order. Only the directory named
   * by the prefix's part up to its last '/' is walked, with up to LIST_PARALLEL directories read at once.
   * Temporary files of puts and entries whose names are not valid object names are skipped; symlinks to
   * files are followed, symlinks to directories are not.
   *
   * @throws TypeError for a prefix no valid name can start with.
   * @throws RemoteError for failures other than a missing directory.
   */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertListPrefix(prefix)
    const slash = prefix.lastIndexOf('/')
    const queue: { rel: string; partial: string }[] = [{ rel: prefix.slice(0, slash + 1), partial: prefix.slice(slash + 1) }]
    type Level = { files: ObjectInfo[]; subdirs: string[] }
    const running = new Set<Promise<{ self: Promise<unknown>; level: Level }>>()
    try {
      while (queue.length > 0 || running.size > 0) {
        while (queue.length > 0 && running.size < LIST_PARALLEL) {
          const job = queue.shift()!
          const p: Promise<{ self: Promise<unknown>; level: Level }> = this.readLevel(job.rel, job.partial).then((level) => ({ self: p, level }))
          running.add(p)
        }
        const { self, level } = await Promise.race(running)
        running.delete(self as Promise<{ self: Promise<unknown>; level: Level }>)
        // Below the first level every name matches the prefix already.
        for (const sub of level.subdirs) queue.push({ rel: sub, partial: '' })
        for (const info of level.files) yield info
      }
    } finally {
      for (const p of running) p.catch(noop) // an abandoned or failed listing drops what is still being read
    }
  }

  /** One directory of a listing: objects in it and subdirectories (as `rel/` prefixes) to walk. */
  private readLevel(rel: string, partial: string): Promise<{ files: ObjectInfo[]; subdirs: string[] }> {
    return this.withSession('list', rel === '' ? '/' : rel, async (s) => {
      const dir = rel === '' ? this.root : this.pathOf(rel.slice(0, -1))
      let entries: { filename: string; attrs: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; size: number } }[]
      try {
        entries = await s.readdir(dir)
      } catch (err) {
        // A missing directory just holds no objects (data/ of an empty repository; a prefix naming a file).
        if (isStatus(err, STATUS.NO_SUCH_FILE)) return { files: [], subdirs: [] }
        throw err
      }
      const files: ObjectInfo[] = []
      const subdirs: string[] = []
      const links: string[] = []
      for (const e of entries) {
        const n = e.filename
        if (!n.startsWith(partial) || n.startsWith(TEMP_PREFIX) || !isValidSegment(n)) continue
        if (e.attrs.isFile()) files.push({ name: rel + n, size: e.attrs.size })
        else if (e.attrs.isDirectory()) subdirs.push(`${rel}${n}/`)
        else if (e.attrs.isSymbolicLink()) links.push(n)
      }
      // OpenSSH reports lstat attributes: follow symlinks to see whether they lead to files.
      const followed = await Promise.all(links.map((n) => s.stat(`${dir}/${n}`).then((st) => (st.isFile() ? { name: rel + n, size: st.size } : null), () => null)))
      for (const f of followed) if (f !== null) files.push(f)
      return { files, subdirs }
    })
  }

  /**
   * Deletes an object. Deleting a missing object (or a directory, which is not an object) resolves.
   *
   * @throws TypeError for an invalid name.
   * @throws RemoteError for failures.
   */
  async delete(name: string): Promise<void> {
    assertObjectName(name)
    await this.withSession('delete', name, async (s) => {
      const file = this.pathOf(name)
      try {
        await s.unlink(file)
      } catch (err) {
        if (isStatus(err, STATUS.NO_SUCH_FILE)) return
        if (s.lostReason === null) {
          const st = await s.lstat(file).catch(() => null)
          if (st?.isDirectory()) return
        }
        throw err
      }
    })
  }

  /** Ends every SSH connection. Calls after close reject. */
  async close(): Promise<void> {
    await this.pool.close()
  }

  /** SSH connections open now (for tests). */
  get connections(): number {
    return this.pool.size
  }
}

/** The absolute root on the server: `~` paths are resolved against the login's home directory. */
async function resolveRoot(s: Session, config: SftpConfig): Promise<string> {
  if (config.path.startsWith('/')) return config.path
  // OpenSSH starts SFTP sessions in the home directory, so '.' is home.
  const home = await s.realpath('.')
  const rest = config.path === '~' ? '' : config.path.slice(2)
  return rest === '' ? home : posix.join(home, rest)
}

async function exists(s: Session, path: string): Promise<boolean> {
  try {
    await s.lstat(path)
    return true
  } catch {
    return false
  }
}

/** Writes all of `data` from offset 0, WINDOW requests in flight. */
async function writeBuffer(s: Session, handle: Buffer, data: Buffer): Promise<void> {
  const inFlight = new Set<Promise<void>>()
  let failure: unknown = null
  for (let at = 0; at < data.length && failure === null; at += CHUNK_BYTES) {
    const p = s.write(handle, data, at, Math.min(CHUNK_BYTES, data.length - at), at).catch((err: unknown) => {
      failure ??= err
    }).finally(() => inFlight.delete(p))
    inFlight.add(p)
    if (inFlight.size >= WINDOW) await Promise.race(inFlight)
  }
  await Promise.all(inFlight)
  if (failure !== null) throw failure
}

/** Streams a local file to `handle`: reads of CHUNK_BYTES, WINDOW writes in flight. */
async function writeFile(s: Session, handle: Buffer, local: fs.FileHandle): Promise<void> {
  const inFlight = new Set<Promise<void>>()
  let failure: unknown = null
  let at = 0
  while (failure === null) {
    const buf = Buffer.allocUnsafe(CHUNK_BYTES)
    let n: number
    try {
      n = (await local.read(buf, 0, CHUNK_BYTES, at)).bytesRead
    } catch (err) {
      failure = new RemoteError(`sftp: cannot read the local file being uploaded: ${errnoOf(err) ?? String(err)}`, { transient: false }, { cause: err })
      break
    }
    if (n === 0) break
    const p = s.write(handle, buf, 0, n, at).catch((err: unknown) => {
      failure ??= err
    }).finally(() => inFlight.delete(p))
    inFlight.add(p)
    at += n
    if (inFlight.size >= WINDOW) await Promise.race(inFlight)
  }
  await Promise.all(inFlight)
  if (failure !== null) throw failure
}

/**
 * Reads `length` bytes from `start`, WINDOW requests of CHUNK_BYTES in flight, following short reads.
 * Returns fewer bytes when the file ends first.
 */
async function readRange(s: Session, handle: Buffer, start: number, length: number): Promise<Buffer> {
  if (length === 0) return Buffer.alloc(0)
  const buf = Buffer.allocUnsafe(length)
  /** Reads [from, to) of the result; resolves where it stopped (before `to` at the end of the file). */
  const readPart = async (from: number, to: number): Promise<number> => {
    let at = from
    while (at < to) {
      const n = await s.read(handle, buf, at, to - at, start + at)
      if (n === 0) break
      at += n
    }
    return at
  }
  const parts: Promise<number>[] = []
  const inFlight = new Set<Promise<number>>()
  for (let from = 0; from < length; from += CHUNK_BYTES) {
    const to = Math.min(length, from + CHUNK_BYTES)
    const p = readPart(from, to)
    parts.push(p)
    p.catch(noop)
    const tracked = p.finally(() => inFlight.delete(tracked))
    tracked.catch(noop)
    inFlight.add(tracked)
    if (inFlight.size >= WINDOW) await Promise.race(inFlight).catch(noop)
  }
  const ends = await Promise.all(parts)
  // The bytes up to the first part that stopped short are the file's.
  let filled = length
  for (let i = 0; i < ends.length; i++) {
    const to = Math.min(length, (i + 1) * CHUNK_BYTES)
    if (ends[i] < to) {
      filled = ends[i]
      break
    }
  }
  return filled === length ? buf : buf.subarray(0, filled)
}

/** What `get`/`stat` raise for a path that exists but is not a regular file: it is not an object. */
function notAnObject(name: string): NotFoundError {
  return new NotFoundError(name, `sftp remote: ${name}: not found (not a regular file)`)
}

function isValidSegment(segment: string): boolean {
  return /^[A-Za-z0-9._-]+$/.test(segment) && segment !== '.' && segment !== '..'
}

/** Like assertObjectName, and also refuses the names reserved for temporary files. */
function assertSftpName(name: string): void {
  assertObjectName(name)
  if (name.split('/').some((s) => s.startsWith(TEMP_PREFIX))) {
    throw new TypeError(`invalid object name: ${JSON.stringify(name)} (segments starting with '${TEMP_PREFIX}' are reserved)`)
  }
}

/** Throws a TypeError unless `prefix` is '' or could start a valid object name. */
function assertListPrefix(prefix: string): void {
  const complete = prefix.split('/').slice(0, -1)
  if (!LIST_PREFIX.test(prefix) || complete.some((s) => s === '.' || s === '..')) {
    throw new TypeError(`invalid list prefix: ${JSON.stringify(prefix)}`)
  }
}

function assertRange(range: ByteRange): void {
  if (!Number.isSafeInteger(range.offset) || range.offset < 0 || !Number.isSafeInteger(range.length) || range.length < 0) {
    throw new TypeError(`invalid byte range: offset ${range.offset}, length ${range.length}`)
  }
}
