/**
 * ForwardingRemote: the base of the wrappers that add behaviour around every call of an inner remote
 * (retries, timeouts, circuit breaker, concurrency and bandwidth limits). It forwards what the inner remote
 * has and nothing else: `putFile`, `createWriter`, `archive` and `protection` exist on the wrapper exactly
 * when they exist on `inner`, and their calls go through the same `around` as the rest.
 *
 * Imports only ../remote.js.
 */
import type { ArchiveAccess, ByteRange, ObjectInfo, ObjectProtection, ObjectWriter, PutOptions, Remote, RemoteProperties } from '../remote.js'

/** Which call of a remote (for timeouts per call, retry and breaker messages). Writer calls are `write` and `commit`. */
export type RemoteCall =
  | 'put' | 'putFile' | 'get' | 'stat' | 'list' | 'delete' | 'write' | 'commit'
  | 'state' | 'requestRestore' | 'protect' | 'isProtected'

/** One call, as the wrappers see it. */
export interface CallInfo {
  call: RemoteCall
  /** The object name (list: the prefix; write: the writer's directory; protect: the first name). */
  name: string
  /** Payload bytes when known before the call: put and write data, ranged get length. putFile fills it in from the file's size. */
  bytes?: number
}

/** Ranged reads longer than this are "to the end" reads: their size is not known before the call. */
const KNOWN_RANGE_BYTES = 1024 * 1024 * 1024

/**
 * A Remote passing every call to `inner` through `around`. Subclasses implement `around` and override the
 * calls that need more (retries of listings, ambiguous writes, bandwidth accounting). Owns `inner`: `close`
 * closes it.
 */
export abstract class ForwardingRemote implements Remote {
  readonly properties: RemoteProperties
  protected readonly inner: Remote
  /** Present when `inner.putFile` is. */
  putFile?: (name: string, path: string, options?: PutOptions) => Promise<void>
  /** Present when `inner.createWriter` is. */
  createWriter?: (dir: string) => ObjectWriter
  readonly archive?: ArchiveAccess
  readonly protection?: ObjectProtection

  constructor(inner: Remote) {
    this.inner = inner
    this.properties = inner.properties
    const putFile = inner.putFile?.bind(inner)
    if (putFile) this.putFile = (name, path, options) => this.forwardPutFile(name, path, options, putFile)
    const createWriter = inner.createWriter?.bind(inner)
    if (createWriter) this.createWriter = (dir) => this.wrapWriter(createWriter(dir), dir)
    if (inner.archive) this.archive = forwardArchive(inner.archive, (info, fn) => this.around(info, fn))
    if (inner.protection) this.protection = forwardProtection(inner.protection, (info, fn) => this.around(info, fn))
  }

  /** Runs one call of the inner remote (`fn`) with the wrapper's behaviour. */
  protected abstract around<T>(info: CallInfo, fn: () => Promise<T>): Promise<T>

