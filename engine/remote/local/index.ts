/**
 * remote/local/: a Remote on a local (or mounted) directory. Each object is a
 * file under the root at its name's path (`data/ab/ab12…` → `<root>/data/ab/ab12…`).
 * Imports only node builtins, ../remote.js and ../../errors.js.
 */
import { randomBytes } from 'node:crypto'
import type { Dirent, Stats } from 'node:fs'
import { close as closeCb, constants as fsConstants, fstat as fstatCb, fsync as fsyncCb, open as openCb, read as readCb, write as writeCb } from 'node:fs'
import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigError, ExistsError, NotFoundError, RemoteError } from '../../errors.js'
import type { ByteRange, ObjectInfo, ObjectProtection, ObjectWriter, ProtectionRequest, PutOptions, Remote, RemoteProperties } from '../remote.js'
import { assertObjectName } from '../remote.js'

/** Configuration of a LocalRemote, as returned by `parseConfig`. */
export interface LocalConfig {
  /** Root directory; a relative path is resolved against the working directory by `open`. */
  path: string
  /** Create the root directory (and missing parents) when it does not exist. */
  create?: boolean
}

/**
 * Prefix of the temporary files `put` writes next to their target. `list`
 * never yields them, and `put` refuses names with a segment starting with it,
 * so a stored object can never be mistaken for an abandoned write.
 */
const TEMP_PREFIX = '.tmp-'

/** errno codes worth retrying: the same call may succeed once the system has recovered. */
const TRANSIENT_CODES = new Set(['EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'ETIMEDOUT'])

/** How many `stat` calls `list` keeps in flight per directory (one at a time is slow on large directories). */
const LIST_STAT_BATCH = 64

/** A valid list prefix: complete segments, each followed by '/', then an optional partial segment. */
const LIST_PREFIX = /^([A-Za-z0-9._-]+\/)*[A-Za-z0-9._-]*$/

/**
 * Parses a local remote location: an absolute path (`/srv/backup`), a
 * relative path (`backup`, `./backup`), or a file URL (`file:///srv/my%20backup`,
 * percent-escapes decoded). Does no I/O.
 *
 * @throws ConfigError for an empty location, a file URL naming a remote host
 *   or carrying a query/fragment, or a URL of another scheme.
 */
export function parseConfig(url: string): LocalConfig {
  if (url === '') throw new ConfigError('local remote: empty path')
  if (/^file:/i.test(url)) {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch (err) {
      throw new ConfigError(`local remote: invalid file URL ${JSON.stringify(url)}`, { cause: err })
    }
    // fileURLToPath silently drops these; a '#' or '?' the user meant as part of the path must be written %23 / %3F.
    if (parsed.search !== '' || parsed.hash !== '') {
      throw new ConfigError(`local remote: file URL must not have a query or fragment: ${JSON.stringify(url)}`)
    }
    try {
      return { path: fileURLToPath(parsed) }
    } catch (err) {
      throw new ConfigError(`local remote: unusable file URL ${JSON.stringify(url)}`, { cause: err })
    }
  }
  // Two or more letters before ':' is a scheme; one letter is a Windows drive (C:\backup).
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]+):/.exec(url)
  if (scheme) throw new ConfigError(`local remote: not a path or file URL: scheme '${scheme[1]}'`)
  return { path: url }
}

/**
 * A Remote storing each object as a file under a root directory.
 *
 * - `put` writes `<dir>/.tmp-<random>`, fsyncs it, renames it over the target
 *   (exclusive: hard-links it, so an existing name fails with ExistsError), then
 *   fsyncs the directory. A crash leaves at most a temporary file, never a
 *   partial object; `removeStaleTemp` cleans those up.
 * - A name that is a directory here (a prefix of other names, like `data`) is
 *   not an object: `get`/`stat` reject with NotFoundError, `delete` resolves.
 * - A name cannot be both an object and the directory of other objects
 *   (`config` and `config/x`): the second `put` rejects with RemoteError.
 * - `delete` does not fsync the directory: a delete undone by a crash leaves
 *   an unreferenced object, which the next prune removes again.
 */
