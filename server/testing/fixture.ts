/**
 * Test helpers for server/ tests (not part of the product): a real
 * repository in a temp dir with snapshots of given files, a server on
 * 127.0.0.1:0 over it, the built CLI, and external clients that tests skip
 * outside CI when missing (and fail on under CI=true).
 */
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import type { Test } from 'tap'
import { SnapshotView, backup, closeRepository, type Repository } from '../../engine/index.js'
import { makeTestRepo, writeTree } from '../../engine/testing/test-repo.js'
import { startServer, type RunningServer, type ServerLimits } from '../index.js'
import type { AuthConfig } from '../auth.js'

export { CLI, ROOT, ensureBuilt } from '../../cli/testing/build.js'
import { CLI } from '../../cli/testing/build.js'
export const PASSWORD = 'correct horse'


/**
 * True when `tool` is on PATH. Otherwise: under CI=true a failure (CI installs
 * it, see .ci/run), elsewhere a skip with the reason.
 */
export function haveTool(t: Test, tool: string, pkg = tool): boolean {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' })
  if (r.status === 0) return true
  if (process.env.CI === 'true') t.fail(`${tool} is not installed (CI installs it: apt-get install -y ${pkg})`)
  else t.pass(tool, { skip: `${tool} is not installed (apt-get install -y ${pkg})` })
  return false
}

export interface Served {
  dir: string
  src: string
  repoDir: string
  cacheDir: string
  repo: Repository
  view: SnapshotView
  server: RunningServer
  url: string
  /** Environment for running the CLI on this repository. */
  env: NodeJS.ProcessEnv
}

/**
 * A repository with one snapshot of `files` (under job `job`) in a test
 * dir, and a server over it on 127.0.0.1:0. Everything is closed at teardown.
 */
export async function serveFiles(
  t: Test,
  files: Record<string, Buffer | string>,
  o: { job?: string; auth?: AuthConfig; cacheBytes?: number; prepare?: (src: string) => void; limits?: Partial<ServerLimits> } = {},
): Promise<Served> {
  const dir = t.testdir()
  const src = join(dir, 'src')
  writeTree(src, files)
  o.prepare?.(src)
  const tr = await makeTestRepo(dir, { password: PASSWORD, packSizeBytes: 4 * 1024 * 1024 })
  await backup(tr.repo, { hostname: 'testhost', username: 'tester', program: 'test', paths: [src], job: o.job ?? 'data', now: () => new Date('2026-03-04T05:06:07Z') })
  const view = await SnapshotView.open(tr.repo, { cache: { maxBytes: o.cacheBytes ?? 32 * 1024 * 1024 } })
  const server = await startServer({ view, host: '127.0.0.1', port: 0, auth: o.auth ?? { tls: false }, log: (l) => t.comment(l), limits: o.limits })
  t.teardown(async () => {
    await server.close(100)
    await closeRepository(tr.repo)
  })
  return {
    dir, src, repoDir: tr.repoDir, cacheDir: tr.cacheDir, repo: tr.repo, view, server, url: server.url,
    env: { PATH: process.env.PATH, HOME: dir, COLDSTORE_PASSWORD: PASSWORD, COLDSTORE_CACHE_DIR: tr.cacheDir, COLDSTORE_REPO: tr.repoDir },
  }
}

export interface CmdResult {
  code: number | null
  stdout: Buffer
  stderr: string
}

/** Runs a command with arguments (no shell), feeding `input` on stdin. */
export function run(cmd: string, args: readonly string[], o: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string; timeoutMs?: number } = {}): Promise<CmdResult> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(cmd, args, { env: o.env ?? process.env, cwd: o.cwd, encoding: 'buffer', maxBuffer: 512 * 1024 * 1024, timeout: o.timeoutMs ?? 120_000 }, (error, stdout, stderr) => {
      const code: unknown = error ? (error as { code?: unknown }).code : 0
      if (typeof code === 'string') return reject(error) // could not start (ENOENT...)
      resolvePromise({ code: typeof code === 'number' ? code : 1, stdout, stderr: stderr.toString() })
    })
    if (o.input !== undefined) child.stdin?.end(o.input)
    else child.stdin?.end()
  })
}

/** Runs the built CLI. */
export function cli(args: readonly string[], env: NodeJS.ProcessEnv): Promise<CmdResult> {
  return run(process.execPath, [CLI, ...args], { env })
}

export interface CurlResult {
  status: number
  headers: Record<string, string>
  body: Buffer
}

/** One curl request; `args` go before the URL. Headers of the last response, lower-cased names. */
export async function curl(url: string, args: readonly string[] = []): Promise<CurlResult> {
  // Headers to a file: curl 7.88 crashes now and then with `-D /dev/stderr` on a pipe.
  const tmp = mkdtempSync(join(tmpdir(), 'curl-'))
  const headerFile = join(tmp, 'headers')
  let text: string
  let r: CmdResult
  try {
    r = await run('curl', ['-s', '-S', '-D', headerFile, '-o', '-', ...args, url])
    text = existsSync(headerFile) ? readFileSync(headerFile, 'utf8') : ''
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  if (r.code !== 0) throw new Error(`curl ${args.join(' ')} ${url} failed (${r.code}): ${r.stderr}`)
  const blocks = text.split(/\r?\n\r?\n/).filter((b) => /^HTTP\//.test(b.trim()))
  const last = blocks[blocks.length - 1] ?? ''
  const lines = last.trim().split(/\r?\n/)
  const status = Number(/^HTTP\/[\d.]+ (\d+)/.exec(lines[0] ?? '')?.[1] ?? 0)
  const headers: Record<string, string> = {}
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':')
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
  }
  return { status, headers, body: r.stdout }
}

/** Peak resident memory of a process in bytes (Linux /proc VmHWM). */
export function peakRssBytes(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : NaN
}

/** Every file under `dir` → its bytes, by relative path. */
export function readAll(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else out.set(relative(dir, p), readFileSync(p))
    }
  }
  walk(dir)
  return out
}
