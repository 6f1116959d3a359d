/**
 * Where job events go (a run failed, succeeded; runs were missed; a check failed): the configuration's
 * `notify:` channels, through a Notifier whose rate-limit state is the file in the cache folder
 * (`<cache>/notify/rate-limit.json`), shared by the daemon and every `coldstore run` worker it starts.
 *
 * Who sends what: a `coldstore run` (the daemon's workers too) sends its own run's `failure`,
 * `verify_failure` and `success` and waits for the delivery before it exits; the daemon sends `missed`,
 * the `failure` of a worker that died without recording its end, and `cost_threshold` (its daily check),
 * and waits for what is in flight on SIGTERM. Runs that end with a warning are not notified (there is no
 * such notification kind); they show yellow in the dashboard and `coldstore jobs`.
 */
import { hostname } from 'node:os'
import {
  FileRateLimitStore, Notifier, parseNotify,
  type ColdstoreConfig, type JobEvent, type JobEventSink, type JournalEvent, type NotifyConfig, type NotifyEvent,
} from '../engine/index.js'
import type { GlobalArgs } from './common.js'
import { rateLimitStatePath } from './commands/notify.js'

/** Log lines of a failed run that go into its notification (the last ones, warnings and errors only). */
const TAIL_LINES = 5
const TAIL_CHARS = 300

/** The notification for a job event, or null for events no notification kind covers (warnings). */
export function notifyEventOf(e: JobEvent, tail: readonly string[] = []): NotifyEvent | null {
  if (e.kind === 'warning') return null
  const details: NotifyEvent['details'] = {}
  const ev = e.event
  if (ev.type === 'finished') {
    details.result = ev.result
    details.attempts = ev.attempts
    details.duration = `${(ev.duration_ms / 1000).toFixed(1)} s`
    details['exit code'] = ev.exit_code
    if (ev.snapshot) details.snapshot = ev.snapshot.slice(0, 8)
  } else if (ev.type === 'missed') {
    details['missed runs'] = ev.count
    details.latest = ev.latest
    details.policy = ev.policy === 'run' ? 'run once now' : 'not run (missed: skip)'
  }
  const message = tail.length && (e.kind === 'failure' || e.kind === 'verify_failure') ? `${e.message}\n\nLast log lines:\n${tail.join('\n')}` : e.message
  return { kind: e.kind, job: e.job, run: e.run, message, time: new Date(e.t), details }
}

/** The job events seam of one process. */
export interface JobNotifications {
  /** Handed to runJob / the Daemon as `onEvent`. */
  sink: JobEventSink
  /** Every journal event this process writes (the log tail of failure messages). */
  observe(e: JournalEvent): void
  /** The notifier, or null without a `notify:` section. */
  notifier: Notifier | null
  /** Waits for notifications still being delivered. */
  flush(): Promise<void>
}

/** The `notify:` section (null when there is none). @throws ConfigError for an invalid one. */
export function loadNotifyConfig(config: ColdstoreConfig): NotifyConfig | null {
  return parseNotify(config)
}

/**
 * The seam for this process. `wait`: the sink resolves once the message was delivered or failed
 * (`coldstore run`, which exits after); otherwise it hands the event on and returns (the daemon), and
 * `flush` waits.
 */
export function jobNotifications(o: { args: GlobalArgs; notify: NotifyConfig | null; log: (line: string) => void; now?: () => Date; wait: boolean }): JobNotifications {
  const tails = new Map<string, string[]>()
  const observe = (e: JournalEvent): void => {
    if (e.run === null) return
    if (e.type === 'log' && e.level !== 'info') {
      const list = tails.get(e.run) ?? []
      list.push(e.message.length > TAIL_CHARS ? `${e.message.slice(0, TAIL_CHARS - 1)}…` : e.message)
      if (list.length > TAIL_LINES) list.shift()
      tails.set(e.run, list)
    }
  }
  if (!o.notify) return { sink: () => undefined, observe, notifier: null, flush: async () => undefined }
  const report = (line: string): void => o.log(line)
  const notifier = new Notifier({
    config: o.notify, env: process.env, hostname: hostname(), now: o.now,
    store: new FileRateLimitStore(rateLimitStatePath(o.args)), onError: report,
  })
  const sink: JobEventSink = async (e) => {
    const n = notifyEventOf(e, e.run ? (tails.get(e.run) ?? []) : [])
    if (e.run) tails.delete(e.run)
    if (!n) return
    if (!o.wait) return notifier.onEvent(n)
    try {
      const out = await notifier.notify(n)
      for (const r of out.results) if (!r.ok) report(`notification to ${r.channel} (${r.target}) failed: ${r.error ?? 'unknown error'}`)
    } catch (err) {
      report(`notification failed: ${(err as Error).message}`)
    }
  }
  return { sink, observe, notifier, flush: () => notifier.flush() }
}