export class LocalRemote implements Remote {
  readonly properties: RemoteProperties
  /** Absolute root directory. */
  readonly root: string
  /** Directories known to exist (or being created), so a put costs no mkdir call after the first one in a directory. */
  private readonly dirs = new Map<string, Promise<void>>()
  /**
   * Immutability on a local disk: protected objects become read-only files (mode 0444). That stops
   * accidental changes and coldstore's own prune (which refuses objects that freezes need), not the
   * owner of the directory or root, who can still delete them: a local disk cannot enforce more.
   */
  readonly protection: ObjectProtection

  private constructor(root: string) {
    this.root = root
    this.protection = {
      mechanism: 'read-only files (mode 0444) on the local disk',
      protect: async (names: readonly string[], _request: ProtectionRequest): Promise<void> => {
        for (const name of names) {
          assertObjectName(name)
          try {
            await fs.chmod(this.pathOf(name), 0o444)
          } catch (err) {
            throw mapError(err, 'protect', name)
          }
        }
      },
      isProtected: async (name: string): Promise<boolean> => {
        assertObjectName(name)
        try {
          return ((await fs.stat(this.pathOf(name))).mode & 0o222) === 0
        } catch (err) {
          if (errnoOf(err) === 'ENOENT') return false
          throw mapError(err, 'stat', name)
        }
      },
    }
    // Enough parallel fsyncs to keep an SSD or a network mount busy; a spinning disk would prefer fewer.
    this.properties = { location: root, maxConnections: 8 }
  }

  /**
   * Opens the remote rooted at `config.path`.
   *
   * @throws NotFoundError when the directory is missing and `create` is not set.
   * @throws ConfigError when the path exists but is not a directory.
   * @throws RemoteError for other I/O failures.
   */
  static async open(config: LocalConfig): Promise<LocalRemote> {
    const root = path.resolve(config.path)
    if (config.create === true) {
      await mkdirDurable(root).catch((err: unknown) => {
        const code = errnoOf(err)
        // EEXIST: the path is a file; ENOTDIR: one of its parents is.
        if (code === 'EEXIST' || code === 'ENOTDIR') throw new ConfigError(`remote path is not a directory: ${root}`, { cause: err })
        throw mapError(err, 'create remote directory', root)
      })
    }
    let st: Stats
    try {
      st = await fs.stat(root)
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') throw new NotFoundError(root, `remote directory not found: ${root}`, { cause: err })
      throw mapError(err, 'open remote directory', root)
    }
    if (!st.isDirectory()) throw new ConfigError(`remote path is not a directory: ${root}`)
    return new LocalRemote(root)
  }

