/**
 * Side-by-side benchmark: coldstore against restic and borg on the same
 * generated project, one tool at a time, same machine, same data.
 *
 *   node dist/bench/run.js --size 1GB --rounds 2 --out bench-results/ [--json]
 *                          [--tools coldstore,restic,borg] [--work DIR] [--seed S] [--keep]
 *                          [--profile] [--micro] [--no-verify] [--drop-caches] [--settle 65] [--coldstore bin/coldstore]
 *
 * Steps, for every tool found on PATH (coldstore always): init, initial
 * snapshot, unchanged re-run, one snapshot per milestone (the dataset is
 * mutated once before each milestone, then every tool backs it up), full
 * restore of the latest snapshot (checked against the dataset's tree digest),
 * restore of one 80 MiB file, and a recursive listing of the latest snapshot.
 * Each command runs under /usr/bin/time for CPU seconds and peak RSS; the
 * repository's size (apparent bytes, as `du -sb`) is taken after every step.
 * Tools run one after another, never concurrently; the order rotates from one
 * step to the next so no tool always gets the coldest page cache.
 *
 * Output in --out: results.json (every raw number), report.md (tables and
 * target checks), chart.svg (time, repository size and peak RSS per step),
 * logs/ (each command's stdout and stderr). Progress lines go to stderr.
 *
 * Creating files right after deleting many is slow on ext4 (without a journal,
 * inodes freed in the last 60 s, or 360 s while their table block is dirty,
 * are skipped one by one when allocating: restores of 16k files took 1.5–2x
 * longer). So the harness syncs and waits until --settle seconds (65) have
 * passed since it last deleted a tree before each full restore, and keeps the
 * full-restore targets until all tools have restored when the disk allows.
 *
 * Disk: the work directory (default <out>/work) holds the dataset (--size,
 * growing ~1 % per round), one repository per tool (~0.65 × --size each at
 * this mix) and the full-restore targets (--size each; side by side when
 * there is room, else one at a time): plan for about 4.5 × --size free.
 */
import { spawn, spawnSync } from 'node:child_process'
import {
  accessSync, closeSync, constants as fsConstants, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readSync,
  readdirSync, rmSync, statfsSync, writeFileSync,
} from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import { basename, delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import {
  DEFAULT_SEED, SINGLE_FILE, compressibility, fileDigest, formatBytes, generateDataset, mutateDataset, parseSize,
  planBudget, treeDigest, walkFiles, type GenerateResult, type MutationResult, type RatioRow, type TreeDigest,
} from './dataset.js'
import { profileMarkdown, summarizeProfiles, type ProfileSummary } from './profile.js'
import { renderChart, renderMemoryChart, stepLabel } from './chart.js'
import { MemorySampler, samplesTsv, thinSamples, type MemorySample, type PeakBreakdown } from './memwatch.js'

const HERE = dirname(fileURLToPath(import.meta.url))
/** The project root (bench/ is compiled to dist/bench/). */
const ROOT = resolve(HERE, basename(resolve(HERE, '..')) === 'dist' ? '../..' : '..')
const PASSWORD = 'bench-password-not-secret'
const MiB = 1024 * 1024

// ---------------------------------------------------------------------------
// Options

export interface Options {
  size: number
  rounds: number
  out: string
  work: string
  seed: string
  tools: string[]
  json: boolean
  keep: boolean
  verify: boolean
  profile: boolean
  micro: boolean
  dropCaches: boolean
  /** Seconds to wait after deleting many files before a full restore (ext4 "recently deleted" inodes). */
  settleSeconds: number
  coldstore: string[]
  /** Shown as coldstore's version (default: its --version and the git state of the project). */
  coldstoreVersion: string
  borgEncryption: string
  argv: string[]
}

const USAGE = `usage: node dist/bench/run.js [--size 1GB] [--rounds 2] [--out bench-results] [--work DIR] [--seed S]
       [--tools coldstore,restic,borg] [--json] [--keep] [--profile] [--micro] [--no-verify] [--drop-caches] [--settle 65]
       [--coldstore bin/coldstore] [--coldstore-version TEXT] [--borg-encryption repokey]`

export function parseArgs(argv: string[]): Options {
  const o: Options = {
    size: parseSize('1GB'), rounds: 2, out: 'bench-results', work: '', seed: DEFAULT_SEED,
    tools: ['coldstore', 'restic', 'borg'], json: false, keep: false, verify: true, profile: false, micro: false,
    dropCaches: false, settleSeconds: 65, coldstore: defaultColdstore(), coldstoreVersion: '', borgEncryption: 'repokey', argv,
  }
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]
    let v: string | undefined
    const eq = a.indexOf('=')
    if (a.startsWith('--') && eq > 0) {
      v = a.slice(eq + 1)
      a = a.slice(0, eq)
    }
    const val = (): string => {
      const x = v ?? argv[++i]
      if (x === undefined) throw new UsageError(`${a} needs a value`)
      return x
    }
    switch (a) {
      case '--size': o.size = parseSize(val()); break
      case '--rounds': o.rounds = Number(val()); break
      case '--out': o.out = val(); break
      case '--work': o.work = val(); break
      case '--seed': o.seed = val(); break
      case '--tools': o.tools = val().split(',').map((s) => s.trim()).filter(Boolean); break
      case '--json': o.json = true; break
      case '--keep': o.keep = true; break
      case '--no-verify': o.verify = false; break
      case '--profile': o.profile = true; break
      case '--micro': o.micro = true; break
      case '--drop-caches': o.dropCaches = true; break
      case '--settle': o.settleSeconds = Number(val()); break
      case '--coldstore': o.coldstore = val().split(/\s+/).filter(Boolean); break
      case '--coldstore-version': o.coldstoreVersion = val(); break
      case '--borg-encryption': o.borgEncryption = val(); break
      case '-h': case '--help': throw new UsageError('')
      default: throw new UsageError(`unknown option ${a}`)
    }
  }
  if (!Number.isInteger(o.rounds) || o.rounds < 0 || o.rounds > 50) throw new UsageError('--rounds must be 0..50')
  if (o.size < 1e6) throw new UsageError('--size must be at least 1MB (the harness is meant for 100MB..100GB)')
  for (const t of o.tools) if (!['coldstore', 'restic', 'borg'].includes(t)) throw new UsageError(`unknown tool ${t}`)
  o.out = resolve(o.out)
  o.work = resolve(o.work || join(o.out, 'work'))
  return o
}

class UsageError extends Error {}

