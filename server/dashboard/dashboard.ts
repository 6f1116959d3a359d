/**
 * The dashboard's request handling, mounted on the daemon's listener next to the WebDAV/HTML view and the
 * JSON API:
 *
 * ```
 * GET  /healthz                 "ok" (no authentication: the Docker HEALTHCHECK)
 * GET  /-/static/dashboard.css  the stylesheet and the script (no authentication: nothing secret)
 * GET  /-/login                 the login form          POST /-/login   token or Basic credentials → session cookie
 * POST /-/logout                ends the session
 * GET  /-/                      the job list            GET  /-/jobs/<name>   a job's page
 * POST /-/jobs/<name>/run       Run now (form field csrf) → 303 to the run's page
 * GET  /-/runs/<id>             a run's page (its log, live over SSE from the API while it runs)
 * GET  /                        browsers (Accept: text/html) → 302 /-/; the file browser's root is /?browse
 * ```
 *
 * Protection: the pages are behind the server's authentication (bearer, Basic, or the session cookie the
 * login page sets); browsers that are not logged in are sent to the login page. Every POST needs the
 * CSRF token (a form field here, the X-Coldstore-Csrf header on the API) and, when the browser sends an
 * Origin, this server's own. The login form itself is protected by a double-submit cookie. Pages are
 * served with a Content-Security-Policy that allows only this origin's stylesheet and script.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  LATEST_FOLDER, applyRetention, isNotFound, isRunId, parseRetentionDuration,
  type JobDefinition, type RetentionPolicy, type RetentionSnapshot, type VfsEntry,
} from '../../engine/index.js'
import { authRequired, checkCredentials, type AuthConfig } from '../auth.js'
import { encodeComponent } from '../paths.js'
import { DASHBOARD_CSS, DASHBOARD_JS } from './assets.js'
import { jobPage, loginPage, messagePage, overviewPage, runPage, type SnapshotRow } from './pages.js'
import { esc, runHref, type PageContext } from './render.js'
import { SessionStore, parseCookies } from './sessions.js'
import type { DashboardSource } from './source.js'

/** Options of createDashboard. */
export interface DashboardOptions {
  source: DashboardSource
  /** What the server accepts (the login form checks the same token / Basic pair). */
  auth: AuthConfig
  /** The daemon's CSRF token (the JSON API's too). */
  csrfToken: string
  /** How long a login lasts. */
  sessionTimeoutMs: number
  /** HTTPS: cookies are Secure (default: auth.tls). */
  secure?: boolean
  /** Plain HTTP beyond loopback was allowed (server.allow_plain_http): said on the login page. */
  plainHttp?: boolean
  log?: (line: string) => void
}

/** The handlers createDashboard returns, for startServer. */
export interface Dashboard {
  /** Before authentication: /healthz, the static files, the login page. */
  publicRoutes(req: IncomingMessage, res: ServerResponse): Promise<boolean>
  /** After authentication: pages and forms (false for other paths). */
  routes(req: IncomingMessage, res: ServerResponse): Promise<boolean>
  /** For requests that failed authentication: browsers go to the login page. */
  unauthorized(req: IncomingMessage, res: ServerResponse): boolean
  /** True when the request carries a valid session (AuthConfig.session). */
  session(req: IncomingMessage): boolean
  readonly sessions: SessionStore
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const LOGIN_COOKIE = 'coldstore_login'
const MAX_FORM_BYTES = 16 * 1024

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

function same(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest())
}

function sendHtml(res: ServerResponse, status: number, html: string, headers: Record<string, string | string[]> = {}): void {
  const body = Buffer.from(html)
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8', 'Content-Length': String(body.length), 'Cache-Control': 'no-store',
    'Content-Security-Policy': CSP, 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'same-origin', ...headers,
  })
  res.end(body)
}

function redirect(res: ServerResponse, status: 302 | 303, location: string, headers: Record<string, string | string[]> = {}): void {
  res.writeHead(status, { Location: location, 'Content-Length': '0', 'Cache-Control': 'no-store', ...headers })
  res.end()
}

function sendText(res: ServerResponse, status: number, text: string): void {
  const body = Buffer.from(text + '\n')
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(body.length), 'Cache-Control': 'no-store' })
  res.end(body)
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  const parts: Buffer[] = []
  let n = 0
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length
    if (n > MAX_FORM_BYTES) return null
    parts.push(c)
  }
  return new URLSearchParams(Buffer.concat(parts).toString('utf8'))
}

