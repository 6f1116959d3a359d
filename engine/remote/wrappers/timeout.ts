/**
 * TimeoutRemote: bounds every call of an inner remote, so that a hung connection becomes an error that the
 * retry wrapper can retry instead of a command that waits forever.
 *
 * Imports only ../../errors.js, ../remote.js and this folder.
 */
import { stat } from 'node:fs/promises'
import { RemoteError } from '../../errors.js'
import type { ObjectInfo, PutOptions, Remote } from '../remote.js'
import { SYSTEM_CLOCK, formatMs, type Clock } from './clock.js'
import { ForwardingRemote, type CallInfo, type RemoteCall } from './forward.js'

/** Limits of TimeoutRemote. */
export interface TimeoutOptions {
  /** Limit of a call that moves no object bytes: stat, delete, one step of a listing, archive and protection calls. Default 30 s. */
  callMs?: number
  /** Base limit of a call that moves object bytes: get, put, putFile, a writer's write and commit. Default 60 s. */
  transferMs?: number
  /**
   * A transfer whose size is known (put, putFile, ranged get, write) gets `size / minBytesPerSecond` seconds
   * on top of `transferMs`, so that a large pack on a slow link is not cut off. Default 128 KiB/s (1 Mbit/s):
   * a 16 MiB pack may take 60 s + 128 s.
   */
  minBytesPerSecond?: number
  /** Fixed limits for single kinds of call (no size allowance), overriding the above. */
  perCallMs?: Partial<Record<RemoteCall, number>>
  clock?: Clock
}

/** Defaults of TimeoutOptions. */
export const DEFAULT_TIMEOUTS = { callMs: 30_000, transferMs: 60_000, minBytesPerSecond: 128 * 1024 } as const

const TRANSFERS: ReadonlySet<RemoteCall> = new Set<RemoteCall>(['get', 'put', 'putFile', 'write', 'commit'])

/** The error of a call that did not finish in time: a transient RemoteError, so the retry wrapper retries it. */
export class RemoteTimeoutError extends RemoteError {
  readonly call: RemoteCall
  readonly limitMs: number
  constructor(location: string, info: CallInfo, limitMs: number) {
    super(`${info.call} ${info.name || '(root)'} on ${location}: no answer within ${formatMs(limitMs)}`, { transient: true, objectName: info.name })
    this.call = info.call
    this.limitMs = limitMs
  }
}

/**
 * A Remote whose every call rejects with RemoteTimeoutError (transient) when `inner` has not answered within
 * its limit. The inner call cannot be cancelled (the Remote contract has no cancellation): it goes on in the
 * background and its late result is dropped. A write that lands after its timeout is harmless: names are
 * content addresses, and the retry wrapper handles an exclusive put that turns out to have landed.
 * Listings are bounded per step (each `next()`), not as a whole. Owns `inner`.
 */
export class TimeoutRemote extends ForwardingRemote {
  private readonly o: Required<Omit<TimeoutOptions, 'perCallMs'>> & { perCallMs: Partial<Record<RemoteCall, number>> }

  constructor(inner: Remote, options: TimeoutOptions = {}) {
    super(inner)
    this.o = {
      callMs: options.callMs ?? DEFAULT_TIMEOUTS.callMs,
      transferMs: options.transferMs ?? DEFAULT_TIMEOUTS.transferMs,
      minBytesPerSecond: options.minBytesPerSecond ?? DEFAULT_TIMEOUTS.minBytesPerSecond,
      perCallMs: options.perCallMs ?? {},
      clock: options.clock ?? SYSTEM_CLOCK,
    }
  }

  /** The limit of one call, in milliseconds. */
  limitMs(info: CallInfo): number {
    const fixed = this.o.perCallMs[info.call]
    if (fixed !== undefined) return fixed
    if (!TRANSFERS.has(info.call)) return this.o.callMs
    return this.o.transferMs + ((info.bytes ?? 0) / this.o.minBytesPerSecond) * 1000
  }

  protected around<T>(info: CallInfo, fn: () => Promise<T>): Promise<T> {
    const limit = this.limitMs(info)
    return new Promise<T>((resolve, reject) => {
      let settled = false
      const cancel = this.o.clock.setTimer(limit, () => {
        if (settled) return
        settled = true
        reject(new RemoteTimeoutError(this.properties.location, info, limit))
      })
      let p: Promise<T>
      try {
        p = fn()
      } catch (err) {
        p = Promise.reject(err)
      }
      p.then(
        (v) => {
          if (settled) return
          settled = true
          cancel()
          resolve(v)
        },
        (err: unknown) => {
          // After a timeout this is the late failure of an abandoned call: dropped.
          if (settled) return
          settled = true
          cancel()
          reject(err)
        },
      )
    })
  }

  /** putFile's limit grows with the file's size. */
  protected override async forwardPutFile(name: string, path: string, options: PutOptions | undefined, putFile: NonNullable<Remote['putFile']>): Promise<void> {
    const bytes = await fileSize(path)
    return this.around({ call: 'putFile', name, bytes }, () => putFile(name, path, options))
  }

  /** Each step is bounded; a listing whose step timed out is abandoned (its `return` is called, not awaited). */
  override list(prefix: string): AsyncIterable<ObjectInfo> {
    const inner = this.inner
    return {
      [Symbol.asyncIterator]: (): AsyncIterator<ObjectInfo> => {
        let it: AsyncIterator<ObjectInfo> | null = null
        return {
          next: async () => {
            it ??= inner.list(prefix)[Symbol.asyncIterator]()
            const current = it
            try {
              return await this.around({ call: 'list', name: prefix }, () => current.next())
            } catch (err) {
              if (err instanceof RemoteTimeoutError) void Promise.resolve(current.return?.()).catch(() => undefined)
              throw err
            }
          },
          return: async () => {
            await it?.return?.()
            return { done: true, value: undefined }
          },
        }
      },
    }
  }
}

/** The size of a local file, or undefined when it cannot be read (putFile itself then reports the problem). */
export async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size
  } catch {
    return undefined
  }
}
