/**
 * What `run`, `jobs`, `log` and `daemon` share: the configuration's jobs, the state directory (locks,
 * journal, daemon bookkeeping), the work of each job type wired to this process's environment, the
 * retention seam, worker processes under nice/ionice, and the exit codes of runs.
 *
 * The state directory: --state-dir, else COLDSTORE_STATE_DIR, else `daemon.state_dir` of the configuration
 * (relative to the configuration file), else $XDG_STATE_HOME/coldstore, else ~/.local/state/coldstore. It is
 * not a cache: the journal is the jobs' history. (The Docker image sets COLDSTORE_STATE_DIR=/cache/state.)
 */
import { spawn } from 'node:child_process'
import { homedir, hostname, userInfo } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import {
  InterruptedError, JobLocks, Journal, closeRepository, engineWork, openRepository, parseDaemonSection, parseJobs, resticKeepArgs, resticWork,
  type AttemptContext, type ColdstoreConfig, type DaemonSettings, type JobDefinition, type JobWork, type RetentionOutcome, type RunResult,
  type WorkerHandle, type WorkerRequest,
} from '../engine/index.js'
import { prepareAudit } from './audit-hook.js'
import { CliError, EXIT, PROGRAM, cacheDir, describeError, password, remoteOptions, type GlobalArgs } from './common.js'
import { configPath, loadConfig, resolveLocation } from './config-file.js'

/** Options every jobs command takes. */
export interface JobsArgs extends GlobalArgs {
  'state-dir'?: string
  'audit-key'?: string
}

/** The configuration with its jobs. */
export interface LoadedJobs {
  config: ColdstoreConfig
  jobs: Map<string, JobDefinition>
  daemon: DaemonSettings
}

/** The time zone schedules are in unless a job names one: TZ, else the system's. */
export function defaultTimezone(): string {
  const tz = process.env.TZ
  if (tz && !tz.startsWith(':')) {
    try {
      Intl.DateTimeFormat('en', { timeZone: tz })
      return tz
    } catch {
      // not an IANA name: fall through
    }
  }
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'
}

/** Loads the configuration (required) and validates its jobs and daemon sections. */
export function loadJobs(a: JobsArgs): LoadedJobs {
  const config = loadConfig(a.config)
  if (!config) throw new CliError('no configuration file: give --config FILE (or set COLDSTORE_CONFIG, or create $XDG_CONFIG_HOME/coldstore/coldstore.yaml)', EXIT.usage)
  return { config, jobs: parseJobs(config, { defaultTimezone: defaultTimezone() }), daemon: parseDaemonSection(config) }
}

/** The job named `name`. @throws CliError (usage) naming the jobs there are. */
export function findJob(l: LoadedJobs, name: string): JobDefinition {
  const job = l.jobs.get(name)
  if (!job) {
    const known = [...l.jobs.keys()]
    throw new CliError(`no job named ${JSON.stringify(name)} in ${l.config.path}${known.length ? ` (jobs: ${known.join(', ')})` : ' (it has no jobs: section)'}`, EXIT.usage)
  }
  return job
}

/** The state directory (see the module comment). */
export function stateDir(a: JobsArgs, l: LoadedJobs | null): string {
  if (a['state-dir']) return a['state-dir']
  if (process.env.COLDSTORE_STATE_DIR) return process.env.COLDSTORE_STATE_DIR
  if (l?.daemon.stateDir) return configPath(l.config, l.daemon.stateDir)
  const xdg = process.env.XDG_STATE_HOME
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.local', 'state'), 'coldstore')
}

/** Locks and journal of the state directory. */
export interface JobState {
  dir: string
  host: string
  locks: JobLocks
  journal: Journal
}

export function openJobState(a: JobsArgs, l: LoadedJobs | null): JobState {
  const dir = stateDir(a, l)
  const host = hostname()
  const now = (): Date => new Date()
  const locks = new JobLocks({ dir: join(dir, 'locks'), host, now })
  return { dir, host, locks, journal: new Journal({ dir: join(dir, 'journal'), now, locks }) }
}

/**
 * The exit code of a run: 0 success, 3 warning (snapshot written, but files unreadable, a post-hook or
 * retention failed), 5 skipped (already running), 130/143 interrupted (SIGINT/SIGTERM), and for a failure
 * the code of its error (1; 2 configuration; 10 no repository; 12 wrong password).
 */
