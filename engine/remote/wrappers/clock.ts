/**
 * The time source of the wrappers (retry back-off, timeouts, the circuit breaker's cool-down, bandwidth
 * buckets), injected so that tests control time instead of sleeping. Imports nothing from the engine.
 */

/** Reads the time, waits, and runs timers. */
export interface Clock {
  /** Milliseconds since some fixed point (only differences matter). */
  now(): number
  /** Resolves after `ms` milliseconds. */
  sleep(ms: number): Promise<void>
  /** Calls `fn` once after `ms` milliseconds unless the returned function is called first. */
  setTimer(ms: number, fn: () => void): () => void
}

/** The real clock: performance.now() (monotonic, unlike Date.now()) and node timers. */
export const SYSTEM_CLOCK: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
  setTimer: (ms, fn) => {
    const handle = setTimeout(fn, Math.max(0, ms))
    return () => clearTimeout(handle)
  },
}

/** `ms` for people: "250 ms", "30 s", "5 min". */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 120_000) return `${Number((ms / 1000).toFixed(ms < 10_000 ? 1 : 0))} s`
  return `${Number((ms / 60_000).toFixed(1))} min`
}