  /**
   * Writes `data` under `name` atomically and durably.
   *
   * @throws TypeError for an invalid name, or one with a segment starting with `.tmp-`.
   * @throws ExistsError when `options.exclusive` is set and the name exists.
   * @throws RemoteError for I/O failures (transient for EAGAIN, EBUSY, EMFILE, ENFILE, ETIMEDOUT).
   */
  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertLocalName(name)
    const target = this.pathOf(name)
    const dir = path.dirname(target)
    const temp = path.join(dir, TEMP_PREFIX + randomBytes(8).toString('hex'))
    try {
      await this.ensureDir(dir)
      try {
        await writeFileDurable(temp, data)
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw err
        // The directory was removed behind our back since it was cached: create it again, once.
        this.forgetDir(dir)
        await this.ensureDir(dir)
        await writeFileDurable(temp, data)
      }
      if (options.exclusive === true) {
        await linkExclusive(temp, target, name)
      } else {
        await fs.rename(temp, target)
        this.dropRead(name) // a descriptor kept for ranged reads would still read the replaced file
      }
      await fsyncDir(dir)
    } catch (err) {
      // After a successful rename the temp name no longer exists; this only removes leftovers of a failed put.
      await fs.rm(temp, { force: true }).catch(() => undefined)
      throw mapError(err, 'put', name)
    }
  }

  /**
   * Starts an object written in pieces: a temporary file in `dir` (below the
   * root; created when missing) that `commit` fsyncs and renames to its name,
   * then fsyncs the target directory, as `put` does. Writes are positioned,
   * so several can be in flight at once.
   */
  createWriter(dir: string): ObjectWriter {
    const d = dir.replace(/\/+$/, '')
    if (d !== '') assertLocalName(d)
    const dirPath = d === '' ? this.root : this.pathOf(d)
    return new LocalObjectWriter(this, dirPath)
  }

  /** Renames a finished temporary file to `name` durably (for LocalObjectWriter). */
  async commitTemp(temp: string, name: string): Promise<void> {
    assertLocalName(name)
    const target = this.pathOf(name)
    const dir = path.dirname(target)
    await this.ensureDir(dir)
    await fs.rename(temp, target)
    this.dropRead(name)
    await fsyncDir(dir)
  }

  /** Creates `dir` (below the root) durably unless known to exist (for LocalObjectWriter). */
  prepareDir(dir: string): Promise<void> {
    return this.ensureDir(dir)
  }

  /**
   * Reads an object, or `range.length` bytes of it from `range.offset` (a
   * positioned read: the rest of the file is not read).
   *
   * @throws TypeError for an invalid name or range.
   * @throws NotFoundError when the object does not exist.
   * @throws RemoteError for other I/O failures.
   */
  async get(name: string, range?: ByteRange): Promise<Buffer> {
    assertObjectName(name)
    if (range !== undefined) return this.getRange(name, range)
    const file = this.pathOf(name)
    let handle: fs.FileHandle | undefined
    try {
      handle = await fs.open(file, 'r')
      const st = await handle.stat()
      if (!st.isFile()) throw notAnObject(name)
      return await handle.readFile()
    } catch (err) {
      throw mapError(err, 'get', name)
    } finally {
      await handle?.close().catch(() => undefined)
    }
  }

  /**
   * Ranged reads (pack blobs: thousands per restore, listing or browse)
   * keep their files open: an LRU of READ_FDS descriptors saves an open,
   * fstat and close per read. Objects never change once written; `delete`
   * drops a name's descriptor so this process sees the object gone.
   */
  private async getRange(name: string, range: ByteRange): Promise<Buffer> {
    assertRange(range)
    let entry: OpenForRead | undefined
    try {
      entry = await this.acquireRead(name)
      // Capping by the size keeps a huge `length` (read "to the end") from allocating a huge buffer.
      const length = Math.max(0, Math.min(range.length, entry.size - range.offset))
      const buf = Buffer.allocUnsafe(length)
      let filled = 0
      while (filled < length) {
        const n = await readAt(entry.fd, buf, filled, length - filled, range.offset + filled)
        if (n === 0) break // the file shrank since fstat; a short read is what the contract allows
        filled += n
      }
      return filled === length ? buf : buf.subarray(0, filled)
    } catch (err) {
      throw mapError(err, 'get', name)
    } finally {
      if (entry) this.releaseRead(entry)
    }
  }

  private readonly reads = new Map<string, Promise<OpenForRead>>()

  private async acquireRead(name: string): Promise<OpenForRead> {
    let p = this.reads.get(name)
    if (p) {
      this.reads.delete(name) // re-insert: most recently used last
      this.reads.set(name, p)
    } else {
      p = openForRead(this.pathOf(name), name)
      this.reads.set(name, p)
      p.catch(() => this.reads.get(name) === p && this.reads.delete(name))
      while (this.reads.size > READ_FDS) {
        const [oldest, q] = this.reads.entries().next().value as [string, Promise<OpenForRead>]
        this.reads.delete(oldest)
        void q.then((e) => this.retire(e), () => undefined)
      }
    }
    const e = await p
    e.refs++
    return e
  }

  private releaseRead(e: OpenForRead): void {
    e.refs--
    if (e.retired && e.refs === 0) void closeFd(e.fd).catch(() => undefined)
  }

  /** Closes a descriptor dropped from the cache once no read uses it. */
  private retire(e: OpenForRead): void {
    if (e.retired) return
    e.retired = true
    if (e.refs === 0) void closeFd(e.fd).catch(() => undefined)
  }

  private dropRead(name: string): void {
    const p = this.reads.get(name)
    if (!p) return
    this.reads.delete(name)
    void p.then((e) => this.retire(e), () => undefined)
  }

  /**
   * Reports an object's size.
   *
   * @throws TypeError for an invalid name.
   * @throws NotFoundError when the object does not exist.
   * @throws RemoteError for other I/O failures.
   */
  async stat(name: string): Promise<ObjectInfo> {
    assertObjectName(name)
    try {
      const st = await fs.stat(this.pathOf(name))
      if (!st.isFile()) throw notAnObject(name)
      return { name, size: st.size }
    } catch (err) {
      throw mapError(err, 'stat', name)
    }
  }

  /**
   * Yields every object whose name starts with `prefix`, in no particular
   * order. Only the directory named by the prefix's part up to its last '/' is
   * walked (`data/ab/` reads only `data/ab/`). Temporary files of puts and
   * files whose names are not valid object names are skipped. Objects added or
   * removed during the walk may or may not be yielded.
   *
   * @throws TypeError for a prefix that no valid name can start with in a way
   *   that maps to a path below the root (`../`, `/x`, `a//`).
   * @throws RemoteError for I/O failures other than a missing directory.
   */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertListPrefix(prefix)
    const slash = prefix.lastIndexOf('/')
    const dirPart = prefix.slice(0, slash + 1) // '' or 'data/ab/'
    const partial = prefix.slice(slash + 1) // what the first-level entries must start with
    yield* this.walk(dirPart, partial)
  }

  /**
   * Deletes an object. Deleting a missing object resolves (idempotent).
   *
   * @throws TypeError for an invalid name.
   * @throws RemoteError for I/O failures.
   */
  async delete(name: string): Promise<void> {
    assertObjectName(name)
    this.dropRead(name)
    const file = this.pathOf(name)
    try {
      await fs.unlink(file)
    } catch (err) {
      const code = errnoOf(err)
      if (code === 'ENOENT' || code === 'ENOTDIR') return
      // unlink of a directory fails with EISDIR (Linux) or EPERM (macOS); a directory is not an object, so nothing to delete.
      if ((code === 'EISDIR' || code === 'EPERM') && (await isDirectory(file))) return
      throw mapError(err, 'delete', name)
    }
  }

  /** Closes the descriptors kept for ranged reads. */
  async close(): Promise<void> {
    for (const name of [...this.reads.keys()]) this.dropRead(name)
  }

  /**
   * Deletes temporary files left by interrupted puts whose modification time
   * is more than `olderThanMs` before `nowMs`. Walks the whole tree. Pick an
   * age far above the longest put (hours) so a put in progress in another
   * process is never disturbed. Returns the number of files removed.
   *
   * @throws RemoteError for I/O failures.
   */
  async removeStaleTemp(olderThanMs: number, nowMs: number = Date.now()): Promise<number> {
    let removed = 0
    const visit = async (dir: string): Promise<void> => {
      for (const entry of await readDirOrEmpty(dir)) {
        const full = path.join(dir, entry.name)
        if (entry.isDirectory()) {
          await visit(full)
        } else if (entry.name.startsWith(TEMP_PREFIX)) {
          const st = await fs.stat(full).catch(() => undefined)
          if (st !== undefined && st.mtimeMs < nowMs - olderThanMs) {
            await fs.rm(full, { force: true })
            removed++
          }
        }
      }
    }
    try {
      await visit(this.root)
    } catch (err) {
      throw mapError(err, 'remove stale temporary files', this.root)
    }
    return removed
  }

  /**
   * Makes sure `dir` (below the root) exists, creating it and its missing
   * parents durably; each directory is checked once per instance. A put into a
   * new directory waits for the creation of every directory above it, also
   * when a concurrent put started that creation, so no put resolves before
   * the directory entries leading to its object are on disk.
   */
  private ensureDir(dir: string): Promise<void> {
    if (dir === this.root) return Promise.resolve()
    let pending = this.dirs.get(dir)
    if (pending === undefined) {
      pending = this.ensureDir(path.dirname(dir)).then(() => mkdirOne(dir))
      this.dirs.set(dir, pending)
      pending.catch(() => this.dirs.delete(dir))
    }
    return pending
  }

  /** Forgets that `dir` and its parents exist (they were removed behind our back). */
  private forgetDir(dir: string): void {
    for (let d = dir; d !== this.root && d !== path.dirname(d); d = path.dirname(d)) this.dirs.delete(d)
  }

  private pathOf(name: string): string {
    // Valid names contain no '..' and no leading '/', so the result always stays below the root.
    return path.join(this.root, ...name.split('/'))
  }

  /** Yields objects below `dirPart` ('' or ending in '/'), whose first-level entry names start with `partial`. */
  private async *walk(dirPart: string, partial: string): AsyncGenerator<ObjectInfo> {
    const dir = dirPart === '' ? this.root : this.pathOf(dirPart.slice(0, -1))
    let entries: Dirent[]
    try {
      entries = await readDirOrEmpty(dir)
    } catch (err) {
      throw mapError(err, 'list', dirPart)
    }
    const candidates = entries.filter(
      (e) => e.name.startsWith(partial) && !e.name.startsWith(TEMP_PREFIX) && isValidSegment(e.name),
    )
    const subdirs: string[] = []
    for (let i = 0; i < candidates.length; i += LIST_STAT_BATCH) {
      const batch = candidates.slice(i, i + LIST_STAT_BATCH)
      const infos = await Promise.all(
        batch.map(async (entry): Promise<ObjectInfo | undefined> => {
          if (entry.isDirectory()) {
            subdirs.push(entry.name)
            return undefined
          }
          // Regular files, symlinks to files, and entries of unknown type (some filesystems report DT_UNKNOWN).
          let st: Stats
          try {
            st = await fs.stat(path.join(dir, entry.name))
          } catch (err) {
            if (errnoOf(err) === 'ENOENT') return undefined // deleted since readdir
            throw mapError(err, 'list', dirPart + entry.name)
          }
          if (st.isFile()) return { name: dirPart + entry.name, size: st.size }
          // Only entries of unknown type are followed; a symlink to a directory is not part of the repository layout.
          if (st.isDirectory() && !entry.isSymbolicLink()) subdirs.push(entry.name)
          return undefined
        }),
      )
      for (const info of infos) if (info !== undefined) yield info
    }
    // Below the first level every name matches the prefix already.
    for (const sub of subdirs) yield* this.walk(`${dirPart}${sub}/`, '')
  }
}

