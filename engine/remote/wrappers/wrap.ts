/**
 * wrapRemote: the wrapper stack the registry puts around every network remote (and around any remote when
 * limits are asked for). Outermost first:
 *
 *     StagingRemote          createWriter → StagedObjectWriter → putFile of this stack (network kinds)
 *     RetryingRemote         transient failures retried with back-off; ambiguous writes resolved
 *     CircuitBreakerRemote   fails fast after many failures in a row
 *     BandwidthLimitRemote   upload / download token buckets
 *     ConcurrencyLimitRemote at most N calls at once
 *     TimeoutRemote          every call bounded
 *     inner
 *
 * Why this order:
 * - Timeout is innermost so that it bounds one attempt of one call, not the wait for a slot or for tokens,
 *   and so that a hung attempt becomes a transient error the layers above count and retry.
 * - Concurrency sits under the bandwidth limit and the retries: a call waiting for tokens or sleeping
 *   between attempts holds no connection slot.
 * - The circuit breaker sits under the retries, so it sees every attempt: when the remote is down, the
 *   attempts of all calls together open it within `failureThreshold` failures, and its CircuitOpenError is
 *   not transient, so every retry loop above stops at once and the command fails with one clear message.
 *   It sits above the limits so that a call refused by an open circuit waits for neither tokens nor a slot.
 * - Staging is outermost: a staged pack is uploaded by this stack's own putFile, so the whole object is
 *   retried, limited and bounded like any other call.
 *
 * With the defaults, how long a call takes to fail when the remote is down: 8 attempts with back-off
 * ceilings 0.5, 1, 2, 4, 8, 16, 30 s wait at most 61.5 s in all (half that on average), plus the attempts'
 * own time: when they fail at once, about a minute; when they hang, each waits for its timeout (30 s, or
 * 60 s + size / 128 KiB/s for transfers) and the 5-minute retry budget stops new attempts, so about 5 min
 * plus one call's limit. Calls in parallel open the breaker after 10 failed attempts together, which ends
 * every other call's retries at once.
 *
 * Imports only ../remote.js, ../staged-writer.js and this folder.
 */
import type { Remote } from '../remote.js'
import { BandwidthLimitRemote } from './bandwidth.js'
import { CircuitBreakerRemote, type CircuitBreakerOptions } from './circuit-breaker.js'
import type { Clock } from './clock.js'
import { ConcurrencyLimitRemote } from './concurrency.js'
import { RetryingRemote, type RetryOptions } from './retrying.js'
import { StagingRemote } from './staging.js'
import { TimeoutRemote, type TimeoutOptions } from './timeout.js'

/** What wrapRemote builds. `false` leaves a layer out. */
export interface WrapOptions {
  /** Default: DEFAULT_RETRY. */
  retry?: RetryOptions | false
  /** Default: DEFAULT_TIMEOUTS. */
  timeouts?: TimeoutOptions | false
  /** Default: DEFAULT_BREAKER. */
  breaker?: CircuitBreakerOptions | false
  /** Calls at once. Default: `inner.properties.maxConnections`; false: no limit layer. */
  connections?: number | false
  /** Average upload rate (put, putFile, writer bytes). Default: unlimited. */
  uploadBytesPerSecond?: number
  /** Average download rate (get). Default: unlimited. */
  downloadBytesPerSecond?: number
  /** Where packs are staged for putFile (only used when `inner` has putFile and no createWriter). */
  stagingDir?: string
  /** The time source of every layer whose own options name none. Default: the system clock. */
  clock?: Clock
}

/** Wraps `inner` in the stack described in this file's comment. The result owns `inner`: closing it closes `inner`. */
export function wrapRemote(inner: Remote, options: WrapOptions = {}): Remote {
  const clock = options.clock
  let r: Remote = inner
  if (options.timeouts !== false) r = new TimeoutRemote(r, { clock, ...options.timeouts })
  if (options.connections !== false) r = new ConcurrencyLimitRemote(r, options.connections ?? inner.properties.maxConnections)
  if (options.uploadBytesPerSecond !== undefined || options.downloadBytesPerSecond !== undefined) {
    r = new BandwidthLimitRemote(r, { uploadBytesPerSecond: options.uploadBytesPerSecond, downloadBytesPerSecond: options.downloadBytesPerSecond, clock })
  }
  if (options.breaker !== false) r = new CircuitBreakerRemote(r, { clock, ...options.breaker })
  if (options.retry !== false) r = new RetryingRemote(r, { clock, ...options.retry })
  if (options.stagingDir !== undefined && StagingRemote.stages(inner)) r = new StagingRemote(r, options.stagingDir)
  return r
}