export function runExitCode(result: RunResult, error: unknown, signal: NodeJS.Signals | null = null): number {
  switch (result) {
    case 'success':
      return EXIT.ok
    case 'warning':
      return EXIT.partial
    case 'skipped':
      return EXIT.busy
    case 'interrupted':
      return signal === 'SIGINT' ? 130 : 143
    case 'failed':
      return error instanceof InterruptedError ? 143 : describeError(error).code
  }
}

function secretFileEnv(config: ColdstoreConfig, file: string | null): Record<string, string> {
  return file ? { COLDSTORE_PASSWORD_FILE: configPath(config, file) } : {}
}

/**
 * Retention of a coldstore job, through the seam: runs `coldstore forget --repo <repo> --job <job>
 * --keep-... --yes --json` (or COLDSTORE_FORGET_COMMAND with the same arguments) and reads its
 * `{ "keep": [...], "remove": [...] }`. Freezes are never forgotten (forget keeps them).
 */
function forgetSeam(a: JobsArgs, l: LoadedJobs, job: JobDefinition): (ctx: AttemptContext) => Promise<RetentionOutcome> {
  return (ctx) => new Promise((resolve) => {
    const retention = job.retention
    if (!retention || !job.repo) return resolve({ ok: true, kept: 0, removed: 0, removed_ids: [], error: null })
    const args = [
      'forget', '--repo', job.repo, '--config', l.config.path, '--cache-dir', cacheDir(a), '--job', job.name,
      ...resticKeepArgs(retention), '--yes', '--json', '--quiet',
      ...(a['password-file'] ? ['--password-file', a['password-file']] : []),
    ]
    const custom = process.env.COLDSTORE_FORGET_COMMAND
    const argv = custom ? [custom, ...args] : [process.execPath, ...process.execArgv, process.argv[1], ...args]
    const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...secretFileEnv(l.config, job.passwordFile) }, stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    let lastErr = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => {
      for (const line of d.toString('utf8').split('\n')) {
        if (line.trim() === '') continue
        if (!/^\(see /.test(line)) lastErr = line
        ctx.log('warn', 'retention', line)
      }
    })
    child.on('error', (err) => resolve({ ok: false, kept: 0, removed: 0, removed_ids: [], error: `cannot run forget: ${err.message}` }))
    child.on('close', (code) => {
      if (code !== 0) return resolve({ ok: false, kept: 0, removed: 0, removed_ids: [], error: `coldstore forget exited with ${code}${lastErr ? `: ${lastErr}` : ''}` })
      try {
        const doc = JSON.parse(Buffer.concat(out).toString('utf8')) as { keep?: { id: string }[]; remove?: { id: string }[] }
        const removed = (doc.remove ?? []).map((s) => s.id)
        resolve({ ok: true, kept: doc.keep?.length ?? 0, removed: removed.length, removed_ids: removed, error: null })
      } catch {
        resolve({ ok: false, kept: 0, removed: 0, removed_ids: [], error: 'coldstore forget printed no JSON document' })
      }
    })
  })
}

/** The work of `job` in this process: the engine for dataset/host jobs, the restic binary for restic jobs. */
export function jobWork(a: JobsArgs, l: LoadedJobs, job: JobDefinition): JobWork {
  const cwd = jobCwd(l)
  if (job.type === 'restic') {
    const restic = job.restic!
    const env: Record<string, string | undefined> = { ...process.env }
    const r = { ...job, restic: { ...restic, passwordFile: restic.passwordFile ? configPath(l.config, restic.passwordFile) : null } }
    return resticWork({ job: r, env, cwd, binary: process.env.COLDSTORE_RESTIC || 'restic' })
  }
  const location = job.repo!
  const audit = prepareAudit(a)
  const user = (() => {
    try {
      return userInfo().username
    } catch {
      return 'unknown'
    }
  })()
  const excludeFiles = job.excludeFiles.map((f) => configPath(l.config, f))
  return engineWork({
    job: { ...job, excludeFiles },
    open: async () => {
      const resolved = resolveLocation(location, a.config)
      const pw = job.passwordFile
        ? await password({ ...a, 'password-file': configPath(l.config, job.passwordFile) })
        : await password(a, { location })
      return openRepository({ url: resolved.url, password: pw, cacheDir: cacheDir(a), remote: remoteOptions(a, location) })
    },
    close: closeRepository,
    program: PROGRAM,
    hostname: hostname(),
    username: user,
    now: () => new Date(),
    afterSnapshot: async (repo, result) => {
      const st = result.snapshot.stats
      await audit.record(repo, { operation: 'snapshot', snapshotId: result.id, summary: { job: job.name, files: st.files, dirs: st.dirs, bytes: st.bytes, added_bytes: st.added_bytes, warnings: result.warnings.length } })
    },
    forget: forgetSeam(a, l, job),
  })
}

