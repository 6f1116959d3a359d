/**
 * The daemon's JSON API under /api/ (shapes in the README's "JSON API" section). Routes are a table the
 * dashboard extends (`createApiHandler({ routes: [...API_ROUTES, ...more] })`); each route gets the service,
 * the parsed URL and helpers to answer.
 *
 * Writes (POST) are protected against cross-site requests: they need the header `X-Coldstore-Csrf` with the
 * daemon's token (from `GET /api/session`, or the `X-Coldstore-Csrf` header of any API answer; a page of
 * another origin cannot read either), and an `Origin`, when sent, must be this server's own.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { formatJournalEvent, isRunId, type JournalEvent, type RunKind } from '../../engine/index.js'
import type { JobsService } from './service.js'

/** What a route handler gets. */
export interface ApiContext {
  req: IncomingMessage
  res: ServerResponse
  url: URL
  /** The groups the route's pattern captured (URL-decoded). */
  params: string[]
  service: JobsService
  /** Answers with a JSON document. */
  json(status: number, body: unknown): void
  /** Answers with `{ error, message }`. */
  error(status: number, code: string, message: string): void
  /** Reads a JSON request body (at most 64 KiB); {} when empty. */
  body(): Promise<Record<string, unknown>>
  /** Told about failures. */
  log(line: string): void
}

/** One route: a method and a pattern of the path after /api. */
export interface ApiRoute {
  method: 'GET' | 'POST'
  /** Matched against the path (e.g. /jobs/photos/runs); capture groups become `params`. */
  pattern: RegExp
  /** POST routes need the CSRF token unless `csrf: false`. */
  csrf?: boolean
  handle(ctx: ApiContext): Promise<void> | void
}

const SAFE_NAME = '([A-Za-z0-9][A-Za-z0-9._-]{0,63})'

function limitOf(url: URL, fallback: number): number {
  const n = Number(url.searchParams.get('limit') ?? fallback)
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1000) : fallback
}

/** Sends events as Server-Sent Events until the iterator ends or the client goes. */
async function streamEvents(ctx: ApiContext, events: (signal: AbortSignal) => AsyncIterable<JournalEvent>): Promise<void> {
  const ac = new AbortController()
  const { res } = ctx
  res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' })
  res.write(': coldstore run log\n\n')
  const ping = setInterval(() => res.write(': ping\n\n'), 15_000)
  const close = (): void => ac.abort()
  ctx.req.on('close', close)
  res.on('close', close)
  try {
    for await (const e of events(ac.signal)) {
      res.write(`event: journal\nid: ${e.t}\ndata: ${JSON.stringify(e)}\n\n`)
    }
    if (!ac.signal.aborted) res.write('event: end\ndata: {}\n\n')
  } finally {
    clearInterval(ping)
    ac.abort()
    res.end()
  }
}

/** The API's routes. */
export const API_ROUTES: readonly ApiRoute[] = [
  {
    method: 'GET',
    pattern: /^\/?$/,
    handle: (ctx) => ctx.json(200, {
      endpoints: ['GET /api/session', 'GET /api/jobs', 'GET /api/jobs/<name>', 'GET /api/jobs/<name>/runs', 'POST /api/jobs/<name>/run', 'GET /api/runs', 'GET /api/runs/<id>', 'GET /api/runs/<id>/log'],
    }),
  },
  {
    method: 'GET',
    pattern: /^\/jobs\/?$/,
    handle: async (ctx) => ctx.json(200, { jobs: await ctx.service.statuses() }),
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/jobs/${SAFE_NAME}/?$`),
    handle: async (ctx) => {
      const job = (await ctx.service.statuses()).find((j) => j.name === ctx.params[0])
      if (!job) return ctx.error(404, 'unknown_job', `no job named ${ctx.params[0]}`)
      ctx.json(200, { job, runs: await ctx.service.runs({ job: job.name, limit: limitOf(ctx.url, 20) }) })
    },
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/jobs/${SAFE_NAME}/runs/?$`),
    handle: async (ctx) => {
      if (!(await ctx.service.statuses()).some((j) => j.name === ctx.params[0])) return ctx.error(404, 'unknown_job', `no job named ${ctx.params[0]}`)
      ctx.json(200, { runs: await ctx.service.runs({ job: ctx.params[0], limit: limitOf(ctx.url, 50) }) })
    },
  },
  {
    method: 'POST',
    pattern: new RegExp(`^/jobs/${SAFE_NAME}/run/?$`),
    handle: async (ctx) => {
      const body = await ctx.body()
      const kind = (body.kind ?? 'backup') as RunKind
      if (kind !== 'backup' && kind !== 'check') return ctx.error(400, 'bad_request', 'kind: expected backup or check')
      const r = await ctx.service.requestRun(ctx.params[0], kind)
      if (r.ok) return ctx.json(202, { run: r.run, job: ctx.params[0], kind, log: `/api/runs/${r.run}/log` })
      if (r.reason === 'unknown_job') return ctx.error(404, 'unknown_job', `no job named ${ctx.params[0]}`)
      if (r.reason === 'stopping') return ctx.error(503, 'stopping', 'the daemon is shutting down')
      const holder = r.holder ? ` (pid ${r.holder.pid} on ${r.holder.host})` : ''
      ctx.json(409, { error: 'running', message: `job ${ctx.params[0]} is already running${holder}`, run: r.run ?? null, holder: r.holder ?? null })
    },
  },
  {
    method: 'GET',
    pattern: /^\/runs\/?$/,
    handle: async (ctx) => ctx.json(200, { runs: await ctx.service.runs({ limit: limitOf(ctx.url, 50) }) }),
  },
  {
    method: 'GET',
    pattern: /^\/runs\/([0-9TZ]+-[0-9a-f]{6})\/?$/,
    handle: async (ctx) => {
      const r = await ctx.service.run(ctx.params[0])
      if (!r) return ctx.error(404, 'unknown_run', `no run ${ctx.params[0]} in the journal`)
      ctx.json(200, r)
    },
  },
  {
    method: 'GET',
    pattern: /^\/runs\/([0-9TZ]+-[0-9a-f]{6})\/log\/?$/,
    handle: async (ctx) => {
      const id = ctx.params[0]
      const sse = ctx.url.searchParams.get('follow') === '1' || (ctx.req.headers.accept ?? '').includes('text/event-stream')
      if (!isRunId(id)) return ctx.error(404, 'unknown_run', `no run ${id}`)
      const r = await ctx.service.run(id)
      if (!r) return ctx.error(404, 'unknown_run', `no run ${id} in the journal`)
      if (sse) return streamEvents(ctx, (signal) => ctx.service.follow(id, signal))
      if (ctx.url.searchParams.get('format') === 'jsonl') {
        const body = r.events.map((e) => JSON.stringify(e)).join('\n') + '\n'
        ctx.res.writeHead(200, { 'Content-Type': 'application/x-ndjson; charset=utf-8', 'Content-Disposition': `inline; filename="${id}.jsonl"` })
        return void ctx.res.end(body)
      }
      const body = r.events.map(formatJournalEvent).join('\n') + '\n'
      ctx.res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Disposition': `inline; filename="${r.run.job}-${id}.log"` })
      ctx.res.end(body)
    },
  },
]