/** Like assertObjectName, and also refuses the names reserved for temporary files. */
function assertLocalName(name: string): void {
  assertObjectName(name)
  if (name.split('/').some((s) => s.startsWith(TEMP_PREFIX))) {
    throw new TypeError(`invalid object name: ${JSON.stringify(name)} (segments starting with '${TEMP_PREFIX}' are reserved)`)
  }
}

/** Throws a TypeError unless `prefix` is '' or could start a valid object name. */
function assertListPrefix(prefix: string): void {
  const complete = prefix.split('/').slice(0, -1) // segments used as directories; the last one is only matched
  if (!LIST_PREFIX.test(prefix) || complete.some((s) => s === '.' || s === '..')) {
    throw new TypeError(`invalid list prefix: ${JSON.stringify(prefix)}`)
  }
}

function isValidSegment(segment: string): boolean {
  return /^[A-Za-z0-9._-]+$/.test(segment) && segment !== '.' && segment !== '..'
}

function assertRange(range: ByteRange): void {
  if (!Number.isSafeInteger(range.offset) || range.offset < 0 || !Number.isSafeInteger(range.length) || range.length < 0) {
    throw new TypeError(`invalid byte range: offset ${range.offset}, length ${range.length}`)
  }
}

/** What `get`/`stat` raise for a path that exists but is a directory or device: it is not an object. */
function notAnObject(name: string): NotFoundError {
  return new NotFoundError(name, `local remote: ${name}: not found (not a regular file)`)
}