/** Hooks and restic run in the configuration file's folder. */
export function jobCwd(l: LoadedJobs): string {
  return dirname(resolve(l.config.path))
}

/** The `nice` / `ionice` prefix of a job's worker command (empty when it has neither). */
export function priorityPrefix(job: JobDefinition): string[] {
  const p: string[] = []
  if (job.nice !== null) p.push('nice', '-n', String(job.nice))
  if (job.ionice !== null) {
    const [cls, level] = job.ionice.split(':')
    p.push('ionice', '-t', '-c', cls === 'idle' ? '3' : '2', ...(level !== undefined ? ['-n', level] : []))
  }
  return p
}

/** Set in the environment of a worker (under its nice/ionice already): `run` does not start itself again. */
export const WORKER_ENV = 'COLDSTORE_JOB_WORKER'

/** The global options a worker is given as the parent had them. */
function forwardedOptions(a: JobsArgs, state: string, l: LoadedJobs): string[] {
  return [
    '--config', l.config.path, '--state-dir', state, '--cache-dir', cacheDir(a),
    ...(a['password-file'] ? ['--password-file', a['password-file']] : []),
    ...(a['audit-key'] ? ['--audit-key', a['audit-key']] : []),
  ]
}

/**
 * Starts `coldstore run` for a daemon's run request, under the job's nice/ionice, in its own process group
 * (a Ctrl-C at the daemon's terminal reaches the daemon, which stops workers itself).
 */
export function startWorker(a: JobsArgs, l: LoadedJobs, state: string, r: WorkerRequest): WorkerHandle {
  const args = [
    ...process.execArgv, process.argv[1], 'run', r.job.name, ...forwardedOptions(a, state, l), '--run-id', r.run, '--trigger', r.trigger,
    ...(r.scheduledFor ? ['--scheduled-for', r.scheduledFor.toISOString()] : []), ...(r.kind === 'check' ? ['--check'] : []), '--quiet',
  ]
  const argv = [...priorityPrefix(r.job), process.execPath, ...args]
  const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, [WORKER_ENV]: '1' }, stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  let tail = ''
  child.stderr.on('data', (d: Buffer) => {
    tail = (tail + d.toString('utf8')).slice(-4096)
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (err) => {
      tail += `\n${err.message}`
      resolve({ code: 127, signal: null })
    })
    child.on('close', (code, signal) => resolve({ code, signal }))
  })
  return {
    pid: child.pid,
    exited,
    kill: (sig) => {
      try {
        child.kill(sig)
      } catch {
        // gone
      }
    },
    stderrTail: () => tail,
  }
}

/**
 * Runs this same `coldstore run` command again under the job's nice/ionice (when it has them and this
 * process is not such a worker already), passing signals on; resolves with its exit code, or null when no
 * re-run is needed.
 */
export function reRunUnderPriority(job: JobDefinition): Promise<number> | null {
  const prefix = priorityPrefix(job)
  if (prefix.length === 0 || process.env[WORKER_ENV] === '1') return null
  return new Promise((resolve) => {
    const argv = [...prefix, process.execPath, ...process.execArgv, ...process.argv.slice(1)]
    const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, [WORKER_ENV]: '1' }, stdio: 'inherit' })
    const pass = (sig: NodeJS.Signals): void => void child.kill(sig)
    process.on('SIGINT', pass)
    process.on('SIGTERM', pass)
    child.on('error', (err) => {
      process.stderr.write(`coldstore: cannot start ${prefix[0]}: ${err.message}\n`)
      resolve(EXIT.failure)
    })
    child.on('close', (code, signal) => {
      process.off('SIGINT', pass)
      process.off('SIGTERM', pass)
      resolve(code ?? (signal === 'SIGINT' ? 130 : 143))
    })
  })
}