/** bin/coldstore (the launcher users run: it sets glibc's mmap threshold) or else node dist/cli/main.js. */
function defaultColdstore(): string[] {
  const launcher = join(ROOT, 'bin', 'coldstore')
  return existsSync(launcher) ? [launcher] : [process.execPath, join(ROOT, 'dist', 'cli', 'main.js')]
}

/**
 * `node [flags] <main.js>` for the coldstore command, so it can run under
 * --cpu-prof (not allowed in NODE_OPTIONS); the launcher's malloc setting
 * goes into the environment and its V8 flag onto the command line. Null when the command is neither form.
 */
function coldstoreNodeArgv(cs: string[], nodeFlags: string[]): { argv: string[]; env: Record<string, string> } | null {
  if (cs.length === 1 && basename(cs[0]) === 'coldstore') {
    const dist = resolve(dirname(cs[0]), '..', 'dist')
    const main = existsSync(join(dist, 'bundle', 'coldstore.js')) ? join(dist, 'bundle', 'coldstore.js') : join(dist, 'cli', 'main.js')
    if (!existsSync(main)) return null
    return { argv: [process.execPath, '--max-semi-space-size=2', '--heap-growing-percent=30', '--expose-gc', ...nodeFlags, main], env: { MALLOC_MMAP_THRESHOLD_: '524288', MALLOC_ARENA_MAX: '2' } }
  }
  if (/^node(js)?$/.test(basename(cs[0])) || cs[0] === process.execPath) return { argv: [cs[0], ...nodeFlags, ...cs.slice(1)], env: {} }
  return null
}

