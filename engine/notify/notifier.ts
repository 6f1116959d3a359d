/**
 * The notifier: takes events (a failed or missed run, a failed verification, a cost above the threshold),
 * keeps those the configuration asks for, applies the rate limit, and sends each to every channel that
 * takes it, in parallel. Channel failures never throw: they are in the outcome, and `onEvent` (the seam
 * the daemon's run loop calls) reports them through `onError`.
 */
import type { NotifyChannel, NotifyConfig } from '../config/index.js'
import { deliver, type ChannelResult } from './channels.js'
import { renderMessage, type NotifyEvent } from './message.js'
import { MemoryRateLimitStore, decide, markSent, rateLimitKey, type RateLimitStore } from './rate-limit.js'

/** What the notifier is given. The engine reads no environment: the caller passes it. */
export interface NotifierOptions {
  config: NotifyConfig
  /** Where `*_env` secrets are looked up (the CLI passes process.env). */
  env: Readonly<Record<string, string | undefined>>
  /** Shown in every message, and the SMTP EHLO name. */
  hostname: string
  /** The clock (rate limits, message times). Default: the system clock. */
  now?: () => Date
  /** Rate-limit state; default in memory. The daemon passes a FileRateLimitStore in its state folder. */
  store?: RateLimitStore
  /** Waits before a webhook's one retry. Default: a timer. */
  sleep?: (ms: number) => Promise<void>
  /** Delay before a webhook's retry, ms (default 2000). */
  retryDelayMs?: number
  /** Where `onEvent` reports what it could not deliver (redacted text). */
  onError?: (message: string) => void
}

/** What happened to one event. */
export interface NotifyOutcome {
  /** True when the message went to at least one channel that took it. */
  sent: boolean
  /** Why nothing was sent: the kind is not in `on:`, no channel takes it, held back by the rate limit, or every channel failed. */
  reason: 'not-subscribed' | 'no-channel' | 'rate-limited' | 'failed' | null
  /** Held-back messages: counted into this one when sent, or the count so far when held back. */
  suppressed: number
  results: ChannelResult[]
}

export class Notifier {
  readonly config: NotifyConfig
  private readonly o: NotifierOptions
  private readonly store: RateLimitStore
  private lock: Promise<unknown> = Promise.resolve()
  private readonly pending = new Set<Promise<unknown>>()

  constructor(o: NotifierOptions) {
    this.o = o
    this.config = o.config
    this.store = o.store ?? new MemoryRateLimitStore()
  }

  private now(): Date {
    return this.o.now?.() ?? new Date()
  }

  private ctx(): Parameters<typeof deliver>[2] {
    return {
      env: this.o.env, hostname: this.o.hostname, retryDelayMs: this.o.retryDelayMs ?? 2000,
      sleep: this.o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))),
    }
  }

  /** The channels that take events of `kind`. */
  channelsFor(kind: NotifyEvent['kind']): NotifyChannel[] {
    if (kind === 'test') return this.config.channels
    if (!this.config.on.includes(kind)) return []
    return this.config.channels.filter((c) => c.on === null || c.on.includes(kind))
  }

  /**
   * Sends one event (rate-limited per kind and job). Events are decided one at a time, in call order, so
   * concurrent calls see each other's rate-limit state.
   */
  notify(e: NotifyEvent): Promise<NotifyOutcome> {
    const run = this.lock.then(() => this.notifyNow(e))
    this.lock = run.catch(() => undefined)
    return run
  }

  private async notifyNow(e: NotifyEvent): Promise<NotifyOutcome> {
    if (e.kind !== 'test' && !this.config.on.includes(e.kind)) return { sent: false, reason: 'not-subscribed', suppressed: 0, results: [] }
    const channels = this.channelsFor(e.kind)
    if (channels.length === 0) return { sent: false, reason: 'no-channel', suppressed: 0, results: [] }
    const now = this.now()
    const key = rateLimitKey(e.kind, e.job)
    const state = e.kind === 'test' ? {} : await this.store.load()
    const d = e.kind === 'test' ? ({ send: true, suppressed: null } as const) : decide(state, key, now.getTime(), this.config.rateLimitMs)
    if (!d.send) {
      await this.store.save(state)
      return { sent: false, reason: 'rate-limited', suppressed: d.suppressed, results: [] }
    }
    const m = renderMessage(e, { host: this.o.hostname, now, suppressed: d.suppressed, rateLimitMs: this.config.rateLimitMs })
    const ctx = this.ctx()
    const results = await Promise.all(channels.map((c) => deliver(c, m, ctx)))
    const sent = results.some((r) => r.ok)
    if (e.kind !== 'test') {
      // Every channel failed: the window does not start, so the next event tries again (and still carries the count).
      if (sent) markSent(state, key, now.getTime())
      await this.store.save(state)
    }
    return { sent, reason: sent ? null : 'failed', suppressed: d.suppressed?.count ?? 0, results }
  }

  /** Sends a test message to every channel, whatever `on:` and the rate limit say; one result per channel. */
  async test(message = 'This is a test message from coldstore: notifications reach this channel.'): Promise<ChannelResult[]> {
    return (await this.notify({ kind: 'test', job: null, message })).results
  }

  /**
   * The daemon's seam: fire and forget. Undelivered messages and failed channels are reported through
   * `onError`; `flush` waits for what is still being sent (call it before exiting).
   */
  readonly onEvent = (e: NotifyEvent): void => {
    const p = this.notify(e).then(
      (out) => {
        for (const r of out.results) if (!r.ok) this.o.onError?.(`notification to ${r.channel} (${r.target}) failed: ${r.error ?? 'unknown error'}`)
      },
      (err: unknown) => this.o.onError?.(`notification failed: ${(err as Error).message}`),
    )
    this.pending.add(p)
    void p.finally(() => this.pending.delete(p))
  }

  /** Waits until every event given to `onEvent` has been delivered or has failed. */
  async flush(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending])
  }
}

/**
 * The `cost_threshold` event for an estimated monthly cost, or null when it is within `thresholdUSD`.
 * `parts` (a repository or job → its monthly dollars) become the message's fields.
 */
export function costThresholdEvent(o: { monthlyUSD: number; thresholdUSD: number; parts?: Record<string, number> }): NotifyEvent | null {
  if (!(o.monthlyUSD > o.thresholdUSD)) return null
  const usd = (x: number): string => `$${x.toFixed(2)}`
  const details: Record<string, string> = { 'estimated monthly cost': usd(o.monthlyUSD), threshold: usd(o.thresholdUSD) }
  for (const [k, v] of Object.entries(o.parts ?? {})) details[k] = `${usd(v)}/month`
  return {
    kind: 'cost_threshold', job: null,
    message: `The estimated monthly storage cost is ${usd(o.monthlyUSD)}, above the threshold of ${usd(o.thresholdUSD)} (notify.cost_threshold_usd). See coldstore cost for the breakdown.`,
    details,
  }
}
