/**
 * The read-only WebDAV + HTML request handler over engine's SnapshotView (or any BrowseView, such as the daemon's JobsView).
 *
 * Written on node:http rather than webdav-server 2.6.3: every method a
 * read-only server answers is one that library gets wrong (see
 * DEPENDENCIES.md: PROPPATCH crashes the process, Range GETs read from byte 0
 * and answer 206 to unsatisfiable ranges, no ETag/Last-Modified, OPTIONS
 * advertises PUT/DELETE, PROPFIND of 10,000 entries takes 2–3 s), so all of
 * them would have been taken over in `beforeRequest`, leaving the library
 * nothing to do but add a dependency tree and a slower start.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Writable } from 'node:stream'
import { createGzip } from 'node:zlib'
import { ArchivedError, IntegrityError, NotFoundError, RemoteError, UsageError, type BrowseView, type VfsEntry, type VfsFile } from '../engine/index.js'
import { streamTar, streamZip } from './archive.js'
import { writeOrWait } from './backpressure.js'
import { authRequired, isAuthorized, type AuthConfig } from './auth.js'
import { renderListing } from './html.js'
import { BadPathError, contentType, encodePath, parseUrlPath } from './paths.js'
import { BadPropfindError, MULTISTATUS_HEAD, MULTISTATUS_TAIL, etagOf, parsePropfind, propResponse, shownName } from './propfind.js'
import { parseRange, type ByteRange } from './ranges.js'

/** Methods this server answers. */
export const READ_METHODS = ['OPTIONS', 'GET', 'HEAD', 'PROPFIND'] as const
/** Methods that would change something: refused with 403 (the whole tree is read-only). */
export const WRITE_METHODS = new Set(['PUT', 'DELETE', 'MKCOL', 'COPY', 'MOVE', 'PROPPATCH', 'LOCK', 'UNLOCK', 'POST', 'PATCH'])
const ALLOW = READ_METHODS.join(', ')
/** Largest PROPFIND body read. */
const MAX_BODY_BYTES = 1 << 20

/** Options of `createDavHandler`. */
export interface DavHandlerOptions {
  view: BrowseView
  auth: AuthConfig
  /** Shown in the HTML view's first breadcrumb. */
  title?: string
  /** Told about failures (5xx, aborted streams): one line each. */
  log?: (line: string) => void
  /**
   * Handlers that see each request after the access checks (loopback host, authentication) and before
   * the WebDAV view: return true when they answered it (the daemon's JSON API under /api/).
   */
  routes?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>
  /**
   * Handlers that see each request before authentication (after the loopback host check): return true when
   * they answered it (the dashboard's login page, its static files, /healthz).
   */
  publicRoutes?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>
  /**
   * Answers a request that failed authentication, or returns false for the default 401 with the
   * WWW-Authenticate challenges (the dashboard redirects browsers to its login page).
   */
  unauthorized?: (req: IncomingMessage, res: ServerResponse) => boolean
  /** Where the HTML view's first breadcrumb points (default `/`; the daemon's `/` is its dashboard). */
  browseRoot?: string
  /** A link back to the dashboard in the HTML view's header. */
  home?: { href: string; label: string }
}

/** One table from error class to HTTP status (the server's only one). */
export function statusOf(err: unknown): number {
  if (err instanceof BadPathError || err instanceof BadPropfindError || err instanceof UsageError) return 400
  if (err instanceof NotFoundError) return 404
  // In an archive storage class: readable only after a retrieval (hours), which browsing must not start by itself.
  if (err instanceof ArchivedError) return 409
  if (err instanceof RemoteError) return err.transient ? 503 : 502
  if (err instanceof IntegrityError) return 500
  return 500
}

class HttpError extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.status = status
  }
}

/** The files and folders WebDAV shows: other node types (symlinks, devices) have no WebDAV form. */
function visible(e: VfsEntry): boolean {
  return e.type === 'file' || e.type === 'dir'
}

function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  const body = Buffer.from(text + '\n')
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(body.length), ...headers })
  res.end(body)
}

async function readBody(req: IncomingMessage): Promise<string> {
  // Announced as too large: refused before a byte of it is read.
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) throw new HttpError(413, 'request body too large')
  const parts: Buffer[] = []
  let n = 0
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length
    if (n > MAX_BODY_BYTES) throw new HttpError(413, 'request body too large')
    parts.push(c)
  }
  return Buffer.concat(parts).toString('utf8')
}


