/**
 * Delivery to one channel: a webhook (HTTP POST of JSON, node's fetch) or an SMTP server (nodemailer,
 * loaded on first use). Secrets are read when a message is sent (a rotated file is picked up), and every
 * error text passes through `redact` so no URL token or password reaches a log.
 */
import { readFile } from 'node:fs/promises'
import type { NotifyChannel, SecretRef, SmtpChannel, WebhookChannel } from '../config/index.js'
import { ConfigError } from '../errors.js'
import { encodeEmail, encodeWebhook, type NotificationMessage } from './message.js'

/** How one channel fared. */
export interface ChannelResult {
  /** The channel's name (`name:` or its key, `webhook[0]`). */
  channel: string
  type: 'webhook' | 'smtp'
  /** `json`, `slack`, `discord` or `email`. */
  format: string
  /** Where it went, without secrets: the webhook's origin, or `smtp.example.com:587 → a@b`. */
  target: string
  ok: boolean
  /** Why it failed (redacted). */
  error?: string
  /** The webhook's HTTP status, when there was an answer. */
  status?: number
  /** Attempts made (webhooks retry once on a network error, 429 or 5xx). */
  attempts: number
}

/** What delivery needs from its caller. */
export interface DeliveryContext {
  env: Readonly<Record<string, string | undefined>>
  /** The EHLO name for SMTP. */
  hostname: string
  sleep: (ms: number) => Promise<void>
  /** Delay before the one retry of a webhook (a Retry-After up to 30 s wins). */
  retryDelayMs: number
}

/** Reads a secret. @throws ConfigError naming the key (never the value). */
export async function readSecret(ref: SecretRef, env: Readonly<Record<string, string | undefined>>): Promise<string> {
  if (ref.from === 'inline') return ref.value
  if (ref.from === 'env') {
    const v = env[ref.name]
    if (v === undefined || v === '') throw new ConfigError(`${ref.key}: the environment variable ${ref.name} is not set`)
    return v
  }
  let text: string
  try {
    text = await readFile(ref.path, 'utf8')
  } catch (err) {
    throw new ConfigError(`${ref.key}: cannot read ${ref.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
  }
  const v = text.replace(/\r?\n$/, '').trim()
  if (v === '') throw new ConfigError(`${ref.key}: ${ref.path} is empty`)
  return v
}

/** Replaces every occurrence of each secret (and its URL-encoded form) in `text` with `[redacted]`. */
export function redact(text: string, secrets: readonly string[]): string {
  const forms = new Set<string>()
  for (const s of secrets) {
    if (s.length < 4) continue
    forms.add(s).add(encodeURIComponent(s)).add(encodeURI(s))
    // A webhook URL's token is in its path and query: servers echo those without the origin.
    try {
      const u = new URL(s)
      if (u.pathname.length + u.search.length >= 8) forms.add(u.pathname + u.search).add(decodeURIComponent(u.pathname + u.search))
      if (u.pathname.length >= 8) forms.add(u.pathname)
    } catch {
      // not a URL
    }
  }
  let out = text
  // Longest first, so a whole URL is replaced before its path.
  for (const form of [...forms].sort((a, b) => b.length - a.length)) out = out.split(form).join('[redacted]')
  return out
}

/** Where a secret comes from, for people: `file /run/secrets/x`, `env SLACK_URL`, `inline`. */
function sourceOf(ref: SecretRef): string {
  return ref.from === 'file' ? `file ${ref.path}` : ref.from === 'env' ? `env ${ref.name}` : 'inline'
}

function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return 'an invalid URL'
  }
}

async function sendWebhook(ch: WebhookChannel, m: NotificationMessage, ctx: DeliveryContext): Promise<ChannelResult> {
  const result: ChannelResult = { channel: ch.name, type: 'webhook', format: ch.format, target: `webhook (url from ${sourceOf(ch.url)})`, ok: false, attempts: 0 }
  const secrets: string[] = []
  try {
    const url = await readSecret(ch.url, ctx.env)
    secrets.push(url)
    result.target = `${originOf(url)}/… (url from ${sourceOf(ch.url)})`
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new ConfigError(`${ch.url.key}: not a URL`)
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new ConfigError(`${ch.url.key}: expected an http:// or https:// URL`)
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'coldstore' }
    if (ch.token) {
      const token = await readSecret(ch.token, ctx.env)
      secrets.push(token)
      headers.authorization = `Bearer ${token}`
    }
    const body = JSON.stringify(encodeWebhook(ch.format, m))
    for (;;) {
      result.attempts++
      let retryAfterMs = ctx.retryDelayMs
      try {
        const res = await fetch(parsed, { method: 'POST', headers, body, redirect: 'error', signal: AbortSignal.timeout(ch.timeoutMs) })
        result.status = res.status
        const text = (await res.text().catch(() => '')).slice(0, 300)
        if (res.ok) {
          result.ok = true
          delete result.error
          return result
        }
        result.error = `HTTP ${res.status}${text ? `: ${text.replace(/\s+/g, ' ').trim()}` : ''}`
        if (res.status !== 429 && res.status < 500) return result
        const ra = Number(res.headers.get('retry-after'))
        if (Number.isFinite(ra) && ra > 0 && ra <= 30) retryAfterMs = ra * 1000
      } catch (err) {
        const e = err as Error & { cause?: { code?: string; message?: string } }
        result.error = e.name === 'TimeoutError' ? `no answer within ${ch.timeoutMs / 1000} s` : `${e.message}${e.cause?.code ? ` (${e.cause.code})` : e.cause?.message ? ` (${e.cause.message})` : ''}`
      }
      if (result.attempts >= 2) return result
      await ctx.sleep(retryAfterMs)
    }
  } catch (err) {
    result.error = (err as Error).message
    return result
  } finally {
    if (result.error) result.error = redact(result.error, secrets)
  }
}

