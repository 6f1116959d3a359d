import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { RemoteError } from '../../errors.js'
import type { ArchiveAccess, ByteRange, ObjectInfo, ObjectProtection, PutOptions, Remote, RemoteProperties } from '../remote.js'

/** The Remote methods a Fault can target. */
export type FaultyMethod = 'put' | 'putFile' | 'get' | 'stat' | 'list' | 'delete'

/** Every FaultyMethod. */
export const FAULTY_METHODS: readonly FaultyMethod[] = ['put', 'putFile', 'get', 'stat', 'list', 'delete']

/** One injected misbehaviour of a FaultyRemote. All fields but `method` are optional and combine. */
export interface Fault {
  method: FaultyMethod
  /** Only calls for this name (for `list`: this prefix), exact or by pattern. Default: every name. */
  name?: string | RegExp
  /** Only the Nth (1-based) call matching `method` and `name`, counted from when the fault was added. Default: every matching call. */
  call?: number
  /** Only the Nth matching call and every one after it. */
  fromCall?: number
  /**
   * Only this share (0..1) of the matching calls. Which ones is decided by a hash of the seed, the fault,
   * the call's method and name and how many times that name was called before: reproducible, and the same
   * whatever order concurrent calls arrive in.
   */
  probability?: number
  /** Run when the fault acts, before anything else it does (e.g. `() => { faulty.down = true }`). */
  action?: () => void
  /** Wait before passing the call on: milliseconds, or a function whose promise the test settles (no sleeping in tests). */
  delay?: number | (() => Promise<void>)
  /**
   * Never answer: the call waits until `releaseHung()` or `close()` cancels it, then rejects with a
   * non-transient RemoteError (by then a timeout wrapper has long given up on it). For timeout tests.
   */
  hang?: boolean
  /** Reject with this error; `true` rejects with a transient RemoteError. */
  error?: Error | true
  /** With `error`: perform the call on the inner remote first, then reject (a put that landed but reported failure). */
  errorAfter?: boolean
  /** `get` only: invert every bit of the byte at this index of the result; an index past the end changes nothing. */
  flipByteAt?: number
  /** `get` only: return at most this many bytes of the result. */
  truncateTo?: number
  /**
   * `list` only: leave out the names of the last this many objects written through this wrapper (put,
   * putFile), as an eventually consistent store whose listing lags behind its writes.
   */
  hideRecentWrites?: number
  /** `list` only, with `error`: fail after yielding this many names (a listing that breaks part-way, like a failed second page). */
  afterItems?: number
}

/** Options of a FaultyRemote. */
export interface FaultyOptions {
  /** Seed of the draws of `probability` faults. Default 1. */
  seed?: number
  /** Told when a call starts hanging (a `hang` fault). */
  onHang?: (method: FaultyMethod, name: string) => void
}

/** One call as FaultyRemote saw it. */
export interface FaultyCall {
  method: FaultyMethod
  name: string
}

/**
 * A Remote passing calls to `inner` and misbehaving as told by its faults,
 * for tests of retries and integrity checks. Returned buffers are copies
 * before being damaged, so `inner` is never changed. Owns `inner`: `close`
 * closes it.
 *
 * It has `putFile` whatever `inner` is (when `inner` has none, it reads the
 * file and puts its bytes) and no `createWriter`, so that over a memory or
 * local remote it looks like a network kind: objects written in pieces come
 * through put (BufferedObjectWriter) or, in the wrapper stack, through
 * staging and putFile. `archive` and `protection` are inner's, unfaulted.
 */
export class FaultyRemote implements Remote {
  readonly properties: RemoteProperties
  readonly archive?: ArchiveAccess
  readonly protection?: ObjectProtection
  private readonly inner: Remote
  private faults: { fault: Fault; matched: number; index: number; perName: Map<string, number> }[] = []
  private added = 0
  private readonly counts = new Map<FaultyMethod, number>()
  private readonly seed: number
  private readonly onHang?: (method: FaultyMethod, name: string) => void
  private readonly hung = new Set<(err: Error) => void>()
  private readonly written: string[] = []
  /** Every call, in order, failed ones included. */
  readonly calls: FaultyCall[] = []
  /**
   * While set, every call fails before reaching `inner` (the remote is down): `true` with a transient
   * RemoteError, or with the given error.
   */
  down: Error | true | null = null

  constructor(inner: Remote, faults: readonly Fault[] = [], options: FaultyOptions = {}) {
    this.inner = inner
    this.properties = inner.properties
    if (inner.archive) this.archive = inner.archive
    if (inner.protection) this.protection = inner.protection
    this.seed = options.seed ?? 1
    this.onHang = options.onHang
    for (const fault of faults) this.addFault(fault)
  }

  /** Adds a fault; its `call` counts from now. */
  addFault(fault: Fault): void {
    this.faults.push({ fault, matched: 0, index: this.added++, perName: new Map() })
  }

  /** Removes every fault; calls pass through unchanged from now. */
  clearFaults(): void {
    this.faults = []
  }

  /** How many times `method` was called on this wrapper, failed calls included. */
  callCount(method: FaultyMethod): number {
    return this.counts.get(method) ?? 0
  }

  /** Calls hanging now. */
  get hungCalls(): number {
    return this.hung.size
  }

  /** Cancels every hanging call: each rejects with a non-transient RemoteError. */
  releaseHung(): void {
    const all = [...this.hung]
    this.hung.clear()
    for (const reject of all) reject(new RemoteError('injected hang: cancelled', { transient: false }))
  }

