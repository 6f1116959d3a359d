/**
 * SSH connections of the SFTP remote: one SFTP session per connection (ssh2-sftp-client connects, ssh2
 * carries the requests), promise wrappers of the SFTP requests, and a pool that opens connections as
 * parallel calls need them and replaces dropped ones.
 *
 * A dropped connection fails every call in flight on it with a transient RemoteError (ssh2 would leave
 * calls issued after the drop unanswered), and the pool connects again on the next call.
 */
import SftpClient from 'ssh2-sftp-client'
import type { AgentAuthMethod, Client, ConnectConfig, PublicKeyAuthMethod, ServerHostKeyAlgorithm, SFTPWrapper, Stats } from 'ssh2'
import { ConfigError, RemoteError } from '../../errors.js'
import { blobType, checkHostKey, fingerprint, hostLookupName, preferredHostKeyAlgorithms, type HostKeyVerdict, type KnownHostEntry } from './known-hosts.js'

/** SFTP status codes (draft-ietf-secsh-filexfer-02, the version OpenSSH speaks). */
export const STATUS = {
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const

/** True when `err` is an SFTP status error with `code`. */
export function isStatus(err: unknown, code: number): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === code
}

/** Host key algorithms ssh2 1.x offers by default (the ones it can verify), best first. */
const HOST_KEY_ALGORITHMS: readonly string[] = [
  'ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa',
]

/** Socket error codes after which the same call may succeed on a new connection. */
const TRANSIENT_SOCKET_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTCONN',
])

/** A known_hosts file that was consulted, for messages. */
export interface KnownHostsSource {
  path: string
  exists: boolean
}

/** Everything needed to open a connection (built once by SftpRemote.open). */
export interface ConnectOptions {
  host: string
  port: number
  username: string
  /** For messages: `sftp://host:port/path`. */
  location: string
  methods: (AgentAuthMethod | PublicKeyAuthMethod)[]
  /** Descriptions of `methods` and of credentials that were skipped, for the message when all fail. */
  tried: string[]
  skipped: string[]
  knownHosts: KnownHostEntry[]
  knownHostsSources: KnownHostsSource[]
}

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined
}

function levelOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'level' in err && typeof err.level === 'string' ? err.level : undefined
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function noop(): void {}

/** The ssh2 connection under an ssh2-sftp-client (its `client` property, not in the library's types). */
function sshOf(client: SftpClient): Client {
  return (client as unknown as { client: Client }).client
}

/**
 * Ends an ssh2 connection and waits until its socket has closed; a peer that does not answer the
 * disconnect within 2 s has its socket destroyed.
 */
async function endConnection(ssh: Client, isClosed: () => boolean): Promise<void> {
  if (isClosed()) return
  const closed = new Promise<void>((resolve) => ssh.once('close', () => resolve()))
  ssh.end()
  const timer = setTimeout(() => ssh.destroy(), 2000)
  timer.unref()
  await closed
  clearTimeout(timer)
}

/** The `<type>` of OpenSSH's /etc/ssh/ssh_host_<type>_key for a key type. */
function hostKeyFileType(keyType: string): string {
  if (keyType.startsWith('ecdsa-')) return 'ecdsa'
  return keyType.replace(/^ssh-/, '')
}