/** nodemailer (an ES module with its own types), loaded on first use: only SMTP channels need it. */
type Nodemailer = typeof import('nodemailer')

let nodemailer: Promise<Nodemailer> | null = null

function loadNodemailer(): Promise<Nodemailer> {
  nodemailer ??= import('nodemailer')
  return nodemailer
}

async function sendSmtp(ch: SmtpChannel, m: NotificationMessage, ctx: DeliveryContext): Promise<ChannelResult> {
  const result: ChannelResult = { channel: ch.name, type: 'smtp', format: 'email', target: `${ch.host}:${ch.port} (${ch.tls}) → ${ch.to.join(', ')}`, ok: false, attempts: 1 }
  const secrets: string[] = []
  try {
    const pass = ch.password ? await readSecret(ch.password, ctx.env) : null
    if (pass) secrets.push(pass)
    let ca: string | undefined
    if (ch.caFile) {
      try {
        ca = await readFile(ch.caFile, 'utf8')
      } catch (err) {
        throw new ConfigError(`${ch.key}.ca_file: cannot read ${ch.caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
      }
    }
    const { createTransport } = await loadNodemailer()
    const transport = createTransport({
      host: ch.host, port: ch.port, name: ctx.hostname,
      secure: ch.tls === 'tls', requireTLS: ch.tls === 'starttls', ignoreTLS: ch.tls === 'none',
      auth: ch.username && pass !== null ? { user: ch.username, pass } : undefined,
      tls: { minVersion: 'TLSv1.2', ...(ca ? { ca } : {}) },
      connectionTimeout: ch.timeoutMs, greetingTimeout: ch.timeoutMs, socketTimeout: ch.timeoutMs,
      logger: false, debug: false,
    })
    try {
      const { subject, text } = encodeEmail(m)
      const info = await transport.sendMail({
        from: ch.from, to: ch.to, subject, text,
        headers: { 'X-Coldstore-Event': m.kind, ...(m.job ? { 'X-Coldstore-Job': m.job } : {}) },
      })
      const rejected: string[] = info.rejected ?? []
      if (rejected.length) {
        result.error = `the server refused ${rejected.join(', ')}`
        return result
      }
      result.ok = true
      return result
    } finally {
      transport.close()
    }
  } catch (err) {
    const e = err as Error & { code?: string; responseCode?: number; response?: string }
    result.error = e.responseCode ? `${e.message}` : e.code && !e.message.includes(e.code) ? `${e.message} (${e.code})` : e.message
    return result
  } finally {
    if (result.error) result.error = redact(result.error, secrets)
  }
}

/** Sends `m` to one channel. Never rejects: failures are in the result. */
export function deliver(ch: NotifyChannel, m: NotificationMessage, ctx: DeliveryContext): Promise<ChannelResult> {
  return ch.type === 'webhook' ? sendWebhook(ch, m, ctx) : sendSmtp(ch, m, ctx)
}
