/**
 * What a notification says, and its encodings: generic JSON, Slack (incoming webhook: `text` plus Block
 * Kit blocks), Discord (webhook: `content` plus one embed, no mentions) and plain-text email. Pure.
 */
import type { NotifyEventKind, WebhookFormat } from '../config/index.js'

/** An event to notify about: what the daemon's run loop reports (`onEvent`), a cost check, or a test. */
export interface NotifyEvent {
  kind: NotifyEventKind | 'test'
  /** The job it concerns; null for events of the whole configuration (cost, test). */
  job: string | null
  /** The run it concerns (the run journal's id), if any. */
  run?: string | null
  /** What happened, for people: one line, or a few (a log tail). */
  message: string
  /** When it happened (default: the notifier's clock). */
  time?: Date
  /** Extra facts shown as fields (`exit code`, `duration`, `estimated monthly cost`...). */
  details?: Record<string, string | number | boolean | null>
}

/** Notifications held back by the rate limit before this one. */
export interface Suppressed {
  count: number
  /** Time of the first one held back (ISO). */
  since: string
}

/** A rendered notification, the same for every channel before encoding. */
export interface NotificationMessage {
  kind: NotifyEvent['kind']
  job: string | null
  run: string | null
  host: string
  /** ISO time. */
  time: string
  title: string
  message: string
  /** Fields in display order. */
  fields: [string, string][]
  suppressed: Suppressed | null
  /** The rate limit window in ms (0: none), for the footer. */
  rateLimitMs: number
}

const PHRASES: Record<NotifyEvent['kind'], (job: string | null) => string> = {
  failure: (j) => (j ? `job ${j} failed` : 'a run failed'),
  missed: (j) => (j ? `job ${j} missed its schedule` : 'a scheduled run was missed'),
  verify_failure: (j) => (j ? `verification of job ${j} failed` : 'verification failed'),
  cost_threshold: () => 'estimated monthly cost is above the threshold',
  success: (j) => (j ? `job ${j} succeeded` : 'a run succeeded'),
  test: () => 'test notification',
}

/** Discord embed colours (Slack has none in blocks). */
const COLORS: Record<NotifyEvent['kind'], number> = {
  failure: 0xd93025, verify_failure: 0xd93025, missed: 0xf9a825, cost_threshold: 0xf9a825, success: 0x2e7d32, test: 0x1e88e5,
}

/** "1h", "90m", "2d" for the footer. */
function formatWindow(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  return `${Math.round(ms / 1000)}s`
}

function cut(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`
}

/** Renders an event for `host` at `now`. */
export function renderMessage(e: NotifyEvent, o: { host: string; now: Date; suppressed: Suppressed | null; rateLimitMs: number }): NotificationMessage {
  const fields: [string, string][] = []
  if (e.job) fields.push(['job', e.job])
  if (e.run) fields.push(['run', e.run])
  fields.push(['host', o.host])
  for (const [k, v] of Object.entries(e.details ?? {})) if (v !== null && v !== undefined) fields.push([k, String(v)])
  return {
    kind: e.kind, job: e.job, run: e.run ?? null, host: o.host, time: (e.time ?? o.now).toISOString(),
    title: `coldstore on ${o.host}: ${PHRASES[e.kind](e.job)}`,
    message: e.message, fields, suppressed: o.suppressed, rateLimitMs: o.rateLimitMs,
  }
}

/** The sentence about held-back notifications, or ''. */
export function suppressedLine(m: NotificationMessage): string {
  if (!m.suppressed || m.suppressed.count === 0) return ''
  const n = m.suppressed.count
  const what = `${m.kind.replace('_', ' ')} notification${n === 1 ? '' : 's'}${m.job ? ` for job ${m.job}` : ''}`
  return `${n} more ${what} ${n === 1 ? 'was' : 'were'} suppressed since ${m.suppressed.since} (at most one per ${formatWindow(m.rateLimitMs)}).`
}

function footer(m: NotificationMessage): string {
  return `Sent by coldstore on ${m.host} at ${m.time}.`
}

/** Generic JSON: one flat document. */
export function encodeJson(m: NotificationMessage): Record<string, unknown> {
  return {
    source: 'coldstore', version: 1, kind: m.kind, job: m.job, run: m.run, host: m.host, time: m.time,
    title: m.title, message: m.message,
    suppressed: m.suppressed?.count ?? 0, suppressed_since: m.suppressed?.since ?? null,
    details: Object.fromEntries(m.fields.filter(([k]) => k !== 'job' && k !== 'run' && k !== 'host')),
  }
}

/** Slack's mrkdwn escapes: &, < and > (anything else is literal). */
function slackEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/**
 * Slack incoming webhook: `text` (the notification text and the fallback) and blocks: a header (plain
 * text, at most 150 characters), the message as a section (at most 3,000), fields (at most 10 of 2,000),
 * a context line.
 */
export function encodeSlack(m: NotificationMessage): Record<string, unknown> {
  const extra = suppressedLine(m)
  const body = `${m.message}${extra ? `\n_${extra}_` : ''}`
  const blocks: Record<string, unknown>[] = [
    { type: 'header', text: { type: 'plain_text', text: cut(m.title, 150), emoji: false } },
    { type: 'section', text: { type: 'mrkdwn', text: cut(slackEscape(body), 3000) } },
  ]
  if (m.fields.length) {
    blocks.push({ type: 'section', fields: m.fields.slice(0, 10).map(([k, v]) => ({ type: 'mrkdwn', text: cut(`*${slackEscape(k)}*\n${slackEscape(v)}`, 2000) })) })
  }
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: slackEscape(footer(m)) }] })
  return { text: cut(`${m.title}: ${m.message}`, 3000), blocks }
}

/**
 * Discord webhook: `content` (the title, at most 2,000 characters), one embed (title at most 256,
 * description 4,096, at most 25 fields of 1,024, colour by kind, timestamp), and `allowed_mentions` empty
 * so a log line holding `@everyone` pings nobody.
 */
export function encodeDiscord(m: NotificationMessage): Record<string, unknown> {
  const extra = suppressedLine(m)
  return {
    username: 'coldstore',
    content: cut(m.title, 2000),
    allowed_mentions: { parse: [] },
    embeds: [
      {
        title: cut(m.title, 256),
        description: cut(`${m.message}${extra ? `\n\n*${extra}*` : ''}`, 4096),
        color: COLORS[m.kind],
        timestamp: m.time,
        fields: m.fields.slice(0, 25).map(([k, v]) => ({ name: cut(k, 256), value: cut(v || '-', 1024), inline: true })),
        footer: { text: cut(footer(m), 2048) },
      },
    ],
  }
}

/** The webhook body for `format`. */
export function encodeWebhook(format: WebhookFormat, m: NotificationMessage): Record<string, unknown> {
  return format === 'slack' ? encodeSlack(m) : format === 'discord' ? encodeDiscord(m) : encodeJson(m)
}

/** Email subject and plain-text body. */
export function encodeEmail(m: NotificationMessage): { subject: string; text: string } {
  const extra = suppressedLine(m)
  const width = Math.max(...m.fields.map(([k]) => k.length))
  const lines = [m.message, '', ...m.fields.map(([k, v]) => `${k.padEnd(width)}  ${v}`)]
  if (extra) lines.push('', extra)
  lines.push('', `-- `, footer(m))
  // A subject is one line: a newline in it would start a header.
  return { subject: cut(m.title.replace(/[\r\n]+/g, ' '), 200), text: lines.join('\n') + '\n' }
}
