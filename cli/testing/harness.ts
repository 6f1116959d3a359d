/**
 * Test helpers for the reliability tests that drive the built CLI (not part of the product): sandboxes
 * outside any git work tree, fast seeded data, running the CLI (optionally under the file-system hook of
 * fs-hook.mjs that logs or SIGKILLs at an exact event), comparing restored trees with their sources,
 * and `COLDSTORE_STRESS=1` scaling.
 */
import { spawn, spawnSync } from 'node:child_process'
import { createCipheriv, createHash } from 'node:crypto'
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { CLI, ROOT } from './build.js'

/** The launcher users run (it execs node: the child's pid is node's). */
export const LAUNCHER = join(ROOT, 'bin', 'coldstore')

/** The long variants (npm run test:stress) run when COLDSTORE_STRESS=1. */
export const STRESS = process.env.COLDSTORE_STRESS === '1'

/** The preload that logs file-system events or kills at one (see fs-hook.mjs). */
export const FS_HOOK = fileURLToPath(new URL('./fs-hook.mjs', import.meta.url))

/** Seeded incompressible bytes, fast (AES-256-CTR keystream). */
export function randomData(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(seed).digest()
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(length))
}

/** Seeded text-like (compressible) bytes, fast. */
export function textData(seed: string, length: number): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'result', 'value', 'error', 'sample', 'model', 'train', 'loss', 'epoch', 'batch', 'step']
  const r = randomData(seed, Math.ceil(length / 3) + 16)
  const parts: string[] = []
  let n = 0
  for (let i = 0; n < length; i += 2) {
    const w = `${words[r[i % r.length] % words.length]} ${r[(i + 1) % r.length]}${i % 17 === 0 ? '\n' : ' '}`
    parts.push(w)
    n += w.length
  }
  return Buffer.from(parts.join('').slice(0, length))
}

/** A temporary directory outside the project (so no git work tree encloses it), removed at teardown. */
export function sandbox(t: Test, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `coldstore-${name}-`))
  t.teardown(() => {
    spawnSync('chmod', ['-R', 'u+rwX', dir])
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

/** The environment of a CLI run: a HOME, cache and config dirs of its own, the password. */
export function cliEnv(dir: string, password: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  mkdirSync(join(dir, 'home'), { recursive: true })
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'home'), LANG: 'C.UTF-8', COLDSTORE_PASSWORD: password,
    XDG_CACHE_HOME: join(dir, 'xdg-cache'), XDG_CONFIG_HOME: join(dir, 'xdg-config'), COLDSTORE_CACHE_DIR: join(dir, 'cache'),
    ...extra,
  }
}

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** Wall time from spawn to exit. */
  ms: number
}

/** What fs-hook.mjs should do in a run. */
export interface HookSpec {
  roots: { path: string; kind?: string }[]
  log?: string
  kill?: { event?: number; op?: string; kind?: string; nth?: number; when?: 'before' | 'after'; afterMs?: number }
}

/**
 * Runs the built CLI. `hook` loads fs-hook.mjs; `killAfterMs` SIGKILLs the process that long after
 * it was spawned. A run that outlives `timeoutMs` is killed and fails the caller's checks.
 */
export function runCli(
  args: readonly string[],
  o: {
    env: NodeJS.ProcessEnv; cwd?: string; hook?: HookSpec; killAfterMs?: number; timeoutMs?: number
    /** Run as this user and group (the test runs as root: a child with dropped privileges). */
    uid?: number; gid?: number
    /** Run through bin/coldstore, as users do (its malloc settings matter for memory figures). */
    launcher?: boolean
    /** Called with the child's pid once it started. */
    onSpawn?: (pid: number) => void
  },
): Promise<CliResult> {
  const env = { ...o.env }
  if (o.hook) {
    env.NODE_OPTIONS = `--import=${FS_HOOK}`
    env.COLDSTORE_TEST_FS_HOOK = JSON.stringify(o.hook)
  }
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const [cmd, argv] = o.launcher ? ['/bin/sh', [LAUNCHER, ...args]] : [process.execPath, [CLI, ...args]]
    const child = spawn(cmd, argv, { env, cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'], uid: o.uid, gid: o.gid })
    if (child.pid !== undefined) o.onSpawn?.(child.pid)
    const out: Buffer[] = []
    const errs: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => errs.push(d))
    const killer = o.killAfterMs !== undefined ? setTimeout(() => child.kill('SIGKILL'), o.killAfterMs) : undefined
    const guard = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 300_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(killer)
      clearTimeout(guard)
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(errs).toString(), ms: performance.now() - started })
    })
  })
}