async function pumpRange(res: ServerResponse, file: VfsFile, r: ByteRange): Promise<boolean> {
  for await (const chunk of file.read(r.start, r.end + 1)) {
    if (!(await writeOrWait(res, chunk))) return false
  }
  return true
}

/**
 * Sends one range as the whole body, reading its first chunk before the
 * headers: a file whose first chunk is damaged or missing is answered with
 * an error status instead of a 200 cut short. (Damage further in can only
 * cut the connection: the status is sent by then.)
 */
async function sendBody(res: ServerResponse, status: number, headers: Record<string, string>, file: VfsFile, r: ByteRange): Promise<void> {
  const it = file.read(r.start, r.end + 1)[Symbol.asyncIterator]()
  const first = await it.next()
  res.writeHead(status, headers)
  if (!first.done && !(await writeOrWait(res, first.value))) return void it.return(undefined)
  for (let n = await it.next(); !n.done; n = await it.next()) {
    if (!(await writeOrWait(res, n.value))) return void it.return(undefined)
  }
  res.end()
}

/** True for a Host header naming this machine's loopback (with any port). */
export function isLoopbackHostHeader(host: string | undefined): boolean {
  if (!host) return false
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(host.trim().toLowerCase())
  if (!m) return false
  const h = m[1].replace(/^\[|\]$/g, '')
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h)
}

/** Types a browser would run as a page: served sandboxed so a stored page cannot script this origin. */
const ACTIVE_TYPES = /^(text\/html|image\/svg\+xml|application\/xml|text\/xml|application\/xhtml\+xml)/

