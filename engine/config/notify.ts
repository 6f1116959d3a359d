/**
 * The `notify:` section of coldstore.yaml: which events are sent, how often, and to which channels
 * (webhooks in generic JSON, Slack or Discord format; SMTP email). Validated into a NotifyConfig; every
 * error names the file and the key, as in jobs.ts.
 *
 * Secrets (webhook URLs, which carry their token; bearer tokens; SMTP passwords) are references: a file
 * (`url_file`, `token_file`, `password_file`) or an environment variable (`url_env`, `token_env`,
 * `password_env`), read when a message is sent. Inline values are refused unless the file sets
 * `allow_inline_secrets: true`. Relative file paths are relative to the configuration file's folder.
 */
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { ConfigError } from '../errors.js'
import { parseDuration } from './jobs.js'
import type { ColdstoreConfig } from './config.js'

/** Events a notification can be sent for. */
export const NOTIFY_EVENTS = ['failure', 'missed', 'verify_failure', 'cost_threshold', 'success'] as const
export type NotifyEventKind = (typeof NOTIFY_EVENTS)[number]

/** The events sent when `on:` is not given: every problem, not successes. */
export const DEFAULT_NOTIFY_ON: readonly NotifyEventKind[] = ['failure', 'missed', 'verify_failure', 'cost_threshold']

/** Message formats of a webhook. */
export const WEBHOOK_FORMATS = ['json', 'slack', 'discord'] as const
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number]

/**
 * A secret as the configuration names it: inline (only with allow_inline_secrets), a file, or an
 * environment variable. `key` is the configuration key it came from, for messages (never the value).
 */
export type SecretRef =
  | { from: 'inline'; value: string; key: string }
  | { from: 'file'; path: string; key: string }
  | { from: 'env'; name: string; key: string }

/** One webhook channel. */
export interface WebhookChannel {
  type: 'webhook'
  /** Shown in reports: the `name:` given, else `webhook[N]`. */
  name: string
  /** The configuration key of the channel (`notify.webhook[0]`), for messages. */
  key: string
  format: WebhookFormat
  url: SecretRef
  /** Sent as `Authorization: Bearer <token>` (ntfy, Gotify, Home Assistant...). */
  token: SecretRef | null
  /** Events this channel takes (a subset of notify.on), or null for all of notify.on. */
  on: NotifyEventKind[] | null
  timeoutMs: number
}

/** How an SMTP connection is secured. */
export type SmtpTls = 'starttls' | 'tls' | 'none'

/** One SMTP email channel. */
export interface SmtpChannel {
  type: 'smtp'
  name: string
  key: string
  host: string
  port: number
  /** `starttls` (upgrade required, port 587), `tls` (implicit TLS, port 465), `none` (plain: loopback relays only when authenticating). */
  tls: SmtpTls
  username: string | null
  password: SecretRef | null
  /** PEM file of a CA to trust (a private mail server's certificate), absolute. */
  caFile: string | null
  from: string
  to: string[]
  on: NotifyEventKind[] | null
  timeoutMs: number
}

export type NotifyChannel = WebhookChannel | SmtpChannel

/** The validated `notify:` section. */
export interface NotifyConfig {
  /** Events sent (before each channel's own `on:`). */
  on: NotifyEventKind[]
  /** At most one message per event kind and job in this window (0: no limit); the next one counts the suppressed. */
  rateLimitMs: number
  /** Estimated monthly cost (US dollars, every repository of the file) above which `cost_threshold` fires; null: never. */
  costThresholdUSD: number | null
  channels: NotifyChannel[]
}

const TOP_KEYS = new Set(['on', 'rate_limit', 'cost_threshold_usd', 'webhook', 'smtp'])
const WEBHOOK_KEYS = new Set(['name', 'format', 'url', 'url_file', 'url_env', 'token', 'token_file', 'token_env', 'on', 'timeout'])
const SMTP_KEYS = new Set(['name', 'host', 'port', 'tls', 'username', 'password', 'password_file', 'password_env', 'ca_file', 'from', 'to', 'on', 'timeout'])
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const ADDRESS = /^[^\s@<>",]+@[^\s@<>",]+$/

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/** `a@b.c` or `Name <a@b.c>`. */
function isMailbox(v: string): boolean {
  const m = /^(?:[^<>]*<([^<>]+)>|([^<>]+))$/.exec(v.trim())
  return Boolean(m && ADDRESS.test((m[1] ?? m[2]).trim()))
}

/**
 * Parses and validates the `notify:` section; null when it is absent (no notifications).
 *
 * @throws ConfigError naming the file and key.
 */