/** The message for a host key that is not accepted: which file was checked, the key's fingerprint, what to do. */
export function hostKeyMessage(v: Exclude<HostKeyVerdict, { status: 'ok' }>, o: { host: string; port: number; username: string; blob: Buffer; sources: readonly KnownHostsSource[] }): string {
  const name = hostLookupName(o.host, o.port)
  const type = blobType(o.blob)
  const fp = fingerprint(o.blob)
  const files = o.sources.map((s) => (s.exists ? s.path : `${s.path} (does not exist)`)).join(' and ')
  const portFlag = o.port === 22 ? '' : `-p ${o.port} `
  const first = o.sources[0]?.path ?? '~/.ssh/known_hosts'
  if (v.status === 'revoked') {
    return `sftp: the host key of ${name} (${type} ${fp}) is marked @revoked in ${v.entry.file} line ${v.entry.line}: refusing to connect`
  }
  if (v.status === 'mismatch') {
    const e = v.entries[0]
    return `sftp: HOST KEY MISMATCH for ${name}: the server's ${type} key has the fingerprint ${fp}, but ${e.file} line ${e.line} holds a different ${type} key for this host. ` +
      'Someone could be intercepting the connection (man-in-the-middle), or the host key was just changed. ' +
      `If the change is expected, remove the old entry (ssh-keygen -R '${name}' -f ${e.file}) and add the new key; coldstore refuses to connect until then`
  }
  const others = v.otherTypes.length > 0 ? ` (known_hosts only lists ${v.otherTypes.join(', ')} keys for it, which the server did not offer)` : ''
  const cert = v.certAuthorityOnly ? ' (only a @cert-authority line names it: host certificates are not supported, add the host\'s own key)' : ''
  const scan = `ssh-keyscan ${portFlag}${o.host}`
  return `sftp: the host key of ${name} is not known: no entry for it in ${files}${others}${cert}. The server's ${type} key has the fingerprint ${fp}. ` +
    `If that is the server's key (on the server, ssh-keygen -lf /etc/ssh/ssh_host_${hostKeyFileType(type)}_key.pub prints it), add it with ${scan} >> ${first}, ` +
    `or log in once with ssh ${portFlag}${o.username}@${o.host} (which records it in ~/.ssh/known_hosts); COLDSTORE_SSH_KNOWN_HOSTS or the known_hosts setting name another file`
}

/** Translates a failed connection attempt. Host key and authentication failures are not transient. */
function connectError(err: unknown, o: ConnectOptions, verdict: { v: HostKeyVerdict; blob: Buffer } | null): Error {
  if (err instanceof RemoteError || err instanceof ConfigError) return err
  const at = `${o.username}@${hostLookupName(o.host, o.port)}`
  if (verdict !== null && verdict.v.status !== 'ok') {
    return new RemoteError(hostKeyMessage(verdict.v, { host: o.host, port: o.port, username: o.username, blob: verdict.blob, sources: o.knownHostsSources }), { transient: false }, { cause: err })
  }
  const level = levelOf(err)
  const code = errnoOf(err)
  const detail = messageOf(err)
  if (level === 'client-authentication') {
    const skipped = o.skipped.length ? ` Not used: ${o.skipped.join('; ')}.` : ''
    return new RemoteError(`sftp: authentication as ${at} failed: the server accepted none of: ${o.tried.join(', ')}.${skipped} Check that the public key is in the server's authorized_keys`, { transient: false }, { cause: err })
  }
  if (code === 'ENOTFOUND') return new RemoteError(`sftp: host ${o.host} not found (DNS lookup failed)`, { transient: false }, { cause: err })
  if (level === 'client-timeout') return new RemoteError(`sftp: connecting to ${hostLookupName(o.host, o.port)} timed out`, { transient: true }, { cause: err })
  if (code !== undefined && TRANSIENT_SOCKET_CODES.has(code)) {
    return new RemoteError(`sftp: cannot connect to ${hostLookupName(o.host, o.port)}: ${code}`, { transient: true }, { cause: err })
  }
  if (level === 'handshake' || level === 'protocol') {
    return new RemoteError(`sftp: SSH handshake with ${hostLookupName(o.host, o.port)} failed: ${detail}`, { transient: false }, { cause: err })
  }
  if (/subsystem/i.test(detail)) {
    return new RemoteError(`sftp: ${hostLookupName(o.host, o.port)} does not offer the SFTP subsystem: ${detail}`, { transient: false }, { cause: err })
  }
  // Connections closed during the handshake (server restarting, MaxStartups) and the like.
  return new RemoteError(`sftp: connecting to ${hostLookupName(o.host, o.port)} failed: ${detail}`, { transient: true }, { cause: err })
}

/**
 * One SSH connection with its SFTP session. Every request method rejects at once, with a transient
 * RemoteError, when the connection has dropped or drops while the request is in flight.
 */
export class Session {
  /** Calls using this session now (the pool picks the least busy). */
  busy = 0
  /** Why the connection is gone, once it is. */
  lostReason: string | null = null
  private readonly client: SftpClient
  private readonly sftp: SFTPWrapper
  private readonly died: Promise<never>
  private die!: (err: Error) => void
  private readonly onLost: (s: Session) => void
  private readonly label: string

