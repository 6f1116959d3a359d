/**
 * ConcurrencyLimitRemote: at most `limit` calls of an inner remote at once (a semaphore, first come first
 * served). Callers may start as many calls as they like; the rest wait their turn.
 *
 * Imports only ../remote.js and this folder.
 */
import type { Remote, RemoteProperties } from '../remote.js'
import { ForwardingRemote, type CallInfo } from './forward.js'

/** A counting semaphore with a FIFO queue. */
export class Semaphore {
  private readonly limit: number
  private active = 0
  private readonly waiting: (() => void)[] = []

  constructor(limit: number) {
    if (!(limit >= 1)) throw new RangeError(`semaphore limit must be at least 1, got ${limit}`)
    this.limit = Math.floor(limit)
  }

  /** Holders now. */
  get inUse(): number {
    return this.active
  }

  /** Callers waiting now. */
  get queued(): number {
    return this.waiting.length
  }

  /** Runs `fn` holding one slot. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve))
    else this.active++
    try {
      return await fn()
    } finally {
      const next = this.waiting.shift()
      // The slot passes straight to the next waiter, so a newcomer cannot take it in between.
      if (next) next()
      else this.active--
    }
  }
}

/**
 * A Remote running at most `limit` calls of `inner` at once (default: `inner.properties.maxConnections`).
 * A listing holds a slot only while it fetches (each `next()`), never between steps, so code that lists and
 * reads what it finds cannot deadlock; a writer's `write` and `commit` each take a slot. `properties` is
 * inner's with `maxConnections` lowered to the limit when that is smaller. Owns `inner`.
 */
export class ConcurrencyLimitRemote extends ForwardingRemote {
  override readonly properties: RemoteProperties
  private readonly semaphore: Semaphore

  constructor(inner: Remote, limit: number = inner.properties.maxConnections) {
    super(inner)
    this.semaphore = new Semaphore(limit)
    this.properties = limit < inner.properties.maxConnections ? { ...inner.properties, maxConnections: Math.floor(limit) } : inner.properties
  }

  /** Calls running now (for tests and progress). */
  get inFlight(): number {
    return this.semaphore.inUse
  }

  protected around<T>(_info: CallInfo, fn: () => Promise<T>): Promise<T> {
    return this.semaphore.run(fn)
  }
}
