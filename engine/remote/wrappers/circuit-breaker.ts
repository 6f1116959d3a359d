/**
 * CircuitBreakerRemote: stops sending calls to a remote that keeps failing. After `failureThreshold`
 * transient failures in a row the circuit opens: for `coolDownMs` every call fails at once with a
 * non-transient CircuitOpenError (so the retry wrapper above it gives up, and the command fails with a clear
 * message instead of hammering the remote). Then one call is let through as a probe (half-open): its success
 * closes the circuit, its transient failure opens it for another cool-down.
 *
 * Imports only ../../errors.js, ../remote.js and this folder.
 */
import { RemoteError } from '../../errors.js'
import type { Remote } from '../remote.js'
import { SYSTEM_CLOCK, formatMs, type Clock } from './clock.js'
import { ForwardingRemote, type CallInfo } from './forward.js'
import { isTransient } from './retrying.js'

/** `closed`: calls go through; `open`: they fail fast; `half-open`: one probe call is in flight. */
export type CircuitState = 'closed' | 'open' | 'half-open'

/** What `onStateChange` is told, once per change (not per call). */
export interface CircuitEvent {
  location: string
  state: CircuitState
  /** Transient failures in a row when the circuit opened. */
  failures: number
  /** The failure that opened it (state `open`). */
  lastError?: Error
  /** How long calls fail fast (state `open`). */
  coolDownMs: number
}

/** Settings of CircuitBreakerRemote. */
export interface CircuitBreakerOptions {
  /** Transient failures in a row (over all calls) that open the circuit. Default 10. */
  failureThreshold?: number
  /** How long an open circuit fails calls before a probe. Default 30 s. */
  coolDownMs?: number
  clock?: Clock
  /** Told when the state changes (the CLI prints it once). Must not throw. */
  onStateChange?: (event: CircuitEvent) => void
}

/** Defaults of CircuitBreakerOptions. */
export const DEFAULT_BREAKER = { failureThreshold: 10, coolDownMs: 30_000 } as const

/** A call refused because the circuit is open. Not transient: retrying now cannot help. */
export class CircuitOpenError extends RemoteError {
  readonly location: string
  readonly failures: number
  /** How much longer the circuit stays open. */
  readonly retryAfterMs: number
  constructor(location: string, fields: { failures: number; retryAfterMs: number; objectName?: string; lastError?: Error }) {
    super(
      `remote ${location} is failing: ${fields.failures} failures in a row, last: ${fields.lastError?.message ?? 'unknown'}; ` +
        (fields.retryAfterMs > 0 ? `not retrying for ${formatMs(fields.retryAfterMs)}` : 'one probe call is testing it before more are sent'),
      { transient: false, objectName: fields.objectName },
      { cause: fields.lastError },
    )
    this.location = location
    this.failures = fields.failures
    this.retryAfterMs = fields.retryAfterMs
  }
}

/**
 * A Remote that fails fast while `inner` is down (see the file comment). Only transient failures count;
 * any answer of the remote (a success, NotFoundError, ExistsError, a non-transient error) resets the count
 * and closes the circuit. Owns `inner`.
 */
export class CircuitBreakerRemote extends ForwardingRemote {
  private readonly threshold: number
  private readonly coolDownMs: number
  private readonly clock: Clock
  private readonly onStateChange?: (event: CircuitEvent) => void
  private current: CircuitState = 'closed'
  private failures = 0
  /** Failures in a row when the circuit last opened, for messages. */
  private openedWith = 0
  private lastError: Error | undefined
  private openedAt = 0

  constructor(inner: Remote, options: CircuitBreakerOptions = {}) {
    super(inner)
    this.threshold = Math.max(1, options.failureThreshold ?? DEFAULT_BREAKER.failureThreshold)
    this.coolDownMs = options.coolDownMs ?? DEFAULT_BREAKER.coolDownMs
    this.clock = options.clock ?? SYSTEM_CLOCK
    this.onStateChange = options.onStateChange
  }

  /** The circuit's state now. */
  get state(): CircuitState {
    return this.current
  }

  protected async around<T>(info: CallInfo, fn: () => Promise<T>): Promise<T> {
    this.admit(info)
    try {
      const v = await fn()
      this.answered()
      return v
    } catch (err) {
      if (isTransient(err)) this.failed(err as Error)
      else this.answered()
      throw err
    }
  }

  /** Throws CircuitOpenError unless the call may go to the remote; turns an expired open circuit half-open (this call is the probe). */
  private admit(info: CallInfo): void {
    if (this.current === 'closed') return
    const remaining = this.openedAt + this.coolDownMs - this.clock.now()
    if (this.current === 'open' && remaining <= 0) {
      this.change('half-open')
      return
    }
    throw new CircuitOpenError(this.properties.location, {
      failures: this.openedWith, retryAfterMs: Math.max(0, remaining), objectName: info.name, lastError: this.lastError,
    })
  }

  private answered(): void {
    this.failures = 0
    if (this.current !== 'closed') this.change('closed')
  }

  private failed(err: Error): void {
    this.failures++
    this.lastError = err
    if (this.current === 'half-open' || (this.current === 'closed' && this.failures >= this.threshold)) {
      this.openedWith = this.failures
      this.openedAt = this.clock.now()
      this.change('open')
    }
  }

  private change(state: CircuitState): void {
    this.current = state
    this.onStateChange?.({
      location: this.properties.location, state, failures: this.openedWith, lastError: state === 'open' ? this.lastError : undefined, coolDownMs: this.coolDownMs,
    })
  }
}
