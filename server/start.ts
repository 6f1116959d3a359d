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
}

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
  const server: Server = o.tls
    ? (createHttpsServer({ cert: o.tls.cert, key: o.tls.key }, handler) as unknown as Server)
    : createHttpServer(handler)
  // Refuse uploads before the client sends the body (no "100 Continue" for write methods).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (!WRITE_METHODS.has((req.method ?? '').toUpperCase()) || (o.routes && /^\/(api|-)\//.test(req.url ?? ''))) res.writeContinue()
    handler(req, res)
  })
  server.keepAliveTimeout = 30_000
  server.headersTimeout = 30_000
  server.requestTimeout = 0 // long downloads
  const sockets = new Set<Socket>()
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
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