/** Creates the request handler. */
export function createDavHandler(o: DavHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const log = o.log ?? (() => undefined)
  const title = o.title ?? 'coldstore'
  const view = o.view

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase()
    res.setHeader('Server', 'coldstore')
    res.setHeader('X-Content-Type-Options', 'nosniff')
    // DNS rebinding: without authentication, a web page could point its own name at 127.0.0.1 and read the
    // snapshots through the visitor's browser. Only loopback host names are answered then.
    if (!authRequired(o.auth) && !isLoopbackHostHeader(req.headers.host)) {
      req.resume()
      sendText(res, 421, 'this server answers only to localhost / 127.0.0.1 / [::1] (it has no authentication)')
      return
    }
    if (o.publicRoutes && (await o.publicRoutes(req, res))) return
    if (!isAuthorized(req, o.auth)) {
      req.resume()
      if (o.unauthorized?.(req, res)) return
      const schemes = [o.auth.token !== undefined ? 'Bearer realm="coldstore"' : '', o.auth.basic || o.auth.tls ? 'Basic realm="coldstore", charset="UTF-8"' : '']
      sendText(res, 401, 'authentication required', { 'WWW-Authenticate': schemes.filter(Boolean).join(', ') })
      return
    }
    if (o.routes && (await o.routes(req, res))) return
    const target = req.url ?? '/'
    const q = target.indexOf('?')
    const rawPath = q < 0 ? target : target.slice(0, q)
    const query = new URLSearchParams(q < 0 ? '' : target.slice(q + 1))
    if (WRITE_METHODS.has(method)) {
      // Nothing is read or written: drain small bodies, drop the connection for large uploads.
      const len = Number(req.headers['content-length'] ?? 0)
      if (len > MAX_BODY_BYTES || req.headers['transfer-encoding']) res.setHeader('Connection', 'close')
      else req.resume()
      sendText(res, 403, `read-only: ${method} is not allowed (coldstore serves snapshots read-only)`, { Allow: ALLOW })
      return
    }
    if (!(READ_METHODS as readonly string[]).includes(method)) {
      req.resume()
      sendText(res, 405, `${method} is not supported`, { Allow: ALLOW })
      return
    }
    if (method === 'OPTIONS') {
      req.resume()
      // Class 1 and 2 as Windows' mini-redirector and macOS expect to mount; LOCK itself is refused (403) and
      // supportedlock is empty, so clients treat the share as read-only.
      res.writeHead(200, { DAV: '1, 2', 'MS-Author-Via': 'DAV', Allow: ALLOW, 'Accept-Ranges': 'bytes', 'Content-Length': '0' })
      res.end()
      return
    }
    const parts = parseUrlPath(rawPath)
    if (method === 'PROPFIND') return propfind(req, res, parts)
    req.resume()
    const entry = await view.stat(parts)
    if (!visible(entry)) throw new NotFoundError(rawPath, 'not a file or folder')
    if (entry.type === 'dir') return folderGet(req, res, parts, entry, query, method === 'HEAD')
    return fileGet(req, res, entry, query, method === 'HEAD')
  }

  async function propfind(req: IncomingMessage, res: ServerResponse, parts: Buffer[]): Promise<void> {
    // "1,noroot" (older Windows clients): the children without the folder itself.
    const depthRaw = (req.headers.depth ?? 'infinity').toString().trim().toLowerCase().replace(/\s+/g, '')
    const noRoot = depthRaw.endsWith(',noroot')
    const depthHeader = noRoot ? depthRaw.slice(0, -',noroot'.length) : depthRaw
    if (depthHeader !== '0' && depthHeader !== '1') {
      req.resume()
      // RFC 4918 §9.1: a deliberate refusal of Depth: infinity (snapshots can hold millions of files).
      const body = '<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>\n'
      res.writeHead(403, { 'Content-Type': 'application/xml; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)) })
      res.end(body)
      return
    }
    const request = parsePropfind(await readBody(req))
    const entry = await view.stat(parts)
    if (!visible(entry)) throw new NotFoundError(parts.join('/'), 'not a file or folder')
    const isDir = entry.type === 'dir'
    const children = isDir && depthHeader === '1' ? (await view.list(parts)).filter(visible) : []
    // Large listings are gzipped for clients that ask (rclone, browsers, curl --compressed): 6 MB of XML for
    // 10,000 entries becomes ~0.3 MB, which matters once the server is reached over a network.
    const gzip = children.length >= 200 && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))
    res.writeHead(207, { 'Content-Type': 'application/xml; charset=utf-8', DAV: '1, 2', Vary: 'Accept-Encoding', ...(gzip ? { 'Content-Encoding': 'gzip' } : {}) })
    let out: Writable = res
    if (gzip) {
      const z = createGzip({ level: 1 })
      z.on('error', () => res.destroy())
      z.pipe(res)
      out = z
    }
    const self = encodePath(parts, isDir)
    let buf = MULTISTATUS_HEAD + (noRoot ? '' : propResponse(self, entry, request))
    const base = self.endsWith('/') ? self : self + '/'
    const prefix = parts.length === 0 ? '/' : base
    for (const c of children) {
      buf += propResponse(prefix + encodePath([c.name], c.type === 'dir').slice(1), c, request)
      if (buf.length > 256 * 1024) {
        if (!(await writeOrWait(out, buf)) || res.destroyed) return void out.destroy()
        buf = ''
      }
    }
    out.end(buf + MULTISTATUS_TAIL)
  }

  async function folderGet(req: IncomingMessage, res: ServerResponse, parts: Buffer[], entry: VfsEntry, query: URLSearchParams, head: boolean): Promise<void> {
    const download = query.get('download')
    if (download === 'tar' || download === 'zip') {
      if (parts.length < 2) throw new HttpError(400, 'open a snapshot first: only folders inside a job or freeze can be downloaded as an archive')
      const name = shownName(entry) || 'coldstore'
      res.writeHead(200, {
        'Content-Type': download === 'tar' ? 'application/x-tar' : 'application/zip',
        'Content-Disposition': contentDisposition(`${name}.${download}`, 'attachment'),
        'Cache-Control': 'no-store',
      })
      if (head) {
        res.end()
        return
      }
      await (download === 'tar' ? streamTar : streamZip)(view, parts, name, res)
      return
    }
    const accept = (req.headers.accept ?? '').toLowerCase()
    const entries = (await view.list(parts))
    if (accept.includes('application/json') && !accept.includes('text/html')) {
      const body = JSON.stringify(entries.filter(visible).map((e) => ({
        name: shownName(e), type: e.type, size: e.size, mtime: e.mtime.toISOString(), etag: etagOf(e), href: encodePath([...parts, e.name], e.type === 'dir'),
      })))
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), ETag: `W/${etagOf(entry)}` })
      res.end(head ? undefined : body)
      return
    }
    const html = Buffer.from(renderListing({ parts, entries, archives: parts.length >= 2, title, rootHref: o.browseRoot, home: o.home }))
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8', 'Content-Length': String(html.length), 'Cache-Control': 'no-cache',
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
    })
    res.end(head ? undefined : html)
  }

  async function fileGet(req: IncomingMessage, res: ServerResponse, entry: VfsEntry, query: URLSearchParams, head: boolean): Promise<void> {
    const file = view.openNode(entry.node!)
    const etag = etagOf(entry)
    const lastModified = entry.mtime.toUTCString()
    const type = contentType(entry.name)
    const headers: Record<string, string> = {
      ETag: etag, 'Last-Modified': lastModified, 'Accept-Ranges': 'bytes', 'Cache-Control': 'private, no-cache',
    }
    if (query.get('download') !== null) headers['Content-Disposition'] = contentDisposition(shownName(entry), 'attachment')
    if (ACTIVE_TYPES.test(type)) headers['Content-Security-Policy'] = 'sandbox'
    // Conditional requests (RFC 9110 §13).
    const inm = req.headers['if-none-match']
    const ims = req.headers['if-modified-since']
    const notModified = inm !== undefined
      ? inm.split(',').some((t) => t.trim() === '*' || t.trim().replace(/^W\//, '') === etag)
      : ims !== undefined && !Number.isNaN(Date.parse(ims)) && Math.floor(entry.mtime.getTime() / 1000) <= Math.floor(Date.parse(ims) / 1000)
    if (notModified) {
      res.writeHead(304, headers)
      res.end()
      return
    }
    let rangeHeader = req.headers.range
    const ifRange = req.headers['if-range'] === undefined ? undefined : String(req.headers['if-range'])
    if (rangeHeader !== undefined && ifRange !== undefined && ifRange.trim() !== etag && ifRange.trim() !== lastModified) rangeHeader = undefined
    const ranges = parseRange(rangeHeader, file.size)
    if (ranges === 'unsatisfiable') {
      sendText(res, 416, 'range not satisfiable', { ...headers, 'Content-Range': `bytes */${file.size}` })
      return
    }
    if (ranges === null) {
      const h = { ...headers, 'Content-Type': type, 'Content-Length': String(file.size) }
      if (head) return void res.writeHead(200, h).end()
      return sendBody(res, 200, h, file, { start: 0, end: file.size - 1 })
    }
    if (ranges.length === 1) {
      const r = ranges[0]
      const h = { ...headers, 'Content-Type': type, 'Content-Length': String(r.end - r.start + 1), 'Content-Range': `bytes ${r.start}-${r.end}/${file.size}` }
      if (head) return void res.writeHead(206, h).end()
      return sendBody(res, 206, h, file, r)
    }
    // Several ranges: multipart/byteranges with an exact length.
    const boundary = `coldstore-${entry.tag.slice(0, 16)}-${Date.now().toString(36)}`
    const partHead = (r: ByteRange): string => `\r\n--${boundary}\r\nContent-Type: ${type}\r\nContent-Range: bytes ${r.start}-${r.end}/${file.size}\r\n\r\n`
    const tail = `\r\n--${boundary}--\r\n`
    let length = Buffer.byteLength(tail)
    for (const r of ranges) length += Buffer.byteLength(partHead(r)) + r.end - r.start + 1
    res.writeHead(206, { ...headers, 'Content-Type': `multipart/byteranges; boundary=${boundary}`, 'Content-Length': String(length) })
    if (head) return void res.end()
    for (const r of ranges) {
      if (!(await writeOrWait(res, partHead(r)))) return
      if (!(await pumpRange(res, file, r))) return
    }
    res.end(tail)
  }

  function fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const status = err instanceof HttpError ? err.status : statusOf(err)
    const message = err instanceof Error ? err.message : String(err)
    // The socket is detached from the request once the response is done (or the connection is gone).
    const clientGone = res.destroyed || !req.socket || req.socket.destroyed
    if (status >= 500 && !clientGone) log(`${req.method} ${req.url}: ${status} ${message}`)
    if (res.headersSent || clientGone) {
      // Mid-stream: the status cannot change; cut the connection so the client sees a truncated transfer.
      res.destroy(err instanceof Error ? err : undefined)
      return
    }
    if (status === 404 && (req.method ?? '').toUpperCase() === 'PROPFIND') {
      req.resume()
      sendText(res, 404, 'not found')
      return
    }
    const hint = err instanceof ArchivedError ? ' (this file\'s data is in archive storage: retrieve it with coldstore restore <snap>:<path> --target DIR --request-retrieval, then restore or browse it once the retrieval is done)' : ''
    // A body too large is not read to its end: close the connection rather than parse the rest as a request.
    if (status === 413) sendText(res, status, message, { Connection: 'close' })
    else {
      req.resume()
      sendText(res, status, status === 500 && !(err instanceof IntegrityError) ? 'internal error' : message + hint)
    }
  }

  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Nothing a client sends may take the server down: a failure while answering a failure cuts the connection.
      try {
        fail(req, res, err)
      } catch {
        res.destroy()
      }
    })
  }
}

/** RFC 6266 Content-Disposition with an ASCII fallback and a UTF-8 filename*. */
function contentDisposition(name: string, kind: 'attachment' | 'inline'): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_')
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`
}

