/**
 * RetryingRemote: retries the calls of an inner remote that fail with a transient error, with exponential
 * back-off and full jitter (the delay before retry n is uniform in [0, min(maxDelay, base * 2^(n-1)))), so
 * that many clients hit by one outage do not come back in lock-step.
 *
 * Imports only ../../errors.js, ../remote.js and this folder.
 */
import { open } from 'node:fs/promises'
import { ExistsError, RemoteError } from '../../errors.js'
import type { ObjectInfo, ObjectWriter, PutOptions, Remote } from '../remote.js'
import { SYSTEM_CLOCK, formatMs, type Clock } from './clock.js'
import { ForwardingRemote, type CallInfo, type RemoteCall } from './forward.js'
import { RemoteTimeoutError } from './timeout.js'

/** What `onRetry` is told before each retry. */
export interface RetryEvent {
  /** The remote's location (no credentials). */
  location: string
  call: RemoteCall
  name: string
  /** The attempt about to be made: 2 for the first retry. */
  attempt: number
  maxAttempts: number
  /** How long it waits before that attempt. */
  delayMs: number
  /** Why the previous attempt failed. */
  error: Error
}

/** Settings of RetryingRemote. */
export interface RetryOptions {
  /** Attempts per call, the first included (1: no retries). Default 8. */
  maxAttempts?: number
  /** The first retry waits up to this long; each further one up to twice as long as the one before. Default 500 ms. */
  baseDelayMs?: number
  /** Cap of one delay. Default 30 s. */
  maxDelayMs?: number
  /**
   * No retry is started when it would begin later than this after the first attempt began. Uploads and
   * downloads that failed after moving data for a while (a reset, not a timeout) do not use up this time,
   * so a large pack on a slow link keeps its retries. Default 5 min.
   */
  maxTotalMs?: number
  clock?: Clock
  /** Uniform numbers in [0, 1) for the jitter. Default Math.random. */
  random?: () => number
  /** Told before every retry (the CLI prints "retrying put data/ab/… (attempt 3/8) after: …"). Must not throw. */
  onRetry?: (event: RetryEvent) => void
}

/** Defaults of RetryOptions. */
export const DEFAULT_RETRY = { maxAttempts: 8, baseDelayMs: 500, maxDelayMs: 30_000, maxTotalMs: 5 * 60_000 } as const

/** True for errors worth retrying: RemoteError { transient: true } (this includes the timeout wrapper's errors). Never NotFound, Exists, Archived, Integrity, Config errors or a non-transient RemoteError. */
export function isTransient(err: unknown): boolean {
  return err instanceof RemoteError && err.transient
}

/** Calls that move object bytes: their attempt time, unless it ended in a timeout, does not count against maxTotalMs. */
const TRANSFERS: ReadonlySet<RemoteCall> = new Set<RemoteCall>(['put', 'putFile', 'get'])

/** Bytes compared per read when checking whether an ambiguous write landed. */
const COMPARE_BYTES = 8 * 1024 * 1024

/**
 * A Remote that retries transient failures of `inner`. Other errors pass through at once.
 *
 * Ambiguous writes: a put or putFile that failed transiently may have landed anyway. When its retry then
 * fails with ExistsError (an exclusive put, or a kind that refuses to replace), the stored object is compared
 * with the bytes being written: equal means the first attempt succeeded, and the put resolves.
 *
 * Listings: a listing that fails part-way is started again and names already yielded are skipped; the
 * attempt count starts again whenever a retried listing made progress. Writers from `createWriter` are not
 * retried (their bytes are not kept); staged uploads are retried whole as putFile. Owns `inner`.
 */
export class RetryingRemote extends ForwardingRemote {
  private readonly o: Required<Omit<RetryOptions, 'onRetry'>> & { onRetry?: (event: RetryEvent) => void }

  constructor(inner: Remote, options: RetryOptions = {}) {
    super(inner)
    this.o = {
      maxAttempts: Math.max(1, Math.floor(options.maxAttempts ?? DEFAULT_RETRY.maxAttempts)),
      baseDelayMs: options.baseDelayMs ?? DEFAULT_RETRY.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs,
      maxTotalMs: options.maxTotalMs ?? DEFAULT_RETRY.maxTotalMs,
      clock: options.clock ?? SYSTEM_CLOCK,
      random: options.random ?? Math.random,
      onRetry: options.onRetry,
    }
  }

  protected around<T>(info: CallInfo, fn: () => Promise<T>): Promise<T> {
    return this.retry(info, () => fn())
  }

