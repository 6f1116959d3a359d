import { readFileSync } from 'node:fs'
import type { CommandModule } from 'yargs'
import { SnapshotView, closeRepository, describeRemoteUrl } from '../../engine/index.js'
import { isLoopbackHost, parseBasic, startServer, type AuthConfig } from '../../server/index.js'
import { CliError, EXIT, err, openRepo, repoUrl, type GlobalArgs } from '../common.js'

interface Args extends GlobalArgs {
  listen: string
  'token-file'?: string
  'basic-auth-file'?: string
  'tls-cert'?: string
  'tls-key'?: string
  'cache-mib': number
}

/** `host:port`, `[v6]:port` or a bare port (on 127.0.0.1). */
export function parseListen(s: string): { host: string; port: number } {
  const bad = (): CliError => new CliError(`--listen: expected HOST:PORT (e.g. 127.0.0.1:8088), got ${JSON.stringify(s)}`, EXIT.usage)
  let host: string
  let portText: string
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s)
  if (v6) {
    host = v6[1]
    portText = v6[2]
  } else if (/^\d+$/.test(s)) {
    host = '127.0.0.1'
    portText = s
  } else {
    const i = s.lastIndexOf(':')
    if (i <= 0 || s.indexOf(':') !== i) throw bad()
    host = s.slice(0, i)
    portText = s.slice(i + 1)
  }
  const port = Number(portText)
  if (!/^\d+$/.test(portText) || port > 65535) throw bad()
  return { host, port }
}

function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').split(/\r?\n/)[0]
  } catch (e) {
    throw new CliError(`cannot read ${what} ${path}: ${(e as Error).message}`, EXIT.usage)
  }
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path)
  } catch (e) {
    throw new CliError(`cannot read ${what} ${path}: ${(e as Error).message}`, EXIT.usage)
  }
}

/** Auth and TLS from files and environment; refuses to expose the repository unauthenticated beyond loopback. */
function accessConfig(a: Args, host: string): { auth: AuthConfig; tls?: { cert: Buffer; key: Buffer } } {
  let tls: { cert: Buffer; key: Buffer } | undefined
  if (Boolean(a['tls-cert']) !== Boolean(a['tls-key'])) throw new CliError('--tls-cert and --tls-key go together', EXIT.usage)
  if (a['tls-cert'] && a['tls-key']) tls = { cert: readPem(a['tls-cert'], 'TLS certificate'), key: readPem(a['tls-key'], 'TLS key') }
  const tokenText = a['token-file'] ? readSecretFile(a['token-file'], 'token file') : process.env.COLDSTORE_SERVE_TOKEN
  let token: string | undefined
  if (tokenText !== undefined) {
    token = tokenText.trim()
    if (token.length < 16) throw new CliError('the access token must be at least 16 characters (e.g. `openssl rand -hex 24`)', EXIT.usage)
  }
  const basicText = a['basic-auth-file'] ? readSecretFile(a['basic-auth-file'], 'Basic credentials file') : process.env.COLDSTORE_SERVE_BASIC_AUTH
  let basic: { user: string; password: string } | undefined
  if (basicText !== undefined) {
    const b = parseBasic(basicText)
    if (!b) throw new CliError('Basic credentials must be one line USER:PASSWORD', EXIT.usage)
    basic = b
  }
  const auth: AuthConfig = { token, basic, tls: tls !== undefined }
  if (!isLoopbackHost(host)) {
    if (!token && !basic) {
      throw new CliError(
        `refusing to serve on ${host} without authentication: anyone who can reach it could read every snapshot.\n` +
          'Give a bearer token (--token-file FILE or COLDSTORE_SERVE_TOKEN), or Basic credentials (--basic-auth-file FILE or\n' +
          'COLDSTORE_SERVE_BASIC_AUTH=user:password) with --tls-cert/--tls-key; or listen on 127.0.0.1.',
        EXIT.usage,
      )
    }
    if (basic && !tls) {
      throw new CliError(`refusing Basic authentication on ${host} over plain HTTP (the password would travel in clear): add --tls-cert and --tls-key`, EXIT.usage)
    }
  }
  return { auth, tls }
}