  private constructor(client: SftpClient, sftp: SFTPWrapper, label: string, onLost: (s: Session) => void) {
    this.client = client
    this.sftp = sftp
    this.label = label
    this.onLost = onLost
    this.died = new Promise<never>((_, reject) => {
      this.die = reject
    })
    this.died.catch(noop)
  }

  /**
   * Connects, checks the host key against known_hosts, authenticates and starts SFTP.
   *
   * @throws RemoteError: transient for network failures, not transient for host key, authentication or
   *   protocol failures (the message says what to fix).
   */
  static async connect(o: ConnectOptions, onLost: (s: Session) => void): Promise<Session> {
    // The library's default listeners print to the console; the engine never prints.
    const client = new SftpClient('coldstore', { error: noop, end: noop, close: noop })
    let raw: unknown = null
    const captureRaw = (err: unknown): void => {
      raw ??= err
    }
    client.on('error', captureRaw) // the raw ssh2 error keeps its `level` (the library's wrapper drops it)
    let verdict: { v: HostKeyVerdict; blob: Buffer } | null = null
    const config: ConnectConfig = {
      host: o.host,
      port: o.port,
      username: o.username,
      authHandler: o.methods,
      hostVerifier: (blob: Buffer): boolean => {
        verdict = { v: checkHostKey(o.knownHosts, o.host, o.port, blob), blob }
        return verdict.v.status === 'ok'
      },
      algorithms: {
        serverHostKey: preferredHostKeyAlgorithms(o.knownHosts, o.host, o.port, HOST_KEY_ALGORITHMS) as ServerHostKeyAlgorithm[],
      },
      readyTimeout: 30_000,
      // A silent peer (half-open TCP connection) is detected within about a minute.
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
    }
    let sftp: SFTPWrapper
    try {
      sftp = await client.connect(config)
    } catch (err) {
      sshOf(client).destroy()
      throw connectError(raw ?? err, o, verdict)
    } finally {
      client.removeListener('error', captureRaw)
    }
    const session = new Session(client, sftp, hostLookupName(o.host, o.port), onLost)
    const ssh = sshOf(client)
    ssh.on('error', (err: unknown) => session.lost(messageOf(err)))
    ssh.on('close', () => {
      session.sshClosed = true
      session.lost('connection closed')
    })
    ssh.on('end', () => session.lost('connection ended by the server'))
    sftp.on('close', () => session.lost('SFTP session closed'))
    return session
  }

  private lost(reason: string): void {
    if (this.lostReason !== null) return
    this.lostReason = reason
    this.die(new RemoteError(`sftp: connection to ${this.label} lost (${reason})`, { transient: true }))
    this.onLost(this)
  }

  /** Issues one request; settles when it answers or the connection drops, whichever is first. */
  private request<T>(issue: (cb: (err: Error | null | undefined, value: T) => void) => void): Promise<T> {
    if (this.lostReason !== null) return this.died
    const answer = new Promise<T>((resolve, reject) => {
      try {
        issue((err, value) => (err ? reject(err) : resolve(value)))
      } catch (err) {
        reject(err)
      }
    })
    answer.catch(noop) // when the drop wins the race, the late answer (if any) is dropped
    return Promise.race([answer, this.died])
  }

  open(path: string, flags: 'r' | 'wx'): Promise<Buffer> {
    return this.request<Buffer>((cb) => this.sftp.open(path, flags, 0o644, cb))
  }

  close(handle: Buffer): Promise<void> {
    return this.request<void>((cb) => this.sftp.close(handle, (err) => cb(err, undefined)))
  }

  /** Reads up to `length` bytes at `position` into `buf` at `offset`; resolves the count (0 at the end). */
  read(handle: Buffer, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.request<number>((cb) => this.sftp.read(handle, buf, offset, length, position, (err, n) => cb(err, n ?? 0)))
  }

  write(handle: Buffer, buf: Buffer, offset: number, length: number, position: number): Promise<void> {
    return this.request<void>((cb) => this.sftp.write(handle, buf, offset, length, position, (err) => cb(err, undefined)))
  }

  stat(path: string): Promise<Stats> {
    return this.request<Stats>((cb) => this.sftp.stat(path, cb))
  }

  lstat(path: string): Promise<Stats> {
    return this.request<Stats>((cb) => this.sftp.lstat(path, cb))
  }

  readdir(path: string): Promise<{ filename: string; attrs: Stats }[]> {
    return this.request((cb) => this.sftp.readdir(path, cb))
  }