function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code
  return undefined
}

/**
 * Translates a filesystem error into the engine's errors, keeping the original
 * as `cause`. A missing path means a missing object, except for `put` (and
 * other writes), where it is a failure of the remote's layout.
 */
function mapError(err: unknown, operation: string, name: string): Error {
  if (err instanceof TypeError || err instanceof NotFoundError || err instanceof ExistsError) return err
  const code = errnoOf(err)
  const detail = err instanceof Error ? err.message : String(err)
  // ENOTDIR/EISDIR: a path component is a file, or the name is a directory; either way there is no such object.
  const reading = operation === 'get' || operation === 'stat'
  if (reading && (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR')) {
    return new NotFoundError(name, `local remote: ${operation} ${name}: not found`, { cause: err })
  }
  const transient = code !== undefined && TRANSIENT_CODES.has(code)
  return new RemoteError(`local remote: ${operation} ${name} failed: ${detail}`, { transient, objectName: name }, { cause: err })
}

async function readDirOrEmpty(dir: string): Promise<Dirent[]> {
  try {
    return await fs.readdir(dir, { withFileTypes: true })
  } catch (err) {
    const code = errnoOf(err)
    // A missing directory just holds no objects (for example `data/` of an empty repository).
    if (code === 'ENOENT' || code === 'ENOTDIR') return []
    throw err
  }
}

async function isDirectory(file: string): Promise<boolean> {
  try {
    return (await fs.lstat(file)).isDirectory()
  } catch {
    return false
  }
}

/**
 * An object written in pieces into `<dir>/.tmp-<random>` with positioned
 * writes (raw file descriptor calls: cheaper than FileHandle for thousands of
 * small writes), fsync'd and renamed at commit.
 */
class LocalObjectWriter implements ObjectWriter {
  private readonly remote: LocalRemote
  private readonly temp: string
  private readonly fd: Promise<number>
  private position = 0
  private readonly inFlight = new Set<Promise<void>>()
  private failure: unknown = null
  private finished = false

  constructor(remote: LocalRemote, dir: string) {
    this.remote = remote
    this.temp = path.join(dir, TEMP_PREFIX + randomBytes(8).toString('hex'))
    this.fd = remote.prepareDir(dir).then(() => new Promise<number>((resolve, reject) =>
      openCb(this.temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644, (err, fd) => (err ? reject(err) : resolve(fd)))))
    this.fd.catch(() => undefined) // reported by the writes and by commit
  }

  write(data: Uint8Array): Promise<void> {
    if (this.finished) return Promise.reject(new Error('write after commit or abort'))
    const at = this.position
    this.position += data.length
    const p = this.fd.then((fd) => writeAllAt(fd, data, at)).then(
      () => { this.inFlight.delete(p) },
      (err: unknown) => {
        this.inFlight.delete(p)
        this.failure ??= err
        throw mapError(err, 'write', this.temp)
      },
    )
    this.inFlight.add(p)
    return p
  }

  async commit(name: string): Promise<void> {
    if (this.finished) throw new Error('commit after commit or abort')
    this.finished = true
    try {
      await Promise.allSettled([...this.inFlight])
      if (this.failure) throw this.failure
      const fd = await this.fd
      await new Promise<void>((resolve, reject) => fsyncCb(fd, (err) => (err ? reject(err) : resolve())))
      await this.closeOnce()
      await this.remote.commitTemp(this.temp, name)
      this.committed = true
    } catch (err) {
      await this.discard()
      throw mapError(err, 'put', name)
    }
  }

  async abort(): Promise<void> {
    this.finished = true
    await Promise.allSettled([...this.inFlight])
    if (!this.committed) await this.discard()
  }

  private committed = false
  private closed = false

  /** Closes the descriptor once (a second close could hit a number reused by another file). */
  private async closeOnce(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const fd = await this.fd.catch(() => null)
    if (fd !== null) await closeFd(fd)
  }

  private async discard(): Promise<void> {
    await this.closeOnce().catch(() => undefined)
    await fs.rm(this.temp, { force: true }).catch(() => undefined)
  }
}

/** Ranged reads keep at most this many object files open. */
const READ_FDS = 32

/** An object file kept open for ranged reads. */
interface OpenForRead {
  fd: number
  size: number
  /** Reads in progress. */
  refs: number
  /** Dropped from the cache: closed when the last read ends. */
  retired: boolean
}

async function openForRead(file: string, name: string): Promise<OpenForRead> {
  const fd = await new Promise<number>((resolve, reject) => openCb(file, fsConstants.O_RDONLY, (err, n) => (err ? reject(err) : resolve(n))))
  try {
    const st = await new Promise<Stats>((resolve, reject) => fstatCb(fd, (err, x) => (err ? reject(err) : resolve(x))))
    if (!st.isFile()) throw notAnObject(name)
    return { fd, size: st.size, refs: 0, retired: false }
  } catch (err) {
    await closeFd(fd).catch(() => undefined)
    throw err
  }
}

function readAt(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => readCb(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))))
}