  async put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    const active = await this.enter('put', name)
    await this.inner.put(name, data, options)
    this.written.push(name)
    throwAfter(active, 'put', name)
  }

  /** `inner.putFile`, or a put of the file's bytes when inner has none. */
  async putFile(name: string, path: string, options?: PutOptions): Promise<void> {
    const active = await this.enter('putFile', name)
    if (this.inner.putFile) await this.inner.putFile(name, path, options)
    else await this.inner.put(name, await readFile(path), options)
    this.written.push(name)
    throwAfter(active, 'putFile', name)
  }

  async get(name: string, range?: ByteRange): Promise<Buffer> {
    const active = await this.enter('get', name)
    let data = await this.inner.get(name, range)
    throwAfter(active, 'get', name)
    for (const { truncateTo, flipByteAt } of active) {
      if (truncateTo !== undefined) data = data.subarray(0, truncateTo)
      if (flipByteAt !== undefined && flipByteAt < data.length) {
        data = Buffer.from(data)
        data[flipByteAt] ^= 0xff
      }
    }
    return data
  }

  async stat(name: string): Promise<ObjectInfo> {
    const active = await this.enter('stat', name)
    const info = await this.inner.stat(name)
    throwAfter(active, 'stat', name)
    return info
  }

  /** A `list` fault acts when iteration starts (before the first name) or, with `errorAfter`, after the last name. */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const active = await this.enter('list', prefix)
    const hide = Math.max(0, ...active.map((f) => f.hideRecentWrites ?? 0))
    const hidden = new Set(hide > 0 ? this.written.slice(-hide) : [])
    const breaks = active.filter((f) => f.afterItems !== undefined && f.error !== undefined)
    let yielded = 0
    const breakAt = (): void => {
      for (const f of breaks) if (f.afterItems === yielded) throw injected(f.error!, 'list', prefix)
    }
    for await (const info of this.inner.list(prefix)) {
      if (hidden.has(info.name)) continue
      breakAt()
      yield info
      yielded++
    }
    breakAt()
    throwAfter(active, 'list', prefix)
  }

  async delete(name: string): Promise<void> {
    const active = await this.enter('delete', name)
    await this.inner.delete(name)
    throwAfter(active, 'delete', name)
  }

  /** Cancels hanging calls and closes `inner`. */
  close(): Promise<void> {
    this.releaseHung()
    return this.inner.close()
  }

  /** Counts the call, picks the faults it triggers, waits out their delays and throws a before-call error. */
  private async enter(method: FaultyMethod, name: string): Promise<Fault[]> {
    this.counts.set(method, this.callCount(method) + 1)
    this.calls.push({ method, name })
    const active: Fault[] = []
    for (const entry of this.faults) {
      const { fault } = entry
      if (fault.method !== method || !nameMatches(fault.name, name)) continue
      entry.matched++
      if (fault.call !== undefined && fault.call !== entry.matched) continue
      if (fault.fromCall !== undefined && entry.matched < fault.fromCall) continue
      if (fault.probability !== undefined) {
        const nth = (entry.perName.get(name) ?? 0) + 1
        entry.perName.set(name, nth)
        if (!(draw(`${this.seed}\n${entry.index}\n${method}\n${name}\n${nth}`) < fault.probability)) continue
      }
      active.push(fault)
    }
    for (const { action } of active) action?.()
    if (this.down !== null) throw injected(this.down, method, name, 'remote down')
    if (active.some((f) => f.hang === true)) {
      this.onHang?.(method, name)
      await new Promise<never>((_resolve, reject) => this.hung.add(reject))
    }
    for (const { delay } of active) {
      if (typeof delay === 'number') await sleep(delay)
      else if (delay !== undefined) await delay()
    }
    for (const fault of active) {
      if (fault.error !== undefined && fault.errorAfter !== true && fault.afterItems === undefined) throw injected(fault.error, method, name)
    }
    return active
  }
}

/**
 * Faults for "this share of all calls fail or hang": for each method, a transient error with probability
 * `failRate` (for put and putFile a third of them after the write landed) and a hang with probability
 * `hangRate`. Draws are independent, so a call fails or hangs with probability a little under the sum.
 */
export function flakyFaults(o: { failRate: number; hangRate?: number; methods?: readonly FaultyMethod[] }): Fault[] {
  const out: Fault[] = []
  for (const method of o.methods ?? FAULTY_METHODS) {
    if (method === 'put' || method === 'putFile') {
      out.push({ method, probability: (o.failRate * 2) / 3, error: true })
      out.push({ method, probability: o.failRate / 3, error: true, errorAfter: true })
    } else {
      out.push({ method, probability: o.failRate, error: true })
    }
    if (o.hangRate) out.push({ method, probability: o.hangRate, hang: true })
  }
  return out
}

function throwAfter(active: readonly Fault[], method: FaultyMethod, name: string): void {
  for (const fault of active) {
    if (fault.error !== undefined && fault.errorAfter === true) throw injected(fault.error, method, name)
  }
}

function nameMatches(pattern: string | RegExp | undefined, name: string): boolean {
  if (pattern === undefined) return true
  return typeof pattern === 'string' ? pattern === name : pattern.test(name)
}

function injected(error: Error | true, method: FaultyMethod, name: string, what = 'injected fault'): Error {
  if (error !== true) return error
  return new RemoteError(`${what}: ${method} ${name}`, { transient: true, objectName: name })
}

/** A number in [0, 1) from a string (FNV-1a, then a murmur3 finalizer to spread the bits). */
function draw(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return (h >>> 0) / 4294967296
}
