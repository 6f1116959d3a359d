/**
 * Test-only: a throwaway OpenSSH server on 127.0.0.1 for the SFTP remote's tests (and CLI tests that use an
 * `sftp://` repository). Everything lives in a temporary directory of the test: host keys, a client key,
 * `sshd_config`, `authorized_keys`, a `known_hosts` file naming the host. The log (sshd -e) is kept in memory
 * (`log()`), since sshd writes to it until it exits. Nothing under /etc changes.
 * The server is killed in t.teardown (with every session process it started).
 *
 * Not part of the engine: never import it from engine/index.ts.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'

/** The sshd binary the tests run. */
export const SSHD = '/usr/sbin/sshd'

/** Host key types `startSshd` can give the server. */
export type HostKeyType = 'ed25519' | 'ecdsa' | 'rsa'

/** Options of `startSshd`. */
export interface SshdOptions {
  /** Host keys of the server, in this order (default: one ed25519 key). */
  hostKeyTypes?: readonly HostKeyType[]
  /** The remote's root directory inside the server's file system (default: a new directory `root` in the test dir). */
  root?: string
  /**
   * Start SFTP sessions in a new directory `home` of the test dir (internal-sftp -d) instead of the user's
   * real home, so that home-relative paths (`sftp://user@host/~/x`) can be tested without touching it.
   */
  testHome?: boolean
}

/** A running test server. */
export interface Sshd {
  readonly host: '127.0.0.1'
  readonly port: number
  /** The user to log in as (the user running the tests). */
  readonly user: string
  /** An existing, empty directory for repositories (absolute). */
  readonly root: string
  /** The test directory holding keys and config. */
  readonly dir: string
  /** With `testHome`: the directory SFTP sessions start in (what `~` means in URLs); else null. */
  readonly home: string | null
  /** A client private key (ed25519, no passphrase) in authorized_keys. */
  readonly keyFile: string
  /** A known_hosts file with `[127.0.0.1]:<port>` entries for every host key. */
  readonly knownHostsFile: string
  /** The host's public keys as `<type> <base64>` (as in a .pub file, without comment), in `hostKeyTypes` order. */
  readonly hostKeys: readonly string[]
  /** The authorized_keys file (append a public key line to allow another client key). */
  readonly authorizedKeysFile: string
  /** `sftp://user@127.0.0.1:port<path>`, path default: the root. */
  url(path?: string): string
  /** PIDs of the per-connection sshd processes (children of the listener, and theirs). */
  sessionPids(): number[]
  /** SIGKILLs every session process: open connections drop, the listener keeps accepting. Returns how many. */
  killSessions(): number
  /** Stops the listener and every session (no new connections until `start`). Idempotent. */
  stop(): Promise<void>
  /** Starts the listener again on the same port (after `stop`). */
  start(): Promise<void>
  /** The server's log so far. */
  log(): string
}

/** Why a test server cannot run here, or null when it can. */
export function sshdMissing(): string | null {
  if (!existsSync(SSHD)) return `${SSHD} is not installed (apt-get install openssh-server)`
  for (const tool of ['ssh-keygen']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    } catch {
      return `${tool} is not installed (apt-get install openssh-client)`
    }
  }
  return null
}

/** A free TCP port on 127.0.0.1 (bound and released; another process could take it in between, rarely). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

/** Generates an unencrypted key pair at `file` / `file.pub`; returns the public key line `<type> <base64>`. */
export function generateKey(file: string, type: HostKeyType = 'ed25519', passphrase = ''): string {
  const bits = type === 'rsa' ? ['-b', '2048'] : []
  execFileSync('ssh-keygen', ['-q', '-t', type, ...bits, '-N', passphrase, '-C', 'coldstore-test', '-f', file], { stdio: 'ignore' })
  return publicKeyLine(readFileSync(`${file}.pub`, 'utf8'))
}