/** A `next` target that stays on this server (a path, never `//host` or a scheme). */
export function safeNext(v: string | null): string {
  if (!v || !v.startsWith('/') || v.startsWith('//') || v.includes('\\') || /[\x00-\x1f]/.test(v)) return '/-/'
  return v
}

/** True when the request is a browser navigation (it accepts HTML). */
function wantsHtml(req: IncomingMessage): boolean {
  return (req.headers.accept ?? '').includes('text/html')
}

/** The job's retention as the retention engine's policy (forget's: restic's rules). */
export function retentionPolicy(def: JobDefinition): RetentionPolicy | null {
  const r = def.retention
  if (!r) return null
  return {
    last: r.keep_last, hourly: r.keep_hourly, daily: r.keep_daily, weekly: r.keep_weekly, monthly: r.keep_monthly, yearly: r.keep_yearly,
    within: r.keep_within === undefined ? undefined : parseRetentionDuration(r.keep_within),
    tags: r.keep_tag?.map((l) => l.split(',').map((x) => x.trim())),
  }
}

/** Creates the dashboard over `o.source`. */
export function createDashboard(o: DashboardOptions): Dashboard {
  const src = o.source
  const log = o.log ?? (() => undefined)
  const secure = o.secure ?? o.auth.tls
  const sessions = new SessionStore({ timeoutMs: o.sessionTimeoutMs, secure, now: () => src.now().getTime() })
  const needsLogin = authRequired(o.auth)

  const originOk = (req: IncomingMessage): boolean => {
    const origin = req.headers.origin
    if (origin === undefined) return true
    return origin === `${secure ? 'https' : 'http'}://${req.headers.host ?? ''}`
  }
  const ctxOf = (req: IncomingMessage): PageContext => ({ csrf: o.csrfToken, user: sessions.get(req)?.user ?? null, now: src.now() })

  /** Form POSTs of logged-in pages: the CSRF field and the Origin. */
  const checkForm = async (req: IncomingMessage, res: ServerResponse): Promise<URLSearchParams | null> => {
    const form = originOk(req) ? await readForm(req) : null
    const token = form?.get('csrf')
    if (!form || typeof token !== 'string' || !same(token, o.csrfToken)) {
      req.resume()
      sendHtml(res, 403, messagePage(ctxOf(req), 'Refused', 'This form was not sent by this dashboard (missing or wrong CSRF token, or another origin). Reload the page and try again.'))
      return null
    }
    return form
  }

  async function snapshotsOf(def: JobDefinition): Promise<{ rows: SnapshotRow[]; latestHref: string | null; hrefById: Map<string, string> } | null> {
    if (def.type === 'restic') return null
    const job = Buffer.from(def.name)
    let entries: VfsEntry[]
    try {
      entries = await src.view.list([job])
    } catch (err) {
      if (!isNotFound(err)) {
        log(`dashboard: cannot list the snapshots of ${def.name}: ${(err as Error).message}`)
        return null
      }
      entries = []
    }
    const rows: SnapshotRow[] = []
    const hrefById = new Map<string, string>()
    let latestHref: string | null = null
    for (const e of entries) {
      if (e.type !== 'dir' || !e.snapshot) continue
      const href = `/${encodeComponent(job)}/${encodeComponent(e.name)}/`
      if (e.name.toString() === LATEST_FOLDER) {
        latestHref = href
        continue
      }
      const sn = e.snapshot
      hrefById.set(sn.id, href)
      rows.push({ id: sn.id, time: sn.time, href, files: sn.stats?.files ?? null, bytes: sn.stats?.bytes ?? null, tags: sn.tags, kind: sn.kind })
    }
    rows.sort((a, b) => b.time.localeCompare(a.time))
    const policy = retentionPolicy(def)
    if (policy) {
      try {
        const snaps = entries.filter((e) => e.snapshot && e.name.toString() !== LATEST_FOLDER).map((e) => e.snapshot as RetentionSnapshot)
        const d = applyRetention(snaps, policy, { now: src.now(), timeZone: src.timeZone })
        const kept = new Map(d.keep.map((k) => [k.id, k.reasons]))
        for (const r of rows) r.kept = kept.get(r.id) ?? null
      } catch (err) {
        log(`dashboard: retention preview of ${def.name}: ${(err as Error).message}`)
      }
    }
    return { rows, latestHref, hrefById }
  }

  async function publicRoutes(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const method = (req.method ?? 'GET').toUpperCase()
    const p = url.pathname
    if (p === '/healthz' && (method === 'GET' || method === 'HEAD')) {
      req.resume()
      sendText(res, 200, 'ok')
      return true
    }
    if (p === '/-/static/dashboard.css' || p === '/-/static/dashboard.js') {
      req.resume()
      const css = p.endsWith('.css')
      const body = Buffer.from(css ? DASHBOARD_CSS : DASHBOARD_JS)
      res.writeHead(200, { 'Content-Type': css ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8', 'Content-Length': String(body.length), 'Cache-Control': 'public, max-age=300' })
      res.end(method === 'HEAD' ? undefined : body)
      return true
    }
    if (p !== '/-/login') return false
    let next = safeNext(url.searchParams.get('next'))
    if (!needsLogin) {
      req.resume()
      redirect(res, 303, next)
      return true
    }
    const client = req.socket.remoteAddress ?? '?'
    const show = (status: number, error?: string): void => {
      const nonce = randomBytes(24).toString('base64url')
      sendHtml(res, status, loginPage({ csrf: nonce, next, error, basic: o.auth.basic !== undefined, token: o.auth.token !== undefined, plainHttp: o.plainHttp ?? false, now: src.now() }), {
        'Set-Cookie': `${LOGIN_COOKIE}=${nonce}; Path=/-/login; HttpOnly; SameSite=Strict; Max-Age=3600${secure ? '; Secure' : ''}`,
      })
    }
    if (method === 'GET' || method === 'HEAD') {
      req.resume()
      show(200)
      return true
    }
    if (method !== 'POST') {
      req.resume()
      res.setHeader('Allow', 'GET, POST')
      sendText(res, 405, `${method} is not allowed here`)
      return true
    }
    const form = originOk(req) ? await readForm(req) : null
    // A failed attempt shows the form again, still going where the browser wanted to go.
    next = safeNext(form?.get('next') ?? null)
    const nonce = parseCookies(req).get(LOGIN_COOKIE)
    const field = form?.get('csrf')
    if (!form || !nonce || typeof field !== 'string' || !same(field, nonce)) {
      req.resume()
      show(403, 'The login form expired or was not sent from this page: try again.')
      return true
    }
    if (!sessions.mayTry(client)) {
      show(429, 'Too many failed logins: wait a few minutes.')
      return true
    }
    const user = form.get('user') ?? ''
    const password = form.get('password') ?? ''
    if (!checkCredentials(o.auth, user, password)) {
      sessions.failed(client)
      log(`dashboard: failed login from ${client}`)
      show(401, 'Wrong token or password.')
      return true
    }
    sessions.succeeded(client)
    const cookie = sessions.create(user || 'token')
    redirect(res, 303, next, { 'Set-Cookie': [cookie, `${LOGIN_COOKIE}=; Path=/-/login; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`] })
    return true
  }

  async function routes(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const method = (req.method ?? 'GET').toUpperCase()
    const p = url.pathname
    const get = method === 'GET' || method === 'HEAD'
    // Browsers opening the server's address see the dashboard; the file browser's root is /?browse.
    if (p === '/' && get && url.search === '' && wantsHtml(req)) {
      req.resume()
      redirect(res, 302, '/-/')
      return true
    }
    if (p !== '/-' && !p.startsWith('/-/')) return false
    if (p === '/-' || p === '/-/') {
      if (!get) return notAllowed(req, res, 'GET')
      req.resume()
      const [statuses, runs] = await Promise.all([src.service.statuses(), src.service.runs({ limit: 1000 })])
      sendHtml(res, 200, overviewPage(ctxOf(req), { statuses, runs, costs: src.costs(), jobs: src.jobs }))
      return true
    }
    if (p === '/-/logout') {
      if (method !== 'POST') return notAllowed(req, res, 'POST')
      if (!(await checkForm(req, res))) return true
      redirect(res, 303, '/-/login', { 'Set-Cookie': sessions.destroy(req) })
      return true
    }
    let m = /^\/-\/jobs\/([^/]+)(\/run)?\/?$/.exec(p)
    if (m) {
      const name = decodeURIComponent(m[1])
      const def = SAFE_NAME.test(name) ? src.jobs.get(name) : undefined
      if (m[2]) {
        if (method !== 'POST') return notAllowed(req, res, 'POST')
        const form = await checkForm(req, res)
        if (!form) return true
        if (!def) {
          sendHtml(res, 404, messagePage(ctxOf(req), 'No such job', `There is no job named ${esc(name)}.`))
          return true
        }
        const kind = form.get('kind') === 'check' ? 'check' : 'backup'
        const r = await src.service.requestRun(def.name, kind)
        if (r.ok) {
          log(`dashboard: ${def.name}: ${kind} run ${r.run} requested`)
          redirect(res, 303, runHref(r.run))
          return true
        }
        const why = r.reason === 'running'
          ? `Job ${esc(def.name)} is already running${r.holder ? ` (pid ${esc(r.holder.pid)} on ${esc(r.holder.host)})` : ''}.${r.run ? ` <a href="${esc(runHref(r.run))}">Follow that run</a>.` : ''}`
          : r.reason === 'stopping' ? 'The daemon is shutting down.' : r.reason === 'no_check' ? `Job ${esc(def.name)} has no check.` : `There is no job named ${esc(def.name)}.`
        sendHtml(res, r.reason === 'running' ? 409 : r.reason === 'stopping' ? 503 : 400, messagePage(ctxOf(req), 'Not started', why))
        return true
      }
      if (!get) return notAllowed(req, res, 'GET')
      req.resume()
      if (!def) {
        sendHtml(res, 404, messagePage(ctxOf(req), 'No such job', `There is no job named ${esc(name)}.`))
        return true
      }
      const [statuses, runs, snaps] = await Promise.all([src.service.statuses(), src.service.runs({ job: def.name, limit: 1000 }), snapshotsOf(def)])
      const status = statuses.find((s) => s.name === def.name)!
      sendHtml(res, 200, jobPage(ctxOf(req), { status, def, runs, snapshots: snaps?.rows ?? null, latestHref: snaps?.latestHref ?? null, costs: src.costs() }))
      return true
    }
    m = /^\/-\/runs\/([^/]+)\/?$/.exec(p)
    if (m) {
      if (!get) return notAllowed(req, res, 'GET')
      req.resume()
      const id = decodeURIComponent(m[1])
      const found = isRunId(id) ? await src.service.run(id) : null
      if (!found) {
        sendHtml(res, 404, messagePage(ctxOf(req), 'No such run', `There is no run ${esc(id)} in the journal.`))
        return true
      }
      const def = src.jobs.get(found.run.job)
      const snaps = found.run.snapshot && def ? await snapshotsOf(def) : null
      sendHtml(res, 200, runPage(ctxOf(req), { run: found.run, events: found.events, snapshotHref: found.run.snapshot ? (snaps?.hrefById.get(found.run.snapshot) ?? null) : null }))
      return true
    }
    req.resume()
    sendHtml(res, 404, messagePage(ctxOf(req), 'Not found', `Nothing at ${esc(p)}.`))
    return true
  }

  function notAllowed(req: IncomingMessage, res: ServerResponse, allow: string): boolean {
    req.resume()
    res.setHeader('Allow', allow)
    sendText(res, 405, `${req.method} is not allowed here`)
    return true
  }

  function unauthorized(req: IncomingMessage, res: ServerResponse): boolean {
    const method = (req.method ?? 'GET').toUpperCase()
    if ((method === 'GET' || method === 'HEAD') && wantsHtml(req)) {
      redirect(res, 303, `/-/login?next=${encodeURIComponent(safeNext(req.url ?? '/-/'))}`)
      return true
    }
    if (sessions.hasCookie(req)) {
      // An expired session (the dashboard's script, an EventSource): no Basic challenge, so the browser shows no password prompt.
      const body = Buffer.from('the session expired: log in again at /-/login\n')
      res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(body.length), 'WWW-Authenticate': 'Coldstore-Session realm="coldstore"' })
      res.end(body)
      return true
    }
    return false
  }

  return {
    publicRoutes, routes, unauthorized, sessions,
    session: (req) => sessions.get(req) !== null,
  }
}