/** Writes all of `data` at `position` (retrying short writes). */
async function writeAllAt(fd: number, data: Uint8Array, position: number): Promise<void> {
  let done = 0
  while (done < data.length) {
    const n = await new Promise<number>((resolve, reject) =>
      writeCb(fd, data, done, data.length - done, position + done, (err, written) => (err ? reject(err) : resolve(written))))
    done += n
  }
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => closeCb(fd, (err) => (err ? reject(err) : resolve())))
}

/** Writes a new file (failing if it exists) and flushes it to stable storage before returning. */
async function writeFileDurable(file: string, data: Uint8Array): Promise<void> {
  const handle = await fs.open(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Makes `target` a hard link to `temp` and removes `temp`. link() fails with
 * EEXIST instead of replacing, which makes the exclusive put atomic.
 */
async function linkExclusive(temp: string, target: string, name: string): Promise<void> {
  try {
    await fs.link(temp, target)
  } catch (err) {
    const code = errnoOf(err)
    if (code === 'EEXIST') throw new ExistsError(name, undefined, { cause: err })
    // Some filesystems (FAT, some network mounts) have no hard links. Fall back to check-then-rename:
    // only two processes creating the same exclusive name at the same instant can both succeed.
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
      const exists = await fs.lstat(target).then(
        () => true,
        (e: unknown) => (errnoOf(e) === 'ENOENT' ? false : Promise.reject(e)),
      )
      if (exists) throw new ExistsError(name, undefined, { cause: err })
      await fs.rename(temp, target)
      return
    }
    throw err
  }
  await fs.unlink(temp)
}

/** Creates one directory whose parent exists, and makes its entry in the parent durable. An existing directory is fine. */
async function mkdirOne(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir)
  } catch (err) {
    // Also when a file is in the way: the write into it then fails with ENOTDIR, which reports it better.
    if (errnoOf(err) === 'EEXIST') return
    throw err
  }
  await fsyncDir(path.dirname(dir))
}

/**
 * Creates `dir` and missing parents, fsyncing every directory that gained an
 * entry, so a new directory survives a crash together with the files put in it.
 */
async function mkdirDurable(dir: string): Promise<void> {
  const first = await fs.mkdir(dir, { recursive: true })
  if (first === undefined) return // already existed
  // Directories from the parent of the first created one down to `dir` gained an entry.
  const created: string[] = []
  for (let d = dir; ; d = path.dirname(d)) {
    created.push(d)
    if (d === first || path.dirname(d) === d) break
  }
  await fsyncDir(path.dirname(first))
  for (const d of created.reverse()) await fsyncDir(d)
}

/** Flushes a directory's entries (new, renamed or linked names) to stable storage. */
async function fsyncDir(dir: string): Promise<void> {
  // Windows cannot open directories for fsync; NTFS journals metadata, so there is nothing to do there.
  if (process.platform === 'win32') return
  const handle = await fs.open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