function same(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest())
}

/** Options of createApiHandler. */
export interface ApiHandlerOptions {
  service: JobsService
  /** The CSRF token POST requests must send (random per daemon). */
  csrfToken: string
  /** Default API_ROUTES. */
  routes?: readonly ApiRoute[]
  log?: (line: string) => void
}

/**
 * A `routes` function for startServer: answers everything under /api/ (404 for unknown paths) and returns
 * false for other paths.
 */
export function createApiHandler(o: ApiHandlerOptions): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const routes = o.routes ?? API_ROUTES
  const log = o.log ?? (() => undefined)
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (url.pathname !== '/api' && !url.pathname.startsWith('/api/')) return false
    const method = (req.method ?? 'GET').toUpperCase()
    const path = url.pathname.slice(4)
    res.setHeader('Cache-Control', 'no-store')
    res.setHeader('X-Coldstore-Csrf', o.csrfToken)
    const json = (status: number, body: unknown): void => {
      const text = Buffer.from(JSON.stringify(body) + '\n')
      res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(text.length) })
      res.end(text)
    }
    const error = (status: number, code: string, message: string): void => json(status, { error: code, message })
    try {
      if (path === '/session' && method === 'GET') {
        req.resume()
        json(200, { csrf_token: o.csrfToken })
        return true
      }
      let matched = false
      for (const r of routes) {
        const m = r.pattern.exec(path)
        if (!m) continue
        matched = true
        if (r.method !== method && !(r.method === 'GET' && method === 'HEAD')) continue
        if (r.method === 'POST' && r.csrf !== false) {
          const token = req.headers['x-coldstore-csrf']
          const origin = req.headers.origin
          const scheme = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http'
          if (typeof token !== 'string' || !same(token, o.csrfToken)) {
            req.resume()
            error(403, 'csrf', 'missing or wrong X-Coldstore-Csrf header (get the token from GET /api/session)')
            return true
          }
          if (origin !== undefined && origin !== `${scheme}://${req.headers.host ?? ''}`) {
            req.resume()
            error(403, 'csrf', `cross-origin request refused (Origin ${origin})`)
            return true
          }
        } else {
          req.resume()
        }
        let bodyRead = false
        const ctx: ApiContext = {
          req, res, url, params: m.slice(1).map((p) => decodeURIComponent(p ?? '')), service: o.service, json, error, log,
          body: async () => {
            if (bodyRead) return {}
            bodyRead = true
            const parts: Buffer[] = []
            let n = 0
            for await (const c of req as AsyncIterable<Buffer>) {
              n += c.length
              if (n > 65536) throw Object.assign(new Error('request body too large'), { status: 413 })
              parts.push(c)
            }
            const text = Buffer.concat(parts).toString('utf8').trim()
            if (text === '') return {}
            let v: unknown
            try {
              v = JSON.parse(text)
            } catch {
              throw Object.assign(new Error('the body is not JSON'), { status: 400 })
            }
            if (typeof v !== 'object' || v === null || Array.isArray(v)) throw Object.assign(new Error('the body must be a JSON object'), { status: 400 })
            return v as Record<string, unknown>
          },
        }
        await r.handle(ctx)
        return true
      }
      req.resume()
      if (matched) {
        res.setHeader('Allow', [...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))].join(', '))
        error(405, 'method_not_allowed', `${method} is not allowed here`)
      } else {
        error(404, 'not_found', `no API endpoint ${url.pathname}`)
      }
      return true
    } catch (err) {
      const status = (err as { status?: number }).status ?? 500
      if (status >= 500) log(`api: ${method} ${url.pathname}: ${(err as Error).message}`)
      if (!res.headersSent) error(status, status >= 500 ? 'internal' : 'bad_request', (err as Error).message)
      else res.end()
      return true
    }
  }
}