/** Parses the one JSON document a `--json` run printed (a failure when it is not one). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function jsonOf(t: Test, r: CliResult, what: string): any {
  try {
    return JSON.parse(r.stdout)
  } catch (e) {
    t.fail(`${what}: stdout is not one JSON document: ${(e as Error).message}`, { stdout: r.stdout.slice(0, 2000), stderr: r.stderr.slice(0, 2000), code: r.code })
    return null
  }
}

/** Checks an exit code, showing the output when it differs. */
export function exits(t: Test, r: CliResult, code: number, what: string): boolean {
  return t.equal(r.code, code, `${what}: exit ${code}`, r.code === code ? {} : { stdout: r.stdout.slice(0, 3000), stderr: r.stderr.slice(0, 3000), signal: r.signal })
}

/** Events of a run logged by fs-hook.mjs. */
export interface HookLog {
  events: { n: number; op: string; kind: string; bytes: number; path: string }[]
  /** Bytes written below the roots that are not the cache ("the repository"). */
  repoBytes: number
  /** The event the run was killed at, if any. */
  killedAt: { n: number; op: string; kind: string; path: string } | null
  finished: boolean
  /** From the preload to the exit (a finished run). */
  elapsedMs: number
}

export function readHookLog(file: string): HookLog {
  const log: HookLog = { events: [], repoBytes: 0, killedAt: null, finished: false, elapsedMs: 0 }
  if (!existsSync(file)) return log
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(' ')
    if (f[0] === 'end') {
      log.finished = true
      log.elapsedMs = Number(f[3] ?? 0)
    }
    else if (f[0] === 'kill') log.killedAt = { n: Number(f[1]), op: f[2], kind: f[3], path: f.slice(4).join(' ') }
    else if (/^\d+$/.test(f[0] ?? '')) {
      const e = { n: Number(f[0]), op: f[1], kind: f[2], bytes: Number(f[3]), path: f.slice(4).join(' ') }
      log.events.push(e)
      if (e.op === 'write' && e.kind !== 'cache') log.repoBytes += e.bytes
    }
  }
  return log
}

/**
 * Compares a restored tree with its source, entry by entry (names as bytes): the same entries, files
 * byte-identical, symlinks with the same targets. Returns the number of entries compared and the differences.
 */
export function compareTrees(source: string, restored: string): { entries: number; differences: string[] } {
  const differences: string[] = []
  let entries = 0
  const walk = (a: Buffer, b: Buffer, rel: string): void => {
    const names = (d: Buffer): Buffer[] => (readdirSync(d, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare)
    const na = names(a)
    let nb: Buffer[]
    try {
      nb = names(b)
    } catch {
      differences.push(`${rel || '.'}: missing folder`)
      return
    }
    const setB = new Set(nb.map((n) => n.toString('hex')))
    for (const n of nb) if (!na.some((x) => x.equals(n))) differences.push(`${rel}/${n.toString()}: extra`)
    for (const n of na) {
      entries++
      const pa = Buffer.concat([a, Buffer.from('/'), n])
      const pb = Buffer.concat([b, Buffer.from('/'), n])
      const r = `${rel}/${n.toString()}`
      if (!setB.has(n.toString('hex'))) {
        differences.push(`${r}: missing`)
        continue
      }
      const sa = lstatSync(pa)
      const sb = lstatSync(pb)
      if (sa.isDirectory()) {
        if (!sb.isDirectory()) differences.push(`${r}: not a folder`)
        else walk(pa, pb, r)
      } else if (sa.isSymbolicLink()) {
        if (!sb.isSymbolicLink() || !readlinkSync(pa, { encoding: 'buffer' }).equals(readlinkSync(pb, { encoding: 'buffer' }))) differences.push(`${r}: symlink differs`)
      } else if (sa.isFile()) {
        if (!sb.isFile() || sa.size !== sb.size || !readFileSync(pa).equals(readFileSync(pb))) differences.push(`${r}: content differs`)
      } else if ((sa.mode & 0o170000) !== (sb.mode & 0o170000)) differences.push(`${r}: type differs`)
    }
  }
  walk(Buffer.from(source), Buffer.from(restored), '')
  return { entries, differences }
}

/** Sizes of the complete objects (temporary files left out) below a local repository, by name. */
export function repoObjects(repoDir: string): Map<string, number> {
  const out = new Map<string, number>()
  const walk = (dir: string, rel: string): void => {
    let names: string[]
    try {
      names = readdirSync(dir)
    } catch {
      return
    }
    for (const n of names) {
      if (n.startsWith('.tmp-')) continue
      const p = join(dir, n)
      const st = lstatSync(p)
      const r = rel ? `${rel}/${n}` : n
      if (st.isDirectory()) walk(p, r)
      else if (st.isFile()) out.set(r, st.size)
    }
  }
  walk(repoDir, '')
  return out
}

/** Peak resident memory of a running process so far (VmHWM), in bytes; 0 once it is gone. */
export function peakRss(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}