  override put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    return this.retryWrite({ call: 'put', name, bytes: data.length }, () => this.inner.put(name, data, options), () => this.storedEquals(name, data))
  }

  protected override forwardPutFile(name: string, path: string, options: PutOptions | undefined, putFile: NonNullable<Remote['putFile']>): Promise<void> {
    return this.retryWrite({ call: 'putFile', name }, () => putFile(name, path, options), () => this.storedEqualsFile(name, path))
  }

  /** Writers pass through unretried: their bytes are gone once written. */
  protected override wrapWriter(writer: ObjectWriter): ObjectWriter {
    return writer
  }

  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const seen = new Set<string>()
    const info: CallInfo = { call: 'list', name: prefix }
    let start = this.o.clock.now()
    let attempt = 1
    for (;;) {
      let progressed = false
      try {
        for await (const o of this.inner.list(prefix)) {
          if (seen.has(o.name)) continue
          seen.add(o.name)
          progressed = true
          yield o
        }
        return
      } catch (err) {
        if (progressed) {
          attempt = 1
          start = this.o.clock.now()
        }
        await this.beforeRetry(info, err, attempt, start)
        attempt++
      }
    }
  }

  /** Runs `fn` until it succeeds, fails with a non-transient error, or the attempts or the time are used up. */
  private async retry<T>(info: CallInfo, fn: () => Promise<T>): Promise<T> {
    const start = this.o.clock.now()
    let transferring = 0
    for (let attempt = 1; ; attempt++) {
      const began = this.o.clock.now()
      try {
        return await fn()
      } catch (err) {
        if (TRANSFERS.has(info.call) && !(err instanceof RemoteTimeoutError)) transferring += this.o.clock.now() - began
        await this.beforeRetry(info, err, attempt, start, transferring)
      }
    }
  }

  /** A write that, after a transient failure, treats ExistsError for an object with the same bytes as success. */
  private retryWrite(info: CallInfo, write: () => Promise<void>, sameStored: () => Promise<boolean>): Promise<void> {
    let failedTransiently = false
    return this.retry(info, async () => {
      try {
        await write()
      } catch (err) {
        if (err instanceof ExistsError && failedTransiently && (await sameStored())) return
        if (isTransient(err)) failedTransiently = true
        throw err
      }
    })
  }

  /**
   * Throws `err` when it is not to be retried (wrapped with the attempt count when retries ran out), else
   * reports the retry and waits its delay.
   */
  private async beforeRetry(info: CallInfo, err: unknown, attempt: number, start: number, transferringMs = 0): Promise<void> {
    if (!isTransient(err) || this.o.maxAttempts === 1) throw err
    const error = err as RemoteError
    const elapsed = this.o.clock.now() - start
    const ceiling = Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** (attempt - 1))
    const delayMs = this.o.random() * ceiling
    if (attempt >= this.o.maxAttempts || elapsed - transferringMs + delayMs > this.o.maxTotalMs) {
      throw new RemoteError(
        `${info.call} ${info.name || '(root)'} failed ${attempt} time${attempt === 1 ? '' : 's'} in ${formatMs(elapsed)}, giving up: ${error.message}`,
        { transient: true, objectName: error.objectName ?? info.name },
        { cause: error },
      )
    }
    this.o.onRetry?.({ location: this.properties.location, call: info.call, name: info.name, attempt: attempt + 1, maxAttempts: this.o.maxAttempts, delayMs, error })
    await this.o.clock.sleep(delayMs)
  }

  private async storedEquals(name: string, data: Uint8Array): Promise<boolean> {
    const stored = await this.inner.get(name)
    return stored.equals(data)
  }

  /** Compares the stored object with the file piece by piece (a pack need not be held in memory twice). */
  private async storedEqualsFile(name: string, path: string): Promise<boolean> {
    const fh = await open(path, 'r')
    try {
      const size = (await fh.stat()).size
      if ((await this.inner.stat(name)).size !== size) return false
      const buf = Buffer.allocUnsafe(Math.min(COMPARE_BYTES, size))
      for (let offset = 0; offset < size; offset += COMPARE_BYTES) {
        const length = Math.min(COMPARE_BYTES, size - offset)
        const stored = await this.inner.get(name, { offset, length })
        const { bytesRead } = await fh.read(buf, 0, length, offset)
        if (bytesRead !== length || !stored.equals(buf.subarray(0, length))) return false
      }
      return true
    } finally {
      await fh.close()
    }
  }
}