/** `<type> <base64>` of a .pub file's content (drops the comment). */
function publicKeyLine(pub: string): string {
  const [type, b64] = pub.trim().split(/\s+/)
  return `${type} ${b64}`
}

/** Every descendant of `pid` (from /proc), deepest last. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
    } catch {
      continue // exited meanwhile
    }
    // Field 4 (ppid) follows the parenthesised command name, which may contain spaces.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    const list = children.get(ppid) ?? []
    list.push(Number(entry))
    children.set(ppid, list)
  }
  const out: number[] = []
  const visit = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c)
      visit(c)
    }
  }
  visit(pid)
  return out
}

/**
 * Starts `sshd -D` on a free loopback port with throwaway keys, as described in DEPENDENCIES.md, and waits
 * until it listens (its "Server listening" log line). Torn down with `t`.
 */
export async function startSshd(t: Test, options: SshdOptions = {}): Promise<Sshd> {
  const dir = t.testdir()
  const root = options.root ?? join(dir, 'root')
  mkdirSync(root, { recursive: true })
  const home = options.testHome === true ? join(dir, 'home') : null
  if (home !== null) mkdirSync(home, { recursive: true })
  mkdirSync('/run/sshd', { recursive: true }) // privilege separation directory sshd insists on
  const port = await freePort()
  const user = userInfo().username
  const types = options.hostKeyTypes ?? ['ed25519']
  const hostKeyFiles = types.map((type) => join(dir, `host_${type}`))
  const hostKeys = types.map((type, i) => generateKey(hostKeyFiles[i], type))
  const keyFile = join(dir, 'client_ed25519')
  const clientPub = generateKey(keyFile)
  const authorizedKeysFile = join(dir, 'authorized_keys')
  writeFileSync(authorizedKeysFile, `${clientPub}\n`)
  const knownHostsFile = join(dir, 'known_hosts')
  writeFileSync(knownHostsFile, hostKeys.map((k) => `[127.0.0.1]:${port} ${k}\n`).join(''))
  const config = join(dir, 'sshd_config')
  writeFileSync(config, [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    ...hostKeyFiles.map((f) => `HostKey ${f}`),
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${authorizedKeysFile}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'PermitRootLogin prohibit-password',
    `Subsystem sftp internal-sftp${home !== null ? ` -d ${home}` : ''}`,
    // Tests open a few connections at once; keep sshd from dropping unauthenticated ones early.
    'MaxStartups 50',
    '',
  ].join('\n'))

  let logText = ''
  let child: ChildProcess | null = null

  const start = (): Promise<void> => new Promise((resolve, reject) => {
    // -e: log to stderr, where "Server listening on" tells that the socket is bound (no polling).
    const proc = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] })
    child = proc
    let ready = false
    proc.stderr?.setEncoding('utf8')
    proc.stderr?.on('data', (d: string) => {
      logText += d
      if (!ready && logText.includes(`Server listening on 127.0.0.1 port ${port}`)) {
        ready = true
        resolve()
      }
    })
    proc.on('error', reject)
    proc.on('exit', (code, signal) => {
      if (child === proc) child = null
      if (!ready) reject(new Error(`sshd exited before listening (code ${code}, signal ${signal}):\n${logText}`))
    })
  })

  const sessionPids = (): number[] => (child?.pid === undefined ? [] : descendants(child.pid))

  const killSessions = (): number => {
    const pids = sessionPids()
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    return pids.length
  }

  const stop = async (): Promise<void> => {
    const proc = child
    if (proc === null) return
    killSessions()
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    proc.kill('SIGTERM')
    await exited
  }

  await start()
  t.teardown(stop)

  return {
    host: '127.0.0.1',
    port,
    user,
    root,
    dir,
    home,
    keyFile,
    knownHostsFile,
    hostKeys,
    authorizedKeysFile,
    url: (path = root) => `sftp://${user}@127.0.0.1:${port}${path}`,
    sessionPids,
    killSessions,
    stop,
    start,
    log: () => logText,
  }
}
