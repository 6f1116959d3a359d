import { setTimeout as sleep } from 'node:timers/promises'
import { RemoteError } from '../../errors.js'
import type { ByteRange, ObjectInfo, PutOptions, Remote, RemoteProperties } from '../remote.js'

/** The Remote methods a Fault can target. */
export type FaultyMethod = 'put' | 'get' | 'stat' | 'list' | 'delete'

/** One injected misbehaviour of a FaultyRemote. All fields but `method` are optional and combine. */
export interface Fault {
  method: FaultyMethod
  /** Only calls for this name (for `list`: this prefix), exact or by pattern. Default: every name. */
  name?: string | RegExp
  /** Only the Nth (1-based) call matching `method` and `name`, counted from when the fault was added. Default: every matching call. */
  call?: number
  /** Wait before passing the call on: milliseconds, or a function whose promise the test settles (no sleeping in tests). */
  delay?: number | (() => Promise<void>)
  /** Reject with this error; `true` rejects with a transient RemoteError. */
  error?: Error | true
  /** With `error`: perform the call on the inner remote first, then reject (a put that landed but reported failure). */
  errorAfter?: boolean
  /** `get` only: invert every bit of the byte at this index of the result; an index past the end changes nothing. */
  flipByteAt?: number
  /** `get` only: return at most this many bytes of the result. */
  truncateTo?: number
}

/**
 * A Remote passing calls to `inner` and misbehaving as told by its faults,
 * for tests of retries and integrity checks. Returned buffers are copies
 * before being damaged, so `inner` is never changed. Owns `inner`: `close`
 * closes it.
 */
export class FaultyRemote implements Remote {
  readonly properties: RemoteProperties
  private readonly inner: Remote
  private faults: { fault: Fault; matched: number }[] = []
  private readonly counts = new Map<FaultyMethod, number>()

  constructor(inner: Remote, faults: readonly Fault[] = []) {
    this.inner = inner
    this.properties = inner.properties
    for (const fault of faults) this.addFault(fault)
  }

  /** Adds a fault; its `call` counts from now. */
  addFault(fault: Fault): void {
    this.faults.push({ fault, matched: 0 })
  }

  /** Removes every fault; calls pass through unchanged from now. */
  clearFaults(): void {
    this.faults = []
  }

  /** How many times `method` was called on this wrapper, failed calls included. */
  callCount(method: FaultyMethod): number {
    return this.counts.get(method) ?? 0
  }

  async put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    const active = await this.enter('put', name)
    await this.inner.put(name, data, options)
    throwAfter(active, 'put', name)
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
    yield* this.inner.list(prefix)
    throwAfter(active, 'list', prefix)
  }

  async delete(name: string): Promise<void> {
    const active = await this.enter('delete', name)
    await this.inner.delete(name)
    throwAfter(active, 'delete', name)
  }

  /** Closes `inner`. */
  close(): Promise<void> {
    return this.inner.close()
  }

  /** Counts the call, picks the faults it triggers, waits out their delays and throws a before-call error. */
  private async enter(method: FaultyMethod, name: string): Promise<Fault[]> {
    this.counts.set(method, this.callCount(method) + 1)
    const active: Fault[] = []
    for (const entry of this.faults) {
      const { fault } = entry
      if (fault.method !== method || !nameMatches(fault.name, name)) continue
      entry.matched++
      if (fault.call === undefined || fault.call === entry.matched) active.push(fault)
    }
    for (const { delay } of active) {
      if (typeof delay === 'number') await sleep(delay)
      else if (delay !== undefined) await delay()
    }
    for (const fault of active) {
      if (fault.error !== undefined && fault.errorAfter !== true) throw injected(fault.error, method, name)
    }
    return active
  }
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

function injected(error: Error | true, method: FaultyMethod, name: string): Error {
  if (error !== true) return error
  return new RemoteError(`injected fault: ${method} ${name}`, { transient: true, objectName: name })
}
