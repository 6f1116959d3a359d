/**
 * A Clock for tests (engine/remote/wrappers/clock.ts): time moves only when the test says so, or, with
 * `autoSleep`, when someone sleeps (a retry's back-off then costs no real time but is still counted).
 * Not exported from engine/index.ts.
 */
import type { Clock } from '../remote/wrappers/clock.js'

interface Timer {
  at: number
  seq: number
  fn: () => void
}

/** Virtual time starting at 0. */
export class ManualClock implements Clock {
  private time = 0
  private seq = 0
  private timers: Timer[] = []
  private readonly autoSleep: boolean
  /** Every `sleep` duration asked for, in call order. */
  readonly sleeps: number[] = []

  /** `autoSleep`: `sleep(ms)` moves the time forward by `ms` at once (firing due timers) instead of waiting for `advance`. */
  constructor(o: { autoSleep?: boolean } = {}) {
    this.autoSleep = o.autoSleep ?? false
  }

  now(): number {
    return this.time
  }

  sleep(ms: number): Promise<void> {
    this.sleeps.push(ms)
    if (this.autoSleep) {
      this.advance(Math.max(0, ms))
      return Promise.resolve()
    }
    return new Promise((resolve) => this.setTimer(ms, resolve))
  }

  setTimer(ms: number, fn: () => void): () => void {
    const timer: Timer = { at: this.time + Math.max(0, ms), seq: this.seq++, fn }
    this.timers.push(timer)
    return () => {
      this.timers = this.timers.filter((x) => x !== timer)
    }
  }

  /** Moves the time forward by `ms`, running each timer that falls due, in order of due time. */
  advance(ms: number): void {
    const end = this.time + ms
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0]
      if (due === undefined) break
      this.timers = this.timers.filter((x) => x !== due)
      this.time = Math.max(this.time, due.at)
      due.fn()
    }
    this.time = end
  }

  /** Timers (and manual sleeps) not yet run. */
  pendingTimers(): number {
    return this.timers.length
  }
}

/** Lets every promise callback that is ready run (a few turns of the microtask queue and one macrotask). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

/**
 * A Clock for fault tests of the whole wrapper stack: the time is real, sleeps (retry back-off) return at
 * once, and timers never fire on their own: `expireLatest` fires the most recently set one. Give it to the
 * stack and call `expireLatest` from FaultyRemote's `onHang`: the timeout wrapper sits right over the
 * faulty remote and sets its timer just before the call, with nothing asynchronous in between, so the latest
 * timer is the hung call's. Hung calls then time out at once, and no other call ever does.
 */
export class HangClock implements Clock {
  private readonly timers: { fn: () => void }[] = []
  /** Timers fired by `expireLatest`. */
  expired = 0
  /** Sleeps asked for (and skipped). */
  slept = 0

  now(): number {
    return performance.now()
  }

  async sleep(_ms: number): Promise<void> {
    this.slept++
  }

  setTimer(_ms: number, fn: () => void): () => void {
    const timer = { fn }
    this.timers.push(timer)
    return () => {
      const i = this.timers.indexOf(timer)
      if (i !== -1) this.timers.splice(i, 1)
    }
  }

  /** Fires the most recently set timer that is still pending (in a microtask). Throws when there is none. */
  expireLatest(): void {
    const timer = this.timers.pop()
    if (!timer) throw new Error('HangClock: a call hung with no timer pending (is a TimeoutRemote right over the faulty remote?)')
    this.expired++
    queueMicrotask(timer.fn)
  }
}
