/**
 * remote/memory/: a Remote held in a Map, for tests and dry runs. Nothing
 * survives the process. Imports only ../remote.js and ../../errors.js.
 */
import { ConfigError, ExistsError, NotFoundError } from '../../errors.js'
import type { ByteRange, ObjectInfo, PutOptions, Remote, RemoteProperties } from '../remote.js'
import { assertObjectName } from '../remote.js'

/** Configuration of a MemoryRemote, as returned by `parseConfig`. */
export interface MemoryConfig {
  /** Only shown in `properties.location`; two remotes opened with the same name do not share objects. */
  name?: string
}

const SCHEME = 'memory://'

/**
 * Parses `memory://<name>`. Does no I/O.
 *
 * @throws ConfigError when `url` does not start with `memory://`.
 */
export function parseConfig(url: string): MemoryConfig {
  // Schemes are case-insensitive (RFC 3986 §3.1).
  if (url.slice(0, SCHEME.length).toLowerCase() !== SCHEME) throw new ConfigError(`memory remote: expected ${SCHEME}<name>, got ${JSON.stringify(url)}`)
  return { name: url.slice(SCHEME.length) }
}

/**
 * A Remote keeping objects in memory. Buffers are copied on the way in and
 * out, so a caller mutating its buffer (before or after `put`, or the result
 * of `get`) never changes what is stored. Every operation is atomic, and
 * `put` without `exclusive` replaces.
 */
export class MemoryRemote implements Remote {
  readonly properties: RemoteProperties
  private readonly objects = new Map<string, Buffer>()

  private constructor(name: string) {
    this.properties = { location: SCHEME + name, maxConnections: 16 }
  }

  /** Opens a new, empty remote. Each call returns an independent store, whatever the name. */
  static async open(config: MemoryConfig = {}): Promise<MemoryRemote> {
    return new MemoryRemote(config.name ?? '')
  }

  /**
   * Stores a copy of `data` under `name`.
   *
   * @throws TypeError for an invalid name.
   * @throws ExistsError when `options.exclusive` is set and the name exists.
   */
  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertObjectName(name)
    if (options.exclusive === true && this.objects.has(name)) throw new ExistsError(name)
    this.objects.set(name, Buffer.from(data)) // Buffer.from of a view copies the bytes
  }

  /**
   * Returns a copy of an object, or of `range.length` bytes from `range.offset`.
   *
   * @throws TypeError for an invalid name or range.
   * @throws NotFoundError when the object does not exist.
   */
  async get(name: string, range?: ByteRange): Promise<Buffer> {
    if (range !== undefined) assertRange(range)
    const data = this.lookup(name)
    if (range === undefined) return Buffer.from(data)
    return Buffer.from(data.subarray(range.offset, range.offset + range.length))
  }

  /**
   * Reports an object's size.
   *
   * @throws TypeError for an invalid name.
   * @throws NotFoundError when the object does not exist.
   */
  async stat(name: string): Promise<ObjectInfo> {
    return { name, size: this.lookup(name).length }
  }

  /**
   * Yields the objects whose name starts with `prefix`, as of the call
   * (objects put during the iteration are not yielded; deleted ones may be).
   */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const matches: ObjectInfo[] = []
    for (const [name, data] of this.objects) {
      if (name.startsWith(prefix)) matches.push({ name, size: data.length })
    }
    yield* matches
  }

  /**
   * Removes an object. Deleting a missing object resolves (idempotent).
   *
   * @throws TypeError for an invalid name.
   */
  async delete(name: string): Promise<void> {
    assertObjectName(name)
    this.objects.delete(name)
  }

  /** Keeps the objects: a closed MemoryRemote holds no resources but its Map. */
  async close(): Promise<void> {}

  private lookup(name: string): Buffer {
    assertObjectName(name)
    const data = this.objects.get(name)
    if (data === undefined) throw new NotFoundError(name)
    return data
  }
}

function assertRange(range: ByteRange): void {
  if (!Number.isSafeInteger(range.offset) || range.offset < 0 || !Number.isSafeInteger(range.length) || range.length < 0) {
    throw new TypeError(`invalid byte range: offset ${range.offset}, length ${range.length}`)
  }
}