export function parseNotify(config: ColdstoreConfig): NotifyConfig | null {
  const raw = config.sections.notify
  if (raw === undefined || raw === null) return null
  const at = (k?: string): string => `${config.path}: notify${k ? `.${k}` : ''}`
  if (!isMapping(raw)) throw new ConfigError(`${at()}: expected a mapping (on:, rate_limit:, webhook:, smtp:)`)
  for (const k of Object.keys(raw)) {
    if (!TOP_KEYS.has(k)) throw new ConfigError(`${at(k)}: unknown key (known: ${[...TOP_KEYS].join(', ')})`)
  }
  const base = dirname(resolve(config.path))
  const filePath = (p: string): string => (isAbsolute(p) ? p : join(base, p))

  const events = (v: unknown, key: string): NotifyEventKind[] => {
    const list = typeof v === 'string' ? [v] : v
    if (!Array.isArray(list) || list.length === 0) throw new ConfigError(`${at(key)}: expected a list of events (${NOTIFY_EVENTS.join(', ')})`)
    for (const e of list) {
      if (typeof e !== 'string' || !(NOTIFY_EVENTS as readonly string[]).includes(e)) {
        throw new ConfigError(`${at(key)}: ${JSON.stringify(e)} is not an event (known: ${NOTIFY_EVENTS.join(', ')})`)
      }
    }
    return [...new Set(list as NotifyEventKind[])]
  }
  const on = raw.on === undefined ? [...DEFAULT_NOTIFY_ON] : events(raw.on, 'on')

  let rateLimitMs = 3_600_000
  if (raw.rate_limit !== undefined) {
    rateLimitMs = raw.rate_limit === 0 || raw.rate_limit === '0' ? 0 : parseDuration(raw.rate_limit, at('rate_limit'))
  }

  let costThresholdUSD: number | null = null
  if (raw.cost_threshold_usd !== undefined && raw.cost_threshold_usd !== null) {
    const v = raw.cost_threshold_usd
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConfigError(`${at('cost_threshold_usd')}: expected an amount in US dollars per month, like 20 or 7.5`)
    costThresholdUSD = v
  }

  const secret = (def: Record<string, unknown>, key: string, base: string, required: boolean): SecretRef | null => {
    const given = ['', '_file', '_env'].filter((s) => def[`${base}${s}`] !== undefined)
    if (given.length > 1) throw new ConfigError(`${at(key)}: give one of ${base}_file, ${base}_env${config.allowInlineSecrets ? ` or ${base}` : ''}, not several`)
    if (given.length === 0) {
      if (required) throw new ConfigError(`${at(`${key}.${base}_file`)}: required: a file holding the ${base} (or ${base}_env: the environment variable holding it)`)
      return null
    }
    const k = `${base}${given[0]}`
    const v = def[k]
    const where = `notify.${key}.${k}`
    if (typeof v !== 'string' || v === '') throw new ConfigError(`${at(`${key}.${k}`)}: expected a ${given[0] === '_env' ? 'variable name' : given[0] === '_file' ? 'file path' : 'string'}`)
    if (given[0] === '_file') return { from: 'file', path: filePath(v), key: where }
    if (given[0] === '_env') {
      if (!ENV_NAME.test(v)) throw new ConfigError(`${at(`${key}.${k}`)}: ${JSON.stringify(v)} is not an environment variable name`)
      return { from: 'env', name: v, key: where }
    }
    if (!config.allowInlineSecrets) {
      throw new ConfigError(
        `${at(`${key}.${k}`)}: secrets are not written inline (a webhook URL carries its token): use ${base}_file (a file readable only by you, or a Docker secret) or ${base}_env, or set allow_inline_secrets: true`,
      )
    }
    return { from: 'inline', value: v, key: where }
  }
  const timeout = (def: Record<string, unknown>, key: string): number => {
    if (def.timeout === undefined) return 15_000
    const ms = parseDuration(def.timeout, at(`${key}.timeout`))
    if (ms <= 0) throw new ConfigError(`${at(`${key}.timeout`)}: must be above 0`)
    return ms
  }
  const channelOn = (def: Record<string, unknown>, key: string): NotifyEventKind[] | null => {
    if (def.on === undefined) return null
    const list = events(def.on, `${key}.on`)
    for (const e of list) if (!on.includes(e)) throw new ConfigError(`${at(`${key}.on`)}: ${e} is not in notify.on (${on.join(', ')}): add it there too`)
    return list
  }
  const list = (v: unknown): unknown[] => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v])
  const names = new Set<string>()
  const named = (def: Record<string, unknown>, key: string, fallback: string): string => {
    const n = def.name === undefined ? fallback : def.name
    if (typeof n !== 'string' || n === '') throw new ConfigError(`${at(`${key}.name`)}: expected a name`)
    if (names.has(n)) throw new ConfigError(`${at(`${key}.name`)}: another channel is named ${JSON.stringify(n)}`)
    names.add(n)
    return n
  }

  const channels: NotifyChannel[] = []
  const hooks = list(raw.webhook)
  hooks.forEach((def, i) => {
    const key = Array.isArray(raw.webhook) ? `webhook[${i}]` : 'webhook'
    if (typeof def === 'string') {
      throw new ConfigError(`${at(key)}: a webhook URL carries its token and is not written inline: give { url_file: FILE } or { url_env: NAME } (format: json, slack or discord)`)
    }
    if (!isMapping(def)) throw new ConfigError(`${at(key)}: expected a mapping (format:, url_file: or url_env:)`)
    for (const k of Object.keys(def)) if (!WEBHOOK_KEYS.has(k)) throw new ConfigError(`${at(`${key}.${k}`)}: unknown key (known: ${[...WEBHOOK_KEYS].join(', ')})`)
    const format = (def.format ?? 'json') as WebhookFormat
    if (!WEBHOOK_FORMATS.includes(format)) throw new ConfigError(`${at(`${key}.format`)}: expected one of ${WEBHOOK_FORMATS.join(', ')}`)
    const url = secret(def, key, 'url', true) as SecretRef
    if (url.from === 'inline' && !/^https?:\/\//i.test(url.value)) throw new ConfigError(`${at(`${key}.url`)}: expected an http:// or https:// URL`)
    const token = secret(def, key, 'token', false)
    if (token && format !== 'json') throw new ConfigError(`${at(key)}: token is for format: json webhooks (Slack and Discord URLs carry their own)`)
    channels.push({ type: 'webhook', name: named(def, key, key), key: `notify.${key}`, format, url, token, on: channelOn(def, key), timeoutMs: timeout(def, key) })
  })

  const smtps = list(raw.smtp)
  smtps.forEach((def, i) => {
    const key = Array.isArray(raw.smtp) ? `smtp[${i}]` : 'smtp'
    if (!isMapping(def)) throw new ConfigError(`${at(key)}: expected a mapping (host:, from:, to:...)`)
    for (const k of Object.keys(def)) if (!SMTP_KEYS.has(k)) throw new ConfigError(`${at(`${key}.${k}`)}: unknown key (known: ${[...SMTP_KEYS].join(', ')})`)
    if (typeof def.host !== 'string' || def.host === '') throw new ConfigError(`${at(`${key}.host`)}: required: the mail server (smtp.example.com)`)
    const tls = (def.tls ?? (def.port === 465 ? 'tls' : 'starttls')) as SmtpTls
    if (tls !== 'starttls' && tls !== 'tls' && tls !== 'none') throw new ConfigError(`${at(`${key}.tls`)}: expected starttls (port 587), tls (port 465) or none`)
    const port = def.port ?? (tls === 'tls' ? 465 : tls === 'starttls' ? 587 : 25)
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(`${at(`${key}.port`)}: expected a port number`)
    let username: string | null = null
    if (def.username !== undefined) {
      if (typeof def.username !== 'string' || def.username === '') throw new ConfigError(`${at(`${key}.username`)}: expected a user name`)
      username = def.username
    }
    const password = secret(def, key, 'password', false)
    if (password && !username) throw new ConfigError(`${at(`${key}.username`)}: required with a password`)
    if (username && !password) throw new ConfigError(`${at(`${key}.password_file`)}: required with username: (or password_env)`)
    if (username && tls === 'none' && !isLoopback(def.host)) {
      throw new ConfigError(`${at(`${key}.tls`)}: none would send the password in the clear to ${def.host}: use starttls or tls (tls: none is for relays on this machine)`)
    }
    let caFile: string | null = null
    if (def.ca_file !== undefined) {
      if (typeof def.ca_file !== 'string' || def.ca_file === '') throw new ConfigError(`${at(`${key}.ca_file`)}: expected a PEM file path`)
      caFile = filePath(def.ca_file)
    }
    if (typeof def.from !== 'string' || !isMailbox(def.from)) throw new ConfigError(`${at(`${key}.from`)}: required: the sender, like alerts@example.com or "coldstore <alerts@example.com>"`)
    const to = def.to === undefined ? [] : typeof def.to === 'string' ? [def.to] : def.to
    if (!Array.isArray(to) || to.length === 0) throw new ConfigError(`${at(`${key}.to`)}: required: one or more recipients`)
    for (const r of to) if (typeof r !== 'string' || !isMailbox(r)) throw new ConfigError(`${at(`${key}.to`)}: ${JSON.stringify(r)} is not an email address`)
    channels.push({
      type: 'smtp', name: named(def, key, key), key: `notify.${key}`, host: def.host, port, tls, username, password, caFile,
      from: def.from, to: to as string[], on: channelOn(def, key), timeoutMs: timeout(def, key),
    })
  })
  if (channels.length === 0) throw new ConfigError(`${at()}: give at least one channel (webhook: or smtp:), or leave notify: out`)
  return { on, rateLimitMs, costThresholdUSD, channels }
}
