/**
 * Test helpers for tests that run `coldstore daemon` and look at it from outside (not part of the product):
 * the built CLI as a process whose stderr lines can be awaited, plain HTTP requests, a recording webhook
 * server, headless Chromium (Debian's, driven by playwright-core), and a folder for screenshots that stays
 * after the test (`.tap/artifacts/<name>/`, or COLDSTORE_TEST_ARTIFACTS).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { createServer, request, type IncomingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Test } from 'tap'
import type { BrowserContext } from 'playwright-core'
import { CLI, ROOT } from './build.js'
import { exits, runCli as runHarnessCli, type CliResult } from './harness.js'

export const CHROMIUM = '/usr/bin/chromium'

/** A clean environment for the CLI. */
export function cliEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', TZ: 'UTC', ...extra }
}

/** Runs the built CLI to its end (cli/testing/harness.ts). */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return runHarnessCli(args, { env, cwd: ROOT })
}

export { exits, type CliResult }

/** A started CLI process whose stderr lines can be awaited. Killed at teardown. */
export class CliProcess {
  readonly child: ChildProcess
  readonly lines: string[] = []
  private waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = []
  readonly exited: Promise<number | null>
  stdout = ''

  constructor(t: Test, args: string[], env: NodeJS.ProcessEnv, stdin: 'pipe' | 'ignore' = 'ignore') {
    this.child = spawn(process.execPath, [CLI, ...args], { env, cwd: ROOT, stdio: [stdin, 'pipe', 'pipe'] })
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()))
    createInterface({ input: this.child.stderr! }).on('line', (l) => {
      this.lines.push(l)
      for (const w of [...this.waiters]) {
        const m = l.match(w.re)
        if (m) {
          this.waiters.splice(this.waiters.indexOf(w), 1)
          w.resolve(m)
        }
      }
    })
    this.exited = new Promise((resolve) => this.child.on('close', (code) => resolve(code)))
    t.teardown(async () => {
      if (this.child.exitCode === null && this.child.signalCode === null) {
        this.child.kill('SIGKILL')
        await this.exited
      }
    })
  }

  /** The first stderr line (seen or coming) matching `re`. */
  line(re: RegExp): Promise<RegExpMatchArray> {
    for (const l of this.lines) {
      const m = l.match(re)
      if (m) return Promise.resolve(m)
    }
    return this.next(re)
  }

  /** The next stderr line matching `re` (not one already seen). */
  next(re: RegExp): Promise<RegExpMatchArray> {
    return new Promise((resolve) => this.waiters.push({ re, resolve }))
  }

  /** The first stdout line (the daemon's --json document), parsed. */
  async json<T>(): Promise<T> {
    return JSON.parse(await this.firstStdoutLine()) as T
  }

  /** The first stdout line. */
  async firstStdoutLine(): Promise<string> {
    for (;;) {
      const i = this.stdout.indexOf('\n')
      if (i >= 0) return this.stdout.slice(0, i)
      if (this.child.exitCode !== null) throw new Error(`the process exited (${this.child.exitCode}) before printing:\n${this.lines.join('\n')}`)
      await new Promise((r) => {
        this.child.stdout!.once('data', r)
        this.child.once('close', r)
      })
    }
  }

  /** Moves the daemon's test clock (COLDSTORE_TEST_CLOCK) and waits until the scheduler has acted. */
  async setClock(iso: string): Promise<void> {
    const ack = this.next(new RegExp(`clock ${new Date(iso).toISOString().replace(/[.]/g, '\\.')}`))
    this.child.stdin!.write(`now ${iso}\n`)
    await ack
  }

  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null> {
    this.child.kill('SIGTERM')
    return this.exited
  }
}

export interface HttpAnswer {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/** One HTTP(S) request (HTTPS accepts any certificate: the tests' own). */
export function http(method: string, url: string, o: { headers?: Record<string, string>; body?: string } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const send = url.startsWith('https:') ? httpsRequest : request
    const req = send(url, { method, headers: o.headers, rejectUnauthorized: false }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end(o.body)
  })
}

/** A webhook receiver on 127.0.0.1 that records every POST body (JSON). */
export interface Recorder {
  url: string
  received: { path: string; body: Record<string, unknown> }[]
  /** The next (or an already received) message matching `match`. */
  wait(match: (b: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>
}

export async function startRecorder(t: Test): Promise<Recorder> {
  const received: Recorder['received'] = []
  const waiters: { match: (b: Record<string, unknown>) => boolean; resolve: (b: Record<string, unknown>) => void }[] = []
  const server = createServer((req, res) => {
    let text = ''
    req.on('data', (d: Buffer) => (text += d.toString()))
    req.on('end', () => {
      let body: Record<string, unknown> = {}
      try {
        body = JSON.parse(text) as Record<string, unknown>
      } catch {
        body = { unparsed: text }
      }
      received.push({ path: req.url ?? '/', body })
      for (const w of [...waiters]) {
        if (w.match(body)) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(body)
        }
      }
      res.writeHead(204)
      res.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  }))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    wait: (match) => {
      const seen = received.find((r) => match(r.body))
      if (seen) return Promise.resolve(seen.body)
      return new Promise((resolve) => waiters.push({ match, resolve }))
    },
  }
}

/** Headless Chromium with a fresh profile in `dir`; closed at teardown. */
export async function launchChromium(t: Test, dir: string): Promise<BrowserContext> {
  const { chromium } = await import('playwright-core')
  const context = await chromium.launchPersistentContext(join(dir, 'chrome-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(() => context.close())
  return context
}

/** The folder screenshots of test `name` go to (kept after the test; .tap/ is not committed). */
export function artifactsDir(name: string): string {
  const dir = join(process.env.COLDSTORE_TEST_ARTIFACTS ?? join(ROOT, '.tap', 'artifacts'), name)
  mkdirSync(dir, { recursive: true })
  return dir
}