  put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    return this.around({ call: 'put', name, bytes: data.length }, () => this.inner.put(name, data, options))
  }

  /** `inner.putFile` through `around`; subclasses that need the file's size override this. */
  protected forwardPutFile(name: string, path: string, options: PutOptions | undefined, putFile: NonNullable<Remote['putFile']>): Promise<void> {
    return this.around({ call: 'putFile', name }, () => putFile(name, path, options))
  }

  get(name: string, range?: ByteRange): Promise<Buffer> {
    return this.around({ call: 'get', name, bytes: knownRangeBytes(range) }, () => this.inner.get(name, range))
  }

  stat(name: string): Promise<ObjectInfo> {
    return this.around({ call: 'stat', name }, () => this.inner.stat(name))
  }

  /** Each step of the iteration (each `next()`, which may fetch a page) is one call through `around`. */
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return aroundEachStep(() => this.inner.list(prefix), (fn) => this.around({ call: 'list', name: prefix }, fn))
  }

  delete(name: string): Promise<void> {
    return this.around({ call: 'delete', name }, () => this.inner.delete(name))
  }

  /** Closes `inner`. */
  close(): Promise<void> {
    return this.inner.close()
  }

  /**
   * The inner remote's writer with `write` and `commit` through `around`; `abort` goes straight through (it
   * must always work).
   *
   * Writes may be issued without waiting for earlier ones, and the inner writer places each at the offset
   * it has when the inner `write` is called, so the inner calls must come in the caller's order even when
   * `around` delays them differently (a bandwidth wait, a queue for a connection): each write is handed to
   * `around` only once the one before it has reached the inner writer (or failed), and `commit` only once
   * every write has. The inner writes themselves still overlap.
   */
  protected wrapWriter(writer: ObjectWriter, dir: string): ObjectWriter {
    let handedOver: Promise<void> = Promise.resolve()
    return {
      write: (data) => {
        const previous = handedOver
        let done = (): void => {}
        handedOver = new Promise<void>((resolve) => (done = resolve))
        const p = previous.then(() =>
          this.around({ call: 'write', name: dir, bytes: data.length }, () => {
            done()
            return writer.write(data)
          }),
        )
        p.then(done, done)
        return p
      },
      commit: (name) => handedOver.then(() => this.around({ call: 'commit', name }, () => writer.commit(name))),
      abort: () => writer.abort(),
    }
  }
}

/** The length of a ranged read when it is a real bound (not "to the end"). */
export function knownRangeBytes(range: ByteRange | undefined): number | undefined {
  if (range === undefined || !(range.length >= 0) || range.length > KNOWN_RANGE_BYTES) return undefined
  return range.length
}

/** An iterable whose every `next()` runs through `step`; `return()` (an abandoned loop) goes straight to the source. */
export function aroundEachStep<T>(source: () => AsyncIterable<T>, step: <R>(fn: () => Promise<R>) => Promise<R>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      let it: AsyncIterator<T> | null = null
      return {
        next: () => step(() => (it ??= source()[Symbol.asyncIterator]()).next()),
        return: async (value?: unknown) => {
          await it?.return?.(value)
          return { done: true, value: undefined }
        },
      }
    },
  }
}

type Around = <T>(info: CallInfo, fn: () => Promise<T>) => Promise<T>

/**
 * Every member of ArchiveAccess and ObjectProtection, so that the compiler refuses this file when one is
 * added and not forwarded below.
 */
const ARCHIVE_MEMBERS = { provider: 1, dataClass: 1, hotClass: 1, dataNeedsRestore: 1, state: 1, requestRestore: 1 } satisfies Record<keyof ArchiveAccess, 1>
const PROTECTION_MEMBERS = { mechanism: 1, enforcedByRemote: 1, protect: 1, isProtected: 1 } satisfies Record<keyof ObjectProtection, 1>
void ARCHIVE_MEMBERS
void PROTECTION_MEMBERS

/** `archive` with its calls through `around`. */
export function forwardArchive(a: ArchiveAccess, around: Around): ArchiveAccess {
  return {
    provider: a.provider,
    dataClass: a.dataClass,
    hotClass: a.hotClass,
    dataNeedsRestore: a.dataNeedsRestore,
    state: (name) => around({ call: 'state', name }, () => a.state(name)),
    requestRestore: (name, options) => around({ call: 'requestRestore', name }, () => a.requestRestore(name, options)),
  }
}

/** `protection` with its calls through `around`. */
export function forwardProtection(p: ObjectProtection, around: Around): ObjectProtection {
  const out: ObjectProtection = {
    mechanism: p.mechanism,
    protect: (names, request) => around({ call: 'protect', name: names[0] ?? '' }, () => p.protect(names, request)),
    isProtected: (name) => around({ call: 'isProtected', name }, () => p.isProtected(name)),
  }
  return p.enforcedByRemote === undefined ? out : { ...out, enforcedByRemote: p.enforcedByRemote }
}