function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`
}

// ---------------------------------------------------------------------------
// Progress

const t0 = Date.now()
function clock(): string {
  const s = Math.floor((Date.now() - t0) / 1000)
  return `+${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
}
function say(line: string): void {
  process.stderr.write(`[${clock()}] ${line}\n`)
}
function dur(s: number): string {
  if (!Number.isFinite(s)) return '?'
  const h = Math.floor(s / 3600)
  const m = Math.floor(s / 60) % 60
  const sec = Math.round(s % 60)
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`
}

// ---------------------------------------------------------------------------
// Tools

type ToolName = 'coldstore' | 'restic' | 'borg'
type StepKind = 'init' | 'initial' | 'rerun' | 'milestone' | 'restore' | 'restore-file' | 'ls'

interface Cmd {
  argv: string[]
  cwd: string
  env: NodeJS.ProcessEnv
}

interface Tool {
  name: ToolName
  version: string
  commandLine: string
  repo: string
  /** Exit codes that mean "done, with warnings". */
  warningCodes: number[]
  init(): Cmd
  snapshot(label: string): Cmd
  /** Restores the latest snapshot into `target`; returns the command and where the dataset root lands. */
  restore(target: string): { cmd: Cmd; root: string }
  restoreFile(target: string, rel: string): { cmd: Cmd; file: string }
  ls(): Cmd
}

function onPath(name: string): string | null {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    if (!d) continue
    const p = join(d, name)
    try {
      accessSync(p, fsConstants.X_OK)
      return p
    } catch {
      // not here
    }
  }
  return null
}

function firstLine(argv: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8' })
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0].trim()
}

/** The environment every tool runs with: no inherited tool settings, HOME and caches in the work dir. */
function baseEnv(work: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(RESTIC_|BORG_|COLDSTORE_|XDG_)/.test(k) || k === 'NODE_OPTIONS') continue
    env[k] = v
  }
  env.HOME = join(work, 'home')
  env.XDG_CACHE_HOME = join(work, 'home', '.cache')
  env.XDG_CONFIG_HOME = join(work, 'home', '.config')
  return env
}

function makeTools(o: Options, data: string): { tools: Tool[]; missing: string[] } {
  const work = o.work
  const env = baseEnv(work)
  const tools: Tool[] = []
  const missing: string[] = []
  const dataName = basename(data)
  for (const name of o.tools as ToolName[]) {
    const repo = join(work, 'repos', name)
    if (name === 'coldstore') {
      const cs = o.coldstore
      const e = { ...env, COLDSTORE_PASSWORD: PASSWORD }
      const g = ['--repo', repo, '--cache-dir', join(work, 'cache', 'coldstore'), '-q']
      tools.push({
        name, repo, warningCodes: [3],
        version: o.coldstoreVersion || `${firstLine([...cs, '--version'], e)} (${gitDescribe()})`,
        commandLine: `${cs.map((x) => x.replace(ROOT + '/', '')).join(' ')} snapshot ${dataName} (zstd 3, 16 MiB packs, AES-256-GCM)`,
        init: () => ({ argv: [...cs, 'init', ...g], cwd: work, env: e }),
        snapshot: () => ({ argv: [...cs, 'snapshot', dataName, ...g, '--json'], cwd: work, env: e }),
        restore: (target) => ({ cmd: { argv: [...cs, 'restore', 'latest', '--target', target, ...g], cwd: work, env: e }, root: join(target, dataName) }),
        restoreFile: (target, rel) => ({
          cmd: { argv: [...cs, 'restore', `latest:${dataName}/${rel}`, '--target', target, ...g], cwd: work, env: e },
          file: join(target, basename(rel)),
        }),
        ls: () => ({ argv: [...cs, 'ls', 'latest', '--recursive', ...g], cwd: work, env: e }),
      })
    } else if (name === 'restic') {
      const bin = onPath('restic')
      if (!bin) {
        missing.push(name)
        continue
      }
      const e = { ...env, RESTIC_PASSWORD: PASSWORD }
      const g = ['--repo', repo, '--cache-dir', join(work, 'cache', 'restic'), '-q']
      tools.push({
        name, repo, warningCodes: [3],
        version: firstLine([bin, 'version'], e),
        commandLine: `restic backup --compression auto ${dataName} (repository v2)`,
        init: () => ({ argv: [bin, 'init', '--repository-version', '2', ...g], cwd: work, env: e }),
        snapshot: () => ({ argv: [bin, 'backup', '--compression', 'auto', ...g, dataName], cwd: work, env: e }),
        // Backed up as a relative path, the dataset is /project in restic's tree.
        restore: (target) => ({ cmd: { argv: [bin, 'restore', 'latest', '--target', target, ...g], cwd: work, env: e }, root: join(target, dataName) }),
        restoreFile: (target, rel) => ({
          cmd: { argv: [bin, 'restore', 'latest', '--target', target, '--include', `/${dataName}/${rel}`, ...g], cwd: work, env: e },
          file: join(target, dataName, rel),
        }),
        ls: () => ({ argv: [bin, 'ls', 'latest', ...g], cwd: work, env: e }),
      })
    } else {
      const bin = onPath('borg')
      if (!bin) {
        missing.push(name)
        continue
      }
      const base = join(work, 'borg-base')
      const e = {
        ...env, BORG_PASSPHRASE: PASSWORD, BORG_BASE_DIR: base, BORG_CACHE_DIR: join(work, 'cache', 'borg'),
        BORG_CONFIG_DIR: join(base, 'config'), BORG_SECURITY_DIR: join(base, 'security'), BORG_KEYS_DIR: join(base, 'keys'),
        BORG_DISPLAY_PASSPHRASE: 'no', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
      }
      let last = ''
      tools.push({
        name, repo, warningCodes: [1],
        version: firstLine([bin, '--version'], e),
        commandLine: `borg create --compression zstd,3 (borg init -e ${o.borgEncryption})`,
        init: () => ({ argv: [bin, 'init', '-e', o.borgEncryption, repo], cwd: work, env: e }),
        snapshot: (label) => {
          last = label
          return { argv: [bin, 'create', '--compression', 'zstd,3', `${repo}::${label}`, dataName], cwd: work, env: e }
        },
        restore: (target) => ({ cmd: { argv: [bin, 'extract', `${repo}::${last}`], cwd: target, env: e }, root: join(target, dataName) }),
        restoreFile: (target, rel) => ({
          cmd: { argv: [bin, 'extract', `${repo}::${last}`, `${dataName}/${rel}`], cwd: target, env: e },
          file: join(target, dataName, rel),
        }),
        ls: () => ({ argv: [bin, 'list', `${repo}::${last}`], cwd: work, env: e }),
      })
    }
  }
  return { tools, missing }
}

function gitDescribe(): string {
  const r = spawnSync('git', ['-C', ROOT, 'describe', '--always', '--dirty'], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : 'unknown'
}

// ---------------------------------------------------------------------------
// Measuring one command

export interface Measured {
  exitCode: number | null
  signal: string | null
  wallSeconds: number
  userSeconds: number | null
  sysSeconds: number | null
  cpuSeconds: number | null
  maxRssBytes: number | null
  stdoutFile: string
  stderrFile: string
  /** RSS and its parts, sampled from /proc every 0.5 s (see memwatch.ts); null off Linux. */
  memory: { samples: MemorySample[]; peak: PeakBreakdown | null } | null
}

const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null

/** Runs `cmd` under /usr/bin/time, stdout and stderr to files; prints a heartbeat every 30 s. */
async function measure(cmd: Cmd, logBase: string, label: string): Promise<Measured> {
  const timeFile = `${logBase}.time`
  const stdoutFile = `${logBase}.out`
  const stderrFile = `${logBase}.err`
  const outFd = openSync(stdoutFile, 'w')
  const errFd = openSync(stderrFile, 'w')
  const argv = TIME ? [TIME, '-f', '%e %U %S %M', '-o', timeFile, ...cmd.argv] : cmd.argv
  const started = process.hrtime.bigint()
  const beat = setInterval(() => say(`  ${label}: still running (${dur(Number(process.hrtime.bigint() - started) / 1e9)})`), 30_000)
  try {
    let sampler: MemorySampler | null = null
    const { code, signal } = await new Promise<{ code: number | null; signal: string | null }>((res, rej) => {
      const child = spawn(argv[0], argv.slice(1), { cwd: cmd.cwd, env: cmd.env, stdio: ['ignore', outFd, errFd] })
      if (child.pid !== undefined && existsSync('/proc/self/smaps')) sampler = new MemorySampler(child.pid, { intervalMs: 500 }).start()
      child.on('error', rej)
      child.on('exit', (c, s) => res({ code: c, signal: s }))
    })
    const trace = (sampler as MemorySampler | null)?.stop() ?? null
    if (trace) writeFileSync(`${logBase}.mem.tsv`, samplesTsv(trace.samples))
    const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9
    let user: number | null = null
    let sys: number | null = null
    let rss: number | null = null
    if (TIME && existsSync(timeFile)) {
      const line = readFileSync(timeFile, 'utf8').trim().split('\n').reverse().find((l) => /^[\d.]+ [\d.]+ [\d.]+ \d+$/.test(l))
      if (line) {
        const [, u, s, m] = line.split(' ').map(Number)
        user = u
        sys = s
        rss = m * 1024
      }
    }
    return {
      exitCode: code, signal, wallSeconds, userSeconds: user, sysSeconds: sys,
      cpuSeconds: user !== null && sys !== null ? user + sys : null, maxRssBytes: rss, stdoutFile, stderrFile,
      memory: trace ? { samples: thinSamples(trace.samples, 200), peak: trace.peak && { ...trace.peak, byName: trace.peak.byName.slice(0, 8) } } : null,
    }
  } finally {
    clearInterval(beat)
    closeSync(outFd)
    closeSync(errFd)
  }
}

/** Apparent size of everything under `dir` (like `du -sb`, without directories). */
export function dirBytes(dir: string): number {
  if (!existsSync(dir)) return 0
  let n = 0
  for (const e of walkFiles(dir)) if (e.kind === 'file') n += lstatSync(join(dir, e.rel)).size
  return n
}

function tail(file: string, lines = 6): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

function countLines(file: string): number {
  const fd = openSync(file, 'r')
  const buf = Buffer.allocUnsafe(MiB)
  let n = 0
  try {
    for (;;) {
      const k = readSync(fd, buf, 0, buf.length, null)
      if (k <= 0) break
      for (let i = 0; i < k; i++) if (buf[i] === 10) n++
    }
  } finally {
    closeSync(fd)
  }
  return n
}

// ---------------------------------------------------------------------------
// Results

export interface StepResult {
  tool: ToolName
  kind: StepKind
  /** initial, rerun, m1.., restore, restore-file, ls, init. */
  step: string
  round: number | null
  ok: boolean
  warning: boolean
  exitCode: number | null
  wallSeconds: number
  userSeconds: number | null
  sysSeconds: number | null
  cpuSeconds: number | null
  maxRssBytes: number | null
  /** Repository size after the step (apparent bytes). */
  repoBytes: number
  /** Growth of the repository during the step. */
  repoAddedBytes: number
  /** Restores: whether the restored tree/file matched the dataset; null when not checked. */
  verified: boolean | null
  /** ls: lines printed. */
  lines?: number
  /** coldstore snapshots: the `stats` of `snapshot --json`. */
  toolStats?: Record<string, number>
  /** The memory curve (at most 200 samples, the highest kept) and what the sampled peak was made of. */
  memory?: { samples: MemorySample[]; peak: PeakBreakdown | null } | null
  error?: string
  detail?: string
}

export interface Results {
  harness: { command: string; date: string; seconds: number; gitDescribe: string }
  machine: Machine
  options: Omit<Options, 'argv' | 'coldstore'> & { coldstore: string }
  tools: { name: string; version: string; command: string }[]
  missingTools: string[]
  dataset: {
    dir: string
    generate: GenerateResult | null
    reused: boolean
    budget: ReturnType<typeof planBudget>
    compressibility: RatioRow[]
    mutations: MutationResult[]
    finalDigest: TreeDigest | null
    singleFile: { path: string; bytes: number }
  }
  steps: StepResult[]
  targets: Target[]
  profiles: (ProfileSummary & { name: string; wallSeconds: number })[]
  micro: unknown
}

export interface Machine {
  cpu: string
  cores: number
  memoryBytes: number
  kernel: string
  os: string
  node: string
  filesystem: string
  diskFreeBytes: number
}

function machine(work: string): Machine {
  let os = 'unknown'
  try {
    os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os
  } catch {
    // not Linux
  }
  let fs = 'unknown'
  try {
    let best = ''
    for (const l of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [dev, mnt, type, opts] = l.split(' ')
      if (mnt && work.startsWith(mnt) && mnt.length >= best.length) {
        best = mnt
        fs = `${type} on ${dev} (${mnt}; ${opts})`
      }
    }
  } catch {
    // no /proc
  }
  let free = 0
  try {
    const s = statfsSync(work)
    free = s.bavail * s.bsize
  } catch {
    // older Node
  }
  return {
    cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryBytes: totalmem(), kernel: release(), os,
    node: process.version, filesystem: fs, diskFreeBytes: free,
  }
}

// ---------------------------------------------------------------------------
// Targets of issue 3

export interface Target {
  target: string
  measured: string
  met: boolean | null
}

function find(steps: StepResult[], tool: string, step: string): StepResult | undefined {
  return steps.find((s) => s.tool === tool && s.step === step && s.ok)
}

export function checkTargets(r: Pick<Results, 'steps' | 'micro'>, rounds: number): Target[] {
  const out: Target[] = []
  const s = r.steps
  const ratio = (a: number | undefined | null, b: number | undefined | null): number | null => (a != null && b != null && b > 0 ? a / b : null)
  const fmt = (x: number | null): string => (x === null ? 'n/a' : `${x.toFixed(2)}×`)
  const add = (target: string, x: number | null, limit: number, extra = ''): void => {
    out.push({ target, measured: `${fmt(x)}${extra}`, met: x === null ? null : x <= limit })
  }
  const cs = (step: string): StepResult | undefined => find(s, 'coldstore', step)
  add('initial snapshot ≤ 0.5 × borg', ratio(cs('initial')?.wallSeconds, find(s, 'borg', 'initial')?.wallSeconds), 0.5)
  add('initial snapshot ≤ 0.4 × restic', ratio(cs('initial')?.wallSeconds, find(s, 'restic', 'initial')?.wallSeconds), 0.4)
  add('repository after initial ≤ 1.02 × restic', ratio(cs('initial')?.repoBytes, find(s, 'restic', 'initial')?.repoBytes), 1.02)
  add('unchanged re-run ≤ 0.5 × restic', ratio(cs('rerun')?.wallSeconds, find(s, 'restic', 'rerun')?.wallSeconds), 0.5)
  for (let k = 1; k <= rounds; k++) {
    add(`milestone m${k} ≤ 0.3 × borg`, ratio(cs(`m${k}`)?.wallSeconds, find(s, 'borg', `m${k}`)?.wallSeconds), 0.3)
    const a = cs(`m${k}`)?.repoAddedBytes
    const b = find(s, 'restic', `m${k}`)?.repoAddedBytes
    out.push({
      target: `milestone m${k} adds ≤ restic`,
      measured: a != null && b != null ? `${formatBytes(a)} vs ${formatBytes(b)}` : 'n/a',
      met: a != null && b != null ? a <= b : null,
    })
  }
  add('full restore ≤ 0.5 × borg', ratio(cs('restore')?.wallSeconds, find(s, 'borg', 'restore')?.wallSeconds), 0.5)
  const one = cs('restore-file')?.wallSeconds
  out.push({ target: 'single-file restore (80 MiB) < 0.3 s', measured: one != null ? `${one.toFixed(2)} s` : 'n/a', met: one != null ? one < 0.3 : null })
  const rss = s.filter((x) => x.tool === 'coldstore' && x.maxRssBytes != null).map((x) => x.maxRssBytes!)
  const peak = rss.length ? Math.max(...rss) : null
  out.push({ target: 'peak RSS ≤ 300 MB at every step', measured: peak != null ? `${(peak / 1e6).toFixed(0)} MB` : 'n/a', met: peak != null ? peak <= 300e6 : null })
  const micro = r.micro as { results?: { bench: string; input: string; mbps: number }[] } | null
  const chunk = micro?.results?.filter((x) => x.bench === 'chunker').map((x) => x.mbps)
  if (chunk?.length) {
    const m = Math.min(...chunk)
    out.push({ target: 'chunker ≥ 1 GB/s on one core', measured: `${m} MB/s (slowest input)`, met: m >= 1000 })
  }
  return out
}

// ---------------------------------------------------------------------------
// Report

const TOOL_ORDER: ToolName[] = ['coldstore', 'restic', 'borg']

function stepOrder(rounds: number): string[] {
  return ['initial', 'rerun', ...Array.from({ length: rounds }, (_, i) => `m${i + 1}`), 'restore', 'restore-file', 'ls']
}

function mib(n: number | null | undefined): string {
  if (n == null) return '–'
  if (Math.abs(n) < MiB) return formatBytes(n)
  return n >= 100 * MiB ? `${(n / MiB).toFixed(0)} MiB` : `${(n / MiB).toFixed(1)} MiB`
}

function metricTable(r: Results, title: string, steps: string[], get: (s: StepResult) => number | null, show: (n: number) => string): string {
  const tools = TOOL_ORDER.filter((t) => r.tools.some((x) => x.name === t))
  const peers = tools.filter((t) => t !== 'coldstore')
  const head = ['step', ...tools, ...(tools.includes('coldstore') ? peers.map((p) => `coldstore / ${p}`) : [])]
  const lines = [`**${title}**`, '', `| ${head.join(' | ')} |`, `|${head.map((_, i) => (i ? '---:' : '---')).join('|')}|`]
  for (const step of steps) {
    const cells = [stepLabel(step)]
    const vals: Record<string, number | null> = {}
    for (const t of tools) {
      const s = r.steps.find((x) => x.tool === t && x.step === step)
      const v = s && s.ok ? get(s) : null
      vals[t] = v
      let cell = v == null ? (s && !s.ok ? 'failed' : '–') : show(v)
      if (s && s.verified === false) cell += ' ⚠ mismatch'
      cells.push(cell)
    }
    if (tools.includes('coldstore')) {
      for (const p of peers) {
        const a = vals.coldstore
        const b = vals[p]
        cells.push(a != null && b != null && b > 0 ? `${(a / b).toFixed(2)}` : '–')
      }
    }
    lines.push(`| ${cells.join(' | ')} |`)
  }
  return lines.join('\n') + '\n'
}

/**
 * coldstore's memory per step, from the 0.5 s samples (memory.svg draws the curves): the peak, the sample
 * with the highest RSS and what it was made of, and where in the step it came (a peak at the end of a long
 * step, or one that keeps rising, is the sign of something that grows with the data).
 */
function memoryTable(r: Results, steps: string[]): string {
  const rows = steps.map((step) => r.steps.find((s) => s.tool === 'coldstore' && s.step === step && s.ok)).filter((s): s is StepResult => Boolean(s?.memory?.samples.length))
  if (!rows.length) return ''
  const L = [
    "**coldstore's memory per step** (MiB; sampled every 0.5 s from /proc; anonymous = heaps, buffers, malloc; file = the program and libraries; [heap] = the main malloc arena; the curves are in memory.svg)",
    '',
    '| step | peak RSS | highest sample | anonymous | file-backed | index map | [heap] | at | RSS at ¼ / ½ / ¾ / end |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const s of rows) {
    const m = s.memory!.samples
    const top = m.reduce((a, b) => (b.rss > a.rss ? b : a))
    const end = m[m.length - 1].t || 1
    const at = (f: number): string => ((m.find((x) => x.t >= f * end) ?? m[m.length - 1]).rss / MiB).toFixed(0)
    L.push(`| ${stepLabel(s.step)} | ${mib(s.maxRssBytes)} | ${(top.rss / MiB).toFixed(0)} | ${(top.anon / MiB).toFixed(0)} | ${(top.file / MiB).toFixed(0)} | ${(top.indexMap / MiB).toFixed(0)} | ${((top.brk ?? 0) / MiB).toFixed(0)} | ${Math.round((100 * top.t) / end)} % | ${[0.25, 0.5, 0.75].map(at).join(' / ')} / ${(m[m.length - 1].rss / MiB).toFixed(0)} |`)
  }
  return L.join('\n') + '\n'
}

export function markdownReport(r: Results): string {
  const steps = stepOrder(r.options.rounds)
  const snapSteps = steps.filter((s) => s === 'initial' || s === 'rerun' || /^m\d+$/.test(s))
  const L: string[] = []
  L.push(`## ${formatBytes(r.options.size)} dataset, ${r.options.rounds} milestone round${r.options.rounds === 1 ? '' : 's'} — ${r.harness.date.slice(0, 10)}`)
  L.push('')
  L.push('```sh')
  L.push(r.harness.command)
  L.push('```')
  L.push('')
  L.push(`Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${(r.machine.memoryBytes / 2 ** 30).toFixed(0)} GiB RAM, ${r.machine.os}, Linux ${r.machine.kernel}, Node ${r.machine.node}; work dir on ${r.machine.filesystem.split(' (')[0]}.`)
  L.push('')
  L.push('Tools:')
  L.push('')
  for (const t of r.tools) L.push(`- **${t.name}** ${t.version}: \`${t.command}\``)
  if (r.missingTools.length) L.push(`- not found on PATH (skipped): ${r.missingTools.join(', ')}`)
  L.push('')
  const d = r.dataset
  L.push(`Dataset: seed \`${r.options.seed}\`, ${d.generate ? `${d.generate.files} files, ${formatBytes(d.generate.bytes)}, generated in ${d.generate.seconds.toFixed(1)} s` : 'reused'}; after the milestones ${d.finalDigest ? `${d.finalDigest.files} files, ${formatBytes(d.finalDigest.bytes)}` : ''}. zstd-3 ratio (1 MiB blocks) ${d.compressibility.find((x) => x.category === 'all')?.ratio.toFixed(2) ?? '?'}×.`)
  L.push('')
  L.push('Times are wall-clock seconds of the whole command (including opening the repository and its key derivation); CPU is user + system seconds; RSS is the peak resident set of the largest process; repository sizes are apparent bytes (`du -sb`). Warm page cache' + (r.options.dropCaches ? ' dropped before each step.' : ' (the dataset was just written).'))
  L.push('')
  L.push(metricTable(r, 'Time (s)', steps, (s) => s.wallSeconds, (n) => n.toFixed(n < 10 ? 2 : 1)))
  L.push(metricTable(r, 'CPU (user + sys, s)', steps, (s) => s.cpuSeconds, (n) => n.toFixed(n < 10 ? 2 : 1)))
  L.push(metricTable(r, 'Peak RSS', steps, (s) => s.maxRssBytes, (n) => mib(n)))
  L.push(memoryTable(r, steps))
  L.push(metricTable(r, 'Repository size after the step', snapSteps, (s) => s.repoBytes, (n) => mib(n)))
  L.push(metricTable(r, 'Added to the repository by the step', snapSteps, (s) => s.repoAddedBytes, (n) => mib(n)))
  const failed = r.steps.filter((s) => !s.ok || s.verified === false || s.warning)
  if (failed.length) {
    L.push('Problems:')
    L.push('')
    for (const s of failed) L.push(`- ${s.tool} ${stepLabel(s.step)}: ${!s.ok ? `failed (exit ${s.exitCode})` : s.verified === false ? 'restored data did not match' : 'finished with warnings'}${s.error ? ` — \`${s.error.replace(/\n/g, ' ⏎ ').slice(0, 300)}\`` : ''}${s.detail ? ` (${s.detail})` : ''}`)
    L.push('')
  }
  const verified = r.steps.filter((s) => s.verified === true).map((s) => `${s.tool} ${s.step}`)
  if (verified.length) L.push(`Restores checked against the dataset (tree digest / file BLAKE3): ${verified.join(', ')}.\n`)
  L.push('Targets (issue 3; coldstore time / peer time):')
  L.push('')
  L.push('| target | measured | met |')
  L.push('|---|---:|:---:|')
  for (const t of r.targets) L.push(`| ${t.target} | ${t.measured} | ${t.met === null ? '–' : t.met ? 'yes' : '**no**'} |`)
  L.push('')
  if (r.dataset.mutations.length) {
    L.push('Milestones:')
    L.push('')
    for (const m of r.dataset.mutations) {
      L.push(`- m${m.round}: ${m.editedFiles} files edited, ${m.addedFiles} added, ${m.deletedFiles} deleted, ${formatBytes(m.logBytesAppended)} appended to logs, ${m.dbPagesWritten} DB pages rewritten + ${m.dbPagesAppended} appended, ${m.inserted ? `${formatBytes(m.inserted.bytes)} inserted at ${formatBytes(m.inserted.offset)} into ${m.inserted.file}` : ''}, ${m.renamed ? `${m.renamed.from} renamed to ${m.renamed.to}` : ''}; ~${formatBytes(m.changedBytes)} of new or rewritten content`)
    }
    L.push('')
  }
  for (const p of r.profiles) {
    L.push(`CPU profile of coldstore ${p.name === 'snapshot' ? 'taking an initial snapshot of the final tree into a new repository' : 'restoring that snapshot'} (${p.wallSeconds.toFixed(1)} s wall with the profiler on; self time per function over all threads; native code such as zstd, AES and BLAKE3 is counted in the JavaScript function that calls it):`)
    L.push('')
    L.push(profileMarkdown(p))
  }
  return L.join('\n')
}

// ---------------------------------------------------------------------------
// The run

interface Phase {
  kind: StepKind
  step: string
  round: number | null
  /** Rough cost in "passes over the dataset", for the remaining-time estimate. */
  weight: number
}

function phases(rounds: number): Phase[] {
  return [
    { kind: 'init', step: 'init', round: null, weight: 0.01 },
    { kind: 'initial', step: 'initial', round: null, weight: 1 },
    { kind: 'rerun', step: 'rerun', round: null, weight: 0.05 },
    ...Array.from({ length: rounds }, (_, i): Phase => ({ kind: 'milestone', step: `m${i + 1}`, round: i + 1, weight: 0.25 })),
    { kind: 'restore', step: 'restore', round: null, weight: 1.3 },
    { kind: 'restore-file', step: 'restore-file', round: null, weight: 0.02 },
    { kind: 'ls', step: 'ls', round: null, weight: 0.02 },
  ]
}

function dropCaches(enabled: boolean, warned: { done: boolean }): void {
  spawnSync('sync')
  if (!enabled) return
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3')
  } catch (e) {
    if (!warned.done) say(`warning: cannot drop caches (${(e as Error).message}); continuing with a warm cache`)
    warned.done = true
  }
}

function findFile(dir: string, name: string): string | null {
  if (!existsSync(dir)) return null
  for (const e of walkFiles(dir)) if (e.kind === 'file' && basename(e.rel) === name) return join(dir, e.rel)
  return null
}

/** First differing paths between two trees (for the report when a restore does not match). */
function firstDifferences(a: string, b: string, limit = 5): string[] {
  const list = (root: string): Map<string, string> => {
    const m = new Map<string, string>()
    if (!existsSync(root)) return m
    for (const e of walkFiles(root)) {
      const p = join(root, e.rel)
      m.set(e.rel, e.kind === 'file' ? `${lstatSync(p).size}` : e.kind)
    }
    return m
  }
  const ma = list(a)
  const mb = list(b)
  const out: string[] = []
  for (const [k, v] of ma) {
    if (out.length >= limit) break
    if (!mb.has(k)) out.push(`missing ${k}`)
    else if (mb.get(k) !== v) out.push(`differs ${k} (${v} vs ${mb.get(k)})`)
  }
  for (const k of mb.keys()) {
    if (out.length >= limit) break
    if (!ma.has(k)) out.push(`extra ${k}`)
  }
  if (!out.length) {
    // Same names and sizes: compare contents.
    for (const [k, v] of ma) {
      if (out.length >= limit) break
      if (/^\d+$/.test(v) && fileDigest(join(a, k)) !== fileDigest(join(b, k))) out.push(`content ${k}`)
    }
  }
  return out
}

async function runMicro(): Promise<unknown> {
  const script = join(ROOT, 'dist', 'bench', 'micro.js')
  if (!existsSync(script)) return null
  say('micro-benchmarks (dist/bench/micro.js --json)')
  const r = spawnSync(process.execPath, [script, '--json'], { encoding: 'utf8', maxBuffer: 64 * MiB })
  if (r.status !== 0) {
    say(`micro-benchmarks failed: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`)
    return null
  }
  return JSON.parse(r.stdout) as unknown
}

export async function run(o: Options): Promise<Results> {
  mkdirSync(o.out, { recursive: true })
  mkdirSync(o.work, { recursive: true })
  const logs = join(o.out, 'logs')
  rmSync(logs, { recursive: true, force: true })
  mkdirSync(logs, { recursive: true })
  const m = machine(o.work)
  const data = join(o.work, 'project')
  const need = o.size * 4.5
  say(`coldstore bench: ${formatBytes(o.size)}, ${o.rounds} rounds, tools ${o.tools.join(',')}; work dir ${o.work} (${formatBytes(m.diskFreeBytes)} free, ~${formatBytes(need)} needed)`)
  if (m.diskFreeBytes && m.diskFreeBytes < need) say(`warning: the work dir may run out of space (${formatBytes(m.diskFreeBytes)} free, plan for ~${formatBytes(need)})`)

  // Fresh repositories, caches and restore targets; the dataset is reused only when it is pristine.
  let lastBulkDelete = 0
  const bulkRm = (path: string): void => {
    if (!existsSync(path)) return
    rmSync(path, { recursive: true, force: true })
    lastBulkDelete = Date.now()
  }
  const settle = async (): Promise<void> => {
    spawnSync('sync')
    const wait = lastBulkDelete + o.settleSeconds * 1000 - Date.now()
    if (wait <= 0) return
    say(`  waiting ${Math.ceil(wait / 1000)} s after deleting files (ext4 is slow to create files for a minute after many deletions)`)
    await new Promise((r) => setTimeout(r, wait))
  }
  for (const d of ['repos', 'cache', 'borg-base', 'restore', 'home', 'profile']) bulkRm(join(o.work, d))
  for (const d of ['repos', 'cache', 'borg-base', 'restore', 'home']) mkdirSync(join(o.work, d), { recursive: true })
  const marker = join(o.work, 'dataset.json')
  let generated: GenerateResult | null = null
  let reused = false
  try {
    const mk = JSON.parse(readFileSync(marker, 'utf8')) as { seed: string; size: number; round: number; complete: boolean }
    reused = mk.complete && mk.seed === o.seed && mk.size === o.size && mk.round === 0 && existsSync(data)
  } catch {
    reused = false
  }
  if (reused) {
    say(`dataset: reusing the pristine dataset in ${data}`)
  } else {
    bulkRm(data)
    rmSync(marker, { force: true })
    say(`dataset: generating ${formatBytes(o.size)} (seed ${o.seed}) into ${data}`)
    const g0 = Date.now()
    generated = generateDataset({
      dir: data, size: o.size, seed: o.seed,
      onProgress: (p) => {
        const el = (Date.now() - g0) / 1000
        const rate = el > 0 ? p.bytes / el : 0
        say(`  dataset: ${p.phase} ${((p.bytes / p.totalBytes) * 100).toFixed(1)}%  ${formatBytes(p.bytes)} / ${formatBytes(p.totalBytes)}, ${p.files} files, ${formatBytes(rate)}/s, ETA ${dur(rate ? (p.totalBytes - p.bytes) / rate : Infinity)}`)
      },
    })
    writeFileSync(marker, JSON.stringify({ seed: o.seed, size: o.size, round: 0, complete: true }) + '\n')
    say(`dataset: ${generated.files} files, ${formatBytes(generated.bytes)} in ${generated.seconds.toFixed(1)} s`)
  }
  say('dataset: measuring zstd-3 compressibility (1 MiB blocks)')
  const ratio = await compressibility(data, 3)
  say(`dataset: zstd-3 ratio ${ratio.find((x) => x.category === 'all')?.ratio.toFixed(2)}×`)
  const micro = o.micro ? await runMicro() : null

  const { tools, missing } = makeTools(o, data)
  if (missing.length) say(`not on PATH, skipped: ${missing.join(', ')}`)
  for (const t of tools) say(`${t.name}: ${t.version}`)

  const results: Results = {
    harness: { command: `node dist/bench/run.js ${o.argv.map(shellQuote).join(' ')}`.trim(), date: new Date().toISOString(), seconds: 0, gitDescribe: gitDescribe() },
    machine: m,
    options: (({ argv: _argv, ...rest }) => ({ ...rest, coldstore: o.coldstore.join(' ') }))(o),
    tools: tools.map((t) => ({ name: t.name, version: t.version, command: t.commandLine })),
    missingTools: missing,
    dataset: {
      dir: data, generate: generated, reused, budget: planBudget(o.size), compressibility: ratio, mutations: [], finalDigest: null,
      singleFile: { path: SINGLE_FILE, bytes: existsSync(join(data, SINGLE_FILE)) ? lstatSync(join(data, SINGLE_FILE)).size : 0 },
    },
    steps: [],
    targets: [],
    profiles: [],
    micro,
  }

  const ph = phases(o.rounds)
  const totalWeight = ph.reduce((s, p) => s + p.weight, 0) * tools.length
  let doneWeight = 0
  let stepSeconds = 0
  const broken = new Set<ToolName>()
  const warned = { done: false }
  let reference: TreeDigest | null = null
  let keepTargets = false
  const total = ph.length * tools.length
  let n = 0

  for (let pi = 0; pi < ph.length; pi++) {
    const p = ph[pi]
    if (p.kind === 'milestone') {
      say(`dataset: applying milestone ${p.round}`)
      const mres = mutateDataset(data, { seed: o.seed, round: p.round! })
      writeFileSync(marker, JSON.stringify({ seed: o.seed, size: o.size, round: p.round, complete: true }) + '\n')
      results.dataset.mutations.push(mres)
      say(`  ${mres.editedFiles} edited, ${mres.addedFiles} added, ${mres.deletedFiles} deleted, ${mres.renamed?.from} → ${mres.renamed?.to}, ${formatBytes(mres.inserted?.bytes ?? 0)} inserted into ${mres.inserted?.file} (${mres.seconds.toFixed(1)} s)`)
    }
    if (p.kind === 'restore' && o.verify) {
      say('dataset: digest of the final tree (to check restores)')
      reference = treeDigest(data)
      results.dataset.finalDigest = reference
    }
    if (p.kind === 'restore') {
      // Keep every tool's full restore until all have restored (no deletions between them) when there is room.
      const free = machine(o.work).diskFreeBytes
      keepTargets = free > (reference?.bytes ?? o.size * 1.1) * 1.2 * tools.length + 2 ** 30
    }
    if (p.kind === 'restore-file' && !o.keep) for (const t of tools) bulkRm(join(o.work, 'restore', `${t.name}-full`))
    // Rotate the order so that no tool always runs first after a change.
    const order = tools.map((_, i) => tools[(i + pi) % tools.length])
    for (const tool of order) {
      n++
      if (broken.has(tool.name)) {
        doneWeight += p.weight
        continue
      }
      const label = `${tool.name} ${stepLabel(p.step)}`
      const repoBefore = dirBytes(tool.repo)
      let cmd: Cmd
      let restoreRoot = ''
      let restoredFile = ''
      const target = join(o.work, 'restore', `${tool.name}-${p.kind === 'restore' ? 'full' : 'file'}`)
      switch (p.kind) {
        case 'init': cmd = tool.init(); break
        case 'initial': case 'rerun': case 'milestone': cmd = tool.snapshot(p.step); break
        case 'restore': {
          bulkRm(target)
          await settle()
          mkdirSync(target, { recursive: true })
          const x = tool.restore(target)
          cmd = x.cmd
          restoreRoot = x.root
          break
        }
        case 'restore-file': {
          rmSync(target, { recursive: true, force: true })
          mkdirSync(target, { recursive: true })
          const x = tool.restoreFile(target, SINGLE_FILE)
          cmd = x.cmd
          restoredFile = x.file
          break
        }
        case 'ls': cmd = tool.ls(); break
      }
      dropCaches(o.dropCaches && p.kind !== 'init', warned)
      say(`(${n}/${total}) ${label} ...`)
      const r = await measure(cmd, join(logs, `${tool.name}-${p.step}`), label)
      spawnSync('sync')
      const ok = r.exitCode === 0 || (r.exitCode !== null && tool.warningCodes.includes(r.exitCode))
      const repoBytes = dirBytes(tool.repo)
      const s: StepResult = {
        tool: tool.name, kind: p.kind, step: p.step, round: p.round, ok, warning: ok && r.exitCode !== 0, exitCode: r.exitCode,
        wallSeconds: r.wallSeconds, userSeconds: r.userSeconds, sysSeconds: r.sysSeconds, cpuSeconds: r.cpuSeconds,
        maxRssBytes: r.maxRssBytes, repoBytes, repoAddedBytes: repoBytes - repoBefore, verified: null, memory: r.memory,
      }
      if (!ok) s.error = tail(r.stderrFile) || `exit ${r.exitCode}${r.signal ? ` (${r.signal})` : ''}`
      else if (s.warning) s.detail = tail(r.stderrFile, 3)
      if (ok && p.kind === 'restore' && o.verify && reference) {
        const got = existsSync(restoreRoot) ? treeDigest(restoreRoot) : null
        s.verified = got?.digest === reference.digest
        if (!s.verified) s.detail = `restored ${got ? `${got.files} files, ${formatBytes(got.bytes)}` : 'nothing'} at ${restoreRoot}; ${firstDifferences(data, restoreRoot).join('; ')}`
      }
      if (p.kind === 'restore' || p.kind === 'restore-file') {
        if (ok && p.kind === 'restore-file' && o.verify) {
          const f = existsSync(restoredFile) ? restoredFile : findFile(target, basename(SINGLE_FILE))
          s.verified = f !== null && fileDigest(f) === fileDigest(join(data, SINGLE_FILE))
          if (!s.verified) s.detail = f ? `restored ${f} differs` : `no ${basename(SINGLE_FILE)} under ${target}`
        }
        if (p.kind === 'restore-file' || (!o.keep && !keepTargets)) bulkRm(target)
      }
      if (ok && p.kind === 'ls') s.lines = countLines(r.stdoutFile)
      if (ok && tool.name === 'coldstore' && (p.kind === 'initial' || p.kind === 'rerun' || p.kind === 'milestone')) {
        try {
          s.toolStats = (JSON.parse(readFileSync(r.stdoutFile, 'utf8')) as { stats?: Record<string, number> }).stats
        } catch {
          // not JSON: leave it out
        }
      }
      if (!ok && (p.kind === 'init' || p.kind === 'initial')) broken.add(tool.name)
      results.steps.push(s)
      doneWeight += p.weight
      stepSeconds += r.wallSeconds
      const eta = doneWeight > 0.5 ? (stepSeconds / doneWeight) * (totalWeight - doneWeight) : NaN
      say(
        `(${n}/${total}) ${label}: ${ok ? '' : 'FAILED '}${r.wallSeconds.toFixed(2)} s, CPU ${r.cpuSeconds?.toFixed(1) ?? '?'} s, RSS ${mib(r.maxRssBytes)}, repo ${mib(repoBytes)}` +
          `${s.repoAddedBytes ? ` (+${mib(s.repoAddedBytes)})` : ''}${s.verified === true ? ', verified' : s.verified === false ? ', MISMATCH' : ''}${s.lines !== undefined ? `, ${s.lines} lines` : ''}` +
          `${Number.isFinite(eta) ? `; ~${dur(eta)} left` : ''}`,
      )
      if (!ok) say(`  ${s.error?.replace(/\n/g, '\n  ')}`)
    }
  }

  if (o.profile && tools.some((t) => t.name === 'coldstore')) {
    // Where coldstore's time goes: the initial snapshot of the final tree into a new repository, and a full
    // restore of it, each under --cpu-prof (one profile per thread). Not part of the timed steps.
    const dir = join(o.work, 'profile')
    const repo = join(dir, 'repo')
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    const env = { ...baseEnv(o.work), COLDSTORE_PASSWORD: PASSWORD }
    const g = ['--repo', repo, '--cache-dir', join(dir, 'cache'), '-q']
    spawnSync(o.coldstore[0], [...o.coldstore.slice(1), 'init', ...g], { env, cwd: o.work })
    for (const [name, args] of [
      ['snapshot', ['snapshot', basename(data), ...g]],
      ['restore', ['restore', 'latest', '--target', join(dir, 'target'), ...g]],
    ] as const) {
      const cpu = join(dir, `cpu-${name}`)
      mkdirSync(cpu, { recursive: true })
      const nodeCmd = coldstoreNodeArgv(o.coldstore, ['--cpu-prof', `--cpu-prof-dir=${cpu}`])
      if (!nodeCmd) {
        say('profile: --coldstore is neither bin/coldstore nor "node <script>"; skipped')
        break
      }
      say(`profile: coldstore ${name} under --cpu-prof`)
      const r = await measure({ argv: [...nodeCmd.argv, ...args], cwd: o.work, env: { ...env, ...nodeCmd.env } }, join(logs, `coldstore-profile-${name}`), `coldstore profile ${name}`)
      if (r.exitCode !== 0) {
        say(`profile run failed: ${tail(r.stderrFile, 3)}`)
        break
      }
      results.profiles.push({ name, wallSeconds: r.wallSeconds, ...summarizeProfiles(cpu, 25) })
      mkdirSync(join(o.out, 'profile', name), { recursive: true })
      for (const f of readdirSync(cpu)) writeFileSync(join(o.out, 'profile', name, f), readFileSync(join(cpu, f)))
    }
    rmSync(dir, { recursive: true, force: true })
  }

  results.targets = checkTargets(results, o.rounds)
  results.harness.seconds = (Date.now() - t0) / 1000
  writeFileSync(join(o.out, 'results.json'), JSON.stringify(results, null, 2) + '\n')
  writeFileSync(join(o.out, 'report.md'), markdownReport(results))
  writeFileSync(join(o.out, 'chart.svg'), renderChart(results))
  writeFileSync(join(o.out, 'memory.svg'), renderMemoryChart(results))
  if (!o.keep) {
    for (const d of ['repos', 'cache', 'borg-base', 'restore', 'home', 'profile']) rmSync(join(o.work, d), { recursive: true, force: true })
    rmSync(data, { recursive: true, force: true })
    rmSync(marker, { force: true })
    if (existsSync(o.work) && readdirSync(o.work).length === 0) rmSync(o.work, { recursive: true, force: true })
  }
  say(`done in ${dur(results.harness.seconds)}: ${join(o.out, 'report.md')}, results.json, chart.svg`)
  return results
}

/** The command line: parses process.argv, runs, prints the report (or --json); exit 1 when a step failed. */
export async function main(): Promise<void> {
  let o: Options
  try {
    o = parseArgs(process.argv.slice(2))
  } catch (e) {
    if (e instanceof UsageError || (e instanceof Error && /size/.test(e.message))) {
      if (e.message) process.stderr.write(`bench: ${e.message}\n`)
      process.stderr.write(USAGE + '\n')
      process.exit(e.message ? 2 : 0)
    }
    throw e
  }
  const r = await run(o)
  if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n')
  else process.stdout.write(markdownReport(r) + '\n')
  if (r.steps.some((s) => !s.ok || s.verified === false)) process.exitCode = 1
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    process.exit(1)
  })
}
