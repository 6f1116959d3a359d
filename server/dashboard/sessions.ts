/**
 * Dashboard logins: sessions kept in memory (a daemon restart logs everyone out), identified by a random
 * id in an HttpOnly, SameSite=Strict cookie (Secure, and `__Host-` prefixed, over HTTPS). Only a digest of
 * each id is stored, so the table holds nothing a request could replay. Sessions end `timeoutMs` after the
 * login on the injected clock (the daemon's, so a test clock can expire them), or at logout.
 *
 * Failed logins are limited per client address: after `MAX_FAILURES` within `FAILURE_WINDOW_MS` the login
 * answers 429 until the window has passed (a guessed Basic password cannot be tried at line speed).
 */
import { createHash, randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

/** Failed logins per client address before the login page refuses more for a while. */
export const MAX_FAILURES = 10
/** The window failed logins are counted in. */
export const FAILURE_WINDOW_MS = 15 * 60_000
/** Sessions kept at most (the oldest is dropped beyond). */
const MAX_SESSIONS = 1000

/** One session. */
interface Session {
  user: string
  createdMs: number
  expiresMs: number
}

/** Options of SessionStore. */
export interface SessionStoreOptions {
  /** How long a login lasts. */
  timeoutMs: number
  /** HTTPS: the cookie is Secure and named `__Host-coldstore_session`. */
  secure: boolean
  /** The clock (ms since the epoch). */
  now: () => number
}

function digest(id: string): string {
  return createHash('sha256').update(id).digest('hex')
}

/** The cookies of a request (first value of each name). */
export function parseCookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>()
  const header = req.headers.cookie
  if (!header) return out
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq <= 0) continue
    const name = part.slice(0, eq).trim()
    const value = part.slice(eq + 1).trim()
    if (!out.has(name)) out.set(name, value)
  }
  return out
}

/** Sessions of the dashboard. */
export class SessionStore {
  readonly cookieName: string
  private readonly o: SessionStoreOptions
  private readonly sessions = new Map<string, Session>()
  private readonly failures = new Map<string, number[]>()

  constructor(o: SessionStoreOptions) {
    this.o = o
    this.cookieName = o.secure ? '__Host-coldstore_session' : 'coldstore_session'
  }

  /** Starts a session; returns the Set-Cookie header value. */
  create(user: string): string {
    const now = this.o.now()
    for (const [k, s] of this.sessions) if (s.expiresMs <= now) this.sessions.delete(k)
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string)
    const id = randomBytes(32).toString('base64url')
    this.sessions.set(digest(id), { user, createdMs: now, expiresMs: now + this.o.timeoutMs })
    return this.cookie(id, Math.floor(this.o.timeoutMs / 1000))
  }

  private cookie(value: string, maxAgeS: number): string {
    return `${this.cookieName}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${this.o.secure ? '; Secure' : ''}`
  }

  /** The session of a request, or null (none, unknown, or expired: then forgotten). */
  get(req: IncomingMessage): { user: string; expires: Date } | null {
    const id = parseCookies(req).get(this.cookieName)
    if (!id) return null
    const key = digest(id)
    const s = this.sessions.get(key)
    if (!s) return null
    if (s.expiresMs <= this.o.now()) {
      this.sessions.delete(key)
      return null
    }
    return { user: s.user, expires: new Date(s.expiresMs) }
  }

  /** True when the request carries a session cookie (valid or not): its answers must not invite a Basic prompt. */
  hasCookie(req: IncomingMessage): boolean {
    return parseCookies(req).has(this.cookieName)
  }

  /** Ends the request's session; returns the Set-Cookie value that clears the cookie. */
  destroy(req: IncomingMessage): string {
    const id = parseCookies(req).get(this.cookieName)
    if (id) this.sessions.delete(digest(id))
    return this.cookie('', 0)
  }

  /** Live sessions (for tests and the log). */
  get size(): number {
    const now = this.o.now()
    return [...this.sessions.values()].filter((s) => s.expiresMs > now).length
  }

  /** True when `client` may try a login now (fewer than MAX_FAILURES failures in the window). */
  mayTry(client: string): boolean {
    const now = this.o.now()
    const list = (this.failures.get(client) ?? []).filter((t) => now - t < FAILURE_WINDOW_MS)
    if (list.length) this.failures.set(client, list)
    else this.failures.delete(client)
    return list.length < MAX_FAILURES
  }

  /** Counts a failed login of `client`. */
  failed(client: string): void {
    const list = this.failures.get(client) ?? []
    list.push(this.o.now())
    this.failures.set(client, list)
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value as string)
  }

  /** Forgets the failures of `client` (a successful login). */
  succeeded(client: string): void {
    this.failures.delete(client)
  }
}
