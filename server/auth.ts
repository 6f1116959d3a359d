/**
 * Access control: a bearer token and/or Basic credentials, and (the daemon's dashboard) a session cookie
 * set by its login page. Secrets are compared in constant time (through their SHA-256, so lengths do not
 * leak).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

/** What the server accepts. Empty = no authentication (loopback only; the caller enforces that). */
export interface AuthConfig {
  /** `Authorization: Bearer <token>`; over HTTPS also Basic with any user name and the token as password (file managers cannot send bearer tokens). */
  token?: string
  /** `Authorization: Basic` with this user and password. */
  basic?: { user: string; password: string }
  /** Whether the connection is HTTPS (Basic with the token is accepted only then). */
  tls: boolean
  /**
   * A logged-in browser: true when the request carries a valid session (the dashboard's cookie). Checked
   * before the Authorization header; only consulted when authentication is required.
   */
  session?: (req: IncomingMessage) => boolean
}

function same(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest())
}

/** True when the config asks for any authentication. */
export function authRequired(c: AuthConfig): boolean {
  return c.token !== undefined || c.basic !== undefined
}

/** Checks a request's Authorization header. */
export function isAuthorized(req: IncomingMessage, c: AuthConfig): boolean {
  if (!authRequired(c)) return true
  if (c.session?.(req)) return true
  const h = req.headers.authorization
  if (!h) return false
  const sp = h.indexOf(' ')
  const scheme = (sp < 0 ? h : h.slice(0, sp)).toLowerCase()
  const value = sp < 0 ? '' : h.slice(sp + 1).trim()
  if (scheme === 'bearer') return c.token !== undefined && same(value, c.token)
  if (scheme !== 'basic') return false
  const decoded = Buffer.from(value, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return false
  const user = decoded.slice(0, colon)
  const password = decoded.slice(colon + 1)
  if (c.basic && same(user, c.basic.user) && same(password, c.basic.password)) return true
  return c.tls && c.token !== undefined && same(password, c.token)
}

/** True when `user`/`password` are credentials this config accepts (the dashboard's login form): the token as password (any user name), or the Basic pair. */
export function checkCredentials(c: AuthConfig, user: string, password: string): boolean {
  if (c.token !== undefined && same(password, c.token)) return true
  return c.basic !== undefined && same(user, c.basic.user) && same(password, c.basic.password)
}

/**
 * Parses a credentials file or variable: a token file holds the token (first
 * line); a Basic file holds `user:password`. Returns null when malformed.
 */
export function parseBasic(text: string): { user: string; password: string } | null {
  const line = text.split(/\r?\n/)[0]
  const colon = line.indexOf(':')
  if (colon <= 0 || colon === line.length - 1) return null
  return { user: line.slice(0, colon), password: line.slice(colon + 1) }
}