  mkdir(path: string): Promise<void> {
    return this.request<void>((cb) => this.sftp.mkdir(path, (err) => cb(err, undefined)))
  }

  unlink(path: string): Promise<void> {
    return this.request<void>((cb) => this.sftp.unlink(path, (err) => cb(err, undefined)))
  }

  /** Plain SFTP rename: fails when `to` exists (OpenSSH links then unlinks, so it is race-free). */
  rename(from: string, to: string): Promise<void> {
    return this.request<void>((cb) => this.sftp.rename(from, to, (err) => cb(err, undefined)))
  }

  realpath(path: string): Promise<string> {
    return this.request<string>((cb) => this.sftp.realpath(path, cb))
  }

  /**
   * rename(2) over an existing `to` (posix-rename@openssh.com). Resolves false, sending nothing, when the
   * server lacks the extension.
   */
  posixRename(from: string, to: string): Promise<boolean> {
    return this.request<boolean>((cb) => {
      try {
        this.sftp.ext_openssh_rename(from, to, (err) => cb(err, true))
      } catch {
        cb(null, false) // ssh2 throws before sending when the server did not announce the extension
      }
    })
  }

  /** fsync(2) of an open handle (fsync@openssh.com); resolves false when the server lacks the extension. */
  fsync(handle: Buffer): Promise<boolean> {
    return this.request<boolean>((cb) => {
      try {
        this.sftp.ext_openssh_fsync(handle, (err) => cb(err, true))
      } catch {
        cb(null, false)
      }
    })
  }

  private sshClosed = false

  /** Ends the connection (idempotent). */
  async end(): Promise<void> {
    this.lost('closed by coldstore')
    await endConnection(sshOf(this.client), () => this.sshClosed)
  }
}

/**
 * Up to `maxConnections` sessions, opened lazily: a call takes the least busy live session; when that one
 * is busy and the pool may grow, a new connection is opened in the background for later calls. A call
 * waits for a connection only when none is live (at the start, or after all dropped).
 */
export class SessionPool {
  private readonly options: ConnectOptions
  private readonly maxConnections: number
  private limit: number
  private readonly sessions: Session[] = []
  private connecting: Promise<Session> | null = null
  private closed = false

  constructor(options: ConnectOptions, maxConnections: number) {
    this.options = options
    this.maxConnections = maxConnections
    this.limit = maxConnections
  }

  /** Live sessions now (for tests and diagnostics). */
  get size(): number {
    return this.sessions.length
  }

  /** Takes a session for one call; pair with `release`. @throws RemoteError when no connection can be made. */
  async acquire(): Promise<Session> {
    if (this.closed) throw new RemoteError(`sftp: ${this.options.location} is closed`, { transient: false })
    let best: Session | undefined
    for (const s of this.sessions) if (best === undefined || s.busy < best.busy) best = s
    if (best !== undefined) {
      if (best.busy > 0 && this.connecting === null && this.sessions.length < this.limit) this.grow().catch(noop)
      best.busy++
      return best
    }
    const s = await (this.connecting ?? this.grow())
    if (s.lostReason !== null) return this.acquire() // dropped before this call got it
    s.busy++
    return s
  }

  release(s: Session): void {
    s.busy--
  }

  private grow(): Promise<Session> {
    const p = Session.connect(this.options, (lost) => {
      const i = this.sessions.indexOf(lost)
      if (i !== -1) this.sessions.splice(i, 1)
      this.limit = this.maxConnections
    }).then(
      async (s) => {
        if (this.closed) {
          await s.end()
          throw new RemoteError(`sftp: ${this.options.location} is closed`, { transient: false })
        }
        this.sessions.push(s)
        return s
      },
      (err: unknown) => {
        // A server that refuses more connections (MaxStartups, MaxSessions, a firewall) caps the pool where it is.
        if (this.sessions.length > 0) this.limit = this.sessions.length
        throw err
      },
    )
    this.connecting = p
    p.then(noop, noop).finally(() => {
      if (this.connecting === p) this.connecting = null
    })
    return p
  }

  /** Ends every connection; later `acquire` calls fail. */
  async close(): Promise<void> {
    this.closed = true
    await this.connecting?.catch(noop)
    await Promise.all(this.sessions.splice(0).map((s) => s.end()))
  }
}