function mountHelp(url: string, authNote: string): string {
  const u = new URL(url)
  const hostPort = u.port ? `${u.hostname}@${u.port}` : u.hostname
  const ssl = u.protocol === 'https:' ? '@SSL' : ''
  return [
    `  browser:  ${url}`,
    `  Linux:    GNOME Files: Other Locations → Connect to Server: ${u.protocol === 'https:' ? 'davs' : 'dav'}://${u.host}/`,
    `            Dolphin: ${u.protocol === 'https:' ? 'webdavs' : 'webdav'}://${u.host}/`,
    `            davfs2: sudo mount -t davfs -o ro ${url} /mnt/coldstore`,
    `            rclone: rclone lsf :webdav: --webdav-url ${url}`,
    `  macOS:    Finder → Go → Connect to Server (⌘K): ${url}`,
    `  Windows:  Explorer → This PC → Map network drive → Folder: ${url}`,
    `            or: net use Z: \\\\${hostPort}${ssl}\\DavWWWRoot`,
    ...(authNote ? [`  access:   ${authNote}`] : []),
    '  stop:     Ctrl-C (or SIGTERM)',
  ].join('\n')
}

export const serveCommand: CommandModule<GlobalArgs, Args> = {
  command: 'serve',
  describe: 'serve the snapshots read-only over WebDAV and HTML (mount in a file manager, browse in a browser)',
  builder: (y) =>
    y
      .option('listen', { type: 'string', default: '127.0.0.1:8088', describe: 'HOST:PORT to listen on (port 0 picks a free one)' })
      .option('token-file', { type: 'string', describe: 'require this bearer token (first line of the file; env COLDSTORE_SERVE_TOKEN)' })
      .option('basic-auth-file', { type: 'string', describe: 'require Basic auth USER:PASSWORD (first line; env COLDSTORE_SERVE_BASIC_AUTH); needs TLS off loopback' })
      .option('tls-cert', { type: 'string', describe: 'PEM certificate: serve HTTPS' })
      .option('tls-key', { type: 'string', describe: 'PEM private key of --tls-cert' })
      .option('cache-mib', { type: 'number', default: 128, describe: 'memory for decoded chunks shared by all clients (MiB)' }) as never,
  handler: async (a) => {
    const { host, port } = parseListen(a.listen)
    if (!Number.isFinite(a['cache-mib']) || a['cache-mib'] < 8) throw new CliError('--cache-mib must be at least 8', EXIT.usage)
    const access = accessConfig(a, host)
    const location = describeRemoteUrl(repoUrl(a))
    const repo = await openRepo(a)
    let closing = false
    try {
      const view = await SnapshotView.open(repo, {
        cache: { maxBytes: Math.floor(a['cache-mib'] * 1024 * 1024) },
        onWarning: (m) => err(`coldstore: warning: ${m}`),
      })
      let running
      try {
        running = await startServer({ view, host, port, auth: access.auth, tls: access.tls, log: (l) => err(`coldstore: ${l}`) })
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code === 'EADDRINUSE') throw new CliError(`cannot listen on ${a.listen}: the address is in use (choose another with --listen)`, EXIT.failure)
        if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EACCES') throw new CliError(`cannot listen on ${a.listen}: ${(e as Error).message}`, EXIT.usage)
        throw e
      }
      const authNote = access.auth.token ? (access.tls ? 'bearer token, or Basic with any user name and the token as password' : 'bearer token (Authorization: Bearer ...)') : access.auth.basic ? `Basic, user ${access.auth.basic.user}` : ''
      err(`coldstore: serving ${location} read-only at ${running.url}`)
      if (!a.quiet) err(mountHelp(running.url, authNote))
      if (a.json) process.stdout.write(JSON.stringify({ url: running.url, host: running.host, port: running.port, tls: Boolean(access.tls), auth: Boolean(access.auth.token || access.auth.basic) }) + '\n')
      await new Promise<void>((resolve) => {
        const stop = (sig: NodeJS.Signals): void => {
          if (closing) return
          closing = true
          err(`coldstore: ${sig}: stopping`)
          void running.close().then(resolve)
        }
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
    } finally {
      await closeRepository(repo)
    }
    err('coldstore: stopped')
  },
}
