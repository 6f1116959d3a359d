/**
 * The clock the scheduler runs on, injected: the CLI passes the system clock, tests a ManualClock they
 * move by hand (no sleeping, no wall time).
 */

/** Time and waiting. */
export interface Clock {
  now(): Date
  /**
   * Resolves once the clock reads `until` or later, or when `signal` aborts (then it resolves too: callers
   * check the signal). A system clock may resolve early (it re-checks at least every minute, so a clock
   * change or a suspended machine is noticed); callers re-read `now()`.
   */
  sleepUntil(until: Date, signal?: AbortSignal): Promise<void>
}

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  private current: number
  private readonly sleepers = new Set<{ at: number; resolve: () => void }>()
  private readonly sleepWaiters: (() => void)[] = []

  constructor(start: Date) {
    this.current = start.getTime()
  }

  now(): Date {
    return new Date(this.current)
  }

  /** Sets the time (forward or back) and wakes every sleeper whose time has come; returns how many woke. */
  set(t: Date): number {
    this.current = t.getTime()
    let woken = 0
    for (const s of [...this.sleepers]) {
      if (s.at <= this.current) {
        this.sleepers.delete(s)
        s.resolve()
        woken++
      }
    }
    return woken
  }

  /** Resolves the next time anyone starts to sleep (a scheduler that woke has done its work and waits again). */
  nextSleep(): Promise<void> {
    return new Promise((resolve) => this.sleepWaiters.push(resolve))
  }

  /** Moves the time forward by `ms`. */
  advance(ms: number): number {
    return this.set(new Date(this.current + ms))
  }

  /** How many are waiting (tests wait for the scheduler to be asleep before moving the time). */
  get waiting(): number {
    return this.sleepers.size
  }

  sleepUntil(until: Date, signal?: AbortSignal): Promise<void> {
    for (const w of this.sleepWaiters.splice(0)) w()
    if (until.getTime() <= this.current || signal?.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const s = {
        at: until.getTime(),
        resolve: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
      }
      const onAbort = (): void => {
        this.sleepers.delete(s)
        resolve()
      }
      this.sleepers.add(s)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}
