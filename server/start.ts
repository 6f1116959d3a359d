import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { isIP, type AddressInfo, type Socket } from 'node:net'
import type { BrowseView } from '../engine/index.js'
import type { AuthConfig } from './auth.js'
import { WRITE_METHODS, createDavHandler, type DavHandlerOptions } from './dav-handler.js'

/** Options of `startServer`. */
export interface StartServerOptions {
  view: BrowseView
  host: string
  /** 0 picks a free port. */
  port: number
  auth: AuthConfig
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: Buffer; key: Buffer }
  title?: string
  log?: (line: string) => void
  /** Extra routes before the WebDAV view, behind the same access checks (see DavHandlerOptions.routes). */
  routes?: DavHandlerOptions['routes']
  /** Routes before authentication (see DavHandlerOptions.publicRoutes). */
  publicRoutes?: DavHandlerOptions['publicRoutes']
  /** Answers requests that failed authentication (see DavHandlerOptions.unauthorized). */
  unauthorized?: DavHandlerOptions['unauthorized']
  browseRoot?: string
  home?: DavHandlerOptions['home']
  /** Limits against clients that hold connections without using them (defaults in DEFAULT_LIMITS). */
  limits?: Partial<ServerLimits>
}

/** How long and how many connections a client may hold. */
export interface ServerLimits {
  /** A request's headers must be complete this long after it started (slowloris: headers sent byte by byte). */
  headersTimeoutMs: number
  /** A connection with no traffic either way for this long is closed (a client that stops reading a download). */
  idleTimeoutMs: number
  /** Connections open at once, in all; and from one address (beyond it, new ones from that address are refused). */
  maxConnections: number
  maxConnectionsPerAddress: number
}

/**
 * 20 s for headers (Node's default is 60 s, checked only every 30 s); 2 minutes of silence; 1024
 * connections, 256 from one address (a file manager opens a handful; the load test 64).
 */
export const DEFAULT_LIMITS: ServerLimits = { headersTimeoutMs: 20_000, idleTimeoutMs: 120_000, maxConnections: 1024, maxConnectionsPerAddress: 256 }

/** A listening server. */
export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8088/ */
  url: string
  host: string
  port: number
  server: Server
  /** Stops accepting, ends idle connections, waits up to `graceMs` for requests in flight, then cuts the rest. */
  close(graceMs?: number): Promise<void>
}

/** True for names and addresses that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost' || h === '::1') return true
  if (isIP(h) === 4) return h.startsWith('127.')
  return false
}

/** Starts listening; rejects with the listen error (EADDRINUSE, EACCES...). */
export async function startServer(o: StartServerOptions): Promise<RunningServer> {
  const handler = createDavHandler({
    view: o.view, auth: o.auth, title: o.title, log: o.log, routes: o.routes, publicRoutes: o.publicRoutes, unauthorized: o.unauthorized, browseRoot: o.browseRoot, home: o.home,
  })
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...o.limits }
  // Node checks the headers timeout only every `connectionsCheckingInterval` (30 s by default): a slow client
  // could hold its connection twice as long as the timeout says.
  const http = { headersTimeout: limits.headersTimeoutMs, requestTimeout: 0, connectionsCheckingInterval: Math.max(100, Math.min(1000, limits.headersTimeoutMs / 4)) }
  const server: Server = o.tls
    ? (createHttpsServer({ cert: o.tls.cert, key: o.tls.key, handshakeTimeout: limits.headersTimeoutMs, ...http }, handler) as unknown as Server)
    : createHttpServer(http, handler)
  // Node's headers timeout starts with a request's first byte: a connection that never sends one would stay
  // open until the idle timeout (minutes). It gets the headers timeout for its first byte too.
  const firstByte = (sock: Socket): void => {
    const timer = setTimeout(() => sock.destroy(), limits.headersTimeoutMs)
    timer.unref()
    sock.once('data', () => clearTimeout(timer))
    sock.once('close', () => clearTimeout(timer))
  }
  if (o.tls) server.on('secureConnection', firstByte)
  // Refuse uploads before the client sends the body (no "100 Continue" for write methods).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (!WRITE_METHODS.has((req.method ?? '').toUpperCase()) || (o.routes && /^\/(api|-)\//.test(req.url ?? ''))) res.writeContinue()
    handler(req, res)
  })
  server.keepAliveTimeout = 30_000
  server.headersTimeout = limits.headersTimeoutMs
  server.requestTimeout = 0 // long downloads: bounded by the idle timeout instead (no traffic for that long)
  server.timeout = limits.idleTimeoutMs
  server.maxConnections = limits.maxConnections
  const sockets = new Set<Socket>()
  const perAddress = new Map<string, number>()
  server.on('connection', (s: Socket) => {
    const from = s.remoteAddress ?? ''
    const n = (perAddress.get(from) ?? 0) + 1
    if (n > limits.maxConnectionsPerAddress) {
      s.destroy()
      return
    }
    perAddress.set(from, n)
    sockets.add(s)
    if (!o.tls) firstByte(s)
    s.on('close', () => {
      sockets.delete(s)
      const left = (perAddress.get(from) ?? 1) - 1
      if (left > 0) perAddress.set(from, left)
      else perAddress.delete(from)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: o.host, port: o.port }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const addr = server.address() as AddressInfo
  const hostForUrl = isIP(addr.address) === 6 ? `[${addr.address}]` : addr.address
  const url = `${o.tls ? 'https' : 'http'}://${hostForUrl}:${addr.port}/`
  return {
    url, host: addr.address, port: addr.port, server,
    close: (graceMs = 2000) => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeIdleConnections()
      const timer = setTimeout(() => {
        for (const s of sockets) s.destroy()
      }, graceMs)
      timer.unref()
    }),
  }
}
