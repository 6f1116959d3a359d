/**
 * Test-only helpers shared by the S3 test-server starters (swift.ts, s3rver.ts, gateway.ts): what a
 * started server offers, free loopback ports, child processes that die with the test, and readiness polling.
 * Not exported from engine/index.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { request } from 'node:http'
import type { Test } from 'tap'

/** A running S3-compatible server on 127.0.0.1, started by a test. */
export interface S3TestServer {
  /** What it is, for test names: `swift-s3api`, `s3rver`, `gateway(s3rver)`. */
  readonly kind: string
  /** `http://127.0.0.1:PORT`. */
  readonly endpoint: string
  readonly region: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
  /** Creates a new, empty bucket and returns its name (a fresh one per call unless `name` is given). */
  createBucket(name?: string): Promise<string>
  /** The credentials as environment variables (for KindContext.env and child processes). */
  env(): Record<string, string>
  /** The remote URL of `bucket/prefix` on this server (path-style, this endpoint, this region). */
  url(bucket: string, prefix?: string): string
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the server that binds it next may still race another). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

/** A child process started for a test, its output captured in `log`. */
export interface Child {
  readonly name: string
  readonly proc: ChildProcess
  readonly log: string
  /** The last lines of its log (for failure messages). */
  tail(lines?: number): string
  /** Stops it: SIGTERM, then SIGKILL after `graceMs`. Resolves when it has exited. */
  stop(graceMs?: number): Promise<void>
}

/** util-linux setpriv, which can make a child get SIGKILL when the test process dies (even by SIGKILL). */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p))

/** Children still running, killed when this process exits without reaching the teardowns (a crash). */
const running = new Set<ChildProcess>()
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL')
})

/**
 * Starts `command` with its stdout/stderr written to `log`; `t.teardown` stops it. The child also dies with
 * this process when that ends abnormally (an exit handler, and setpriv --pdeathsig where available), so a
 * crashed test file leaves no servers behind.
 */
export function startChild(t: Test, o: { name: string; command: string; args: readonly string[]; log: string; env?: NodeJS.ProcessEnv; cwd?: string }): Child {
  const out = createWriteStream(o.log)
  out.on('error', () => undefined) // the directory may be removed at teardown while the child still writes
  const [command, args] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', o.command, ...o.args]] : [o.command, o.args]
  const proc = spawn(command, args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(proc)
  proc.once('exit', () => running.delete(proc))
  proc.stdout?.pipe(out, { end: false })
  proc.stderr?.pipe(out, { end: false })
  let exited = proc.exitCode !== null || proc.signalCode !== null
  const exit = new Promise<void>((resolve) => {
    proc.once('exit', () => {
      exited = true
      resolve()
    })
    proc.once('error', () => {
      exited = true
      resolve()
    })
  })
  const child: Child = {
    name: o.name,
    proc,
    log: o.log,
    tail(lines = 20) {
      try {
        return readFileSync(o.log, 'utf8').split('\n').slice(-lines).join('\n')
      } catch {
        return ''
      }
    },
    async stop(graceMs = 3000) {
      if (!exited) {
        proc.kill('SIGTERM')
        const timer = setTimeout(() => {
          if (!exited) proc.kill('SIGKILL')
        }, graceMs)
        await exit
        clearTimeout(timer)
      }
      out.end()
    },
  }
  t.teardown(() => child.stop())
  return child
}

/** One HTTP GET to 127.0.0.1:port/path: the status, or 0 when the connection failed. */
export function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', timeout: 2000 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', () => resolve(0))
    req.on('timeout', () => req.destroy())
    req.end()
  })
}

/**
 * Polls until `ready()` is true (every 50 ms), failing after `timeoutMs` or as soon as one of `children` exits.
 * Polling is the only readiness signal these servers give (none of them prints a reliable "listening" line).
 */
export async function waitUntil(what: string, ready: () => Promise<boolean>, children: readonly Child[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const dead = children.find((c) => c.proc.exitCode !== null || c.proc.signalCode !== null)
    if (dead) throw new Error(`${what}: ${dead.name} exited (${dead.proc.exitCode ?? dead.proc.signalCode}) during start-up:\n${dead.tail()}`)
    if (await ready()) return
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms:\n${children.map((c) => `--- ${c.name}\n${c.tail()}`).join('\n')}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * A new directory for one server under the test's fixture directory, removed in `t.teardown`. Not
 * `t.testdir()` itself: a second call of that on the same test empties the directory, which would pull the
 * files from under a server started earlier by the same test.
 */
export function serverDir(t: Test, kind: string): string {
  mkdirSync(t.testdirName, { recursive: true })
  const dir = mkdtempSync(join(t.testdirName, `${kind}-`))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

let bucketSeq = 0

/** A bucket name not used before in this process (lower case, valid for every server). */
export function newBucketName(prefix = 'cs'): string {
  bucketSeq++
  return `${prefix}-${process.pid}-${bucketSeq}-${Math.random().toString(36).slice(2, 8)}`
}

/**
 * True when the server binaries a starter needs are installed. Otherwise, under CI=true a failure (CI installs
 * them in .ci/run), elsewhere a skip with the reason.
 */
export function haveServer(t: Test, missing: string | undefined): boolean {
  if (missing === undefined) return true
  if (process.env.CI === 'true') t.fail(`${missing} (CI installs it in .ci/run)`)
  else t.pass('server missing', { skip: missing })
  return false
}
