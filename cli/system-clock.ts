/**
 * The real clock, for the daemon and runs started from the command line (tests inject a ManualClock).
 */
import type { Clock } from '../engine/index.js'

/** Longest single wait: the time is re-read at least this often, so clock changes and suspends are noticed. */
const MAX_WAIT_MS = 60_000

export class SystemClock implements Clock {
  now(): Date {
    return new Date()
  }

  sleepUntil(until: Date, signal?: AbortSignal): Promise<void> {
    const ms = until.getTime() - Date.now()
    if (ms <= 0 || signal?.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, Math.min(ms, MAX_WAIT_MS))
      signal?.addEventListener('abort', done, { once: true })
    })
  }
}
