/**
 * restic jobs: the `restic` binary run against an existing restic repository (`backup --json`, `check`,
 * `forget --json --prune`), its JSON progress and summary mapped to the journal's progress samples and
 * run stats. The job's snapshots carry the tag `coldstore:<job>`, which retention filters on, so other
 * snapshots in the same repository are never forgotten by a job.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { JobRetention } from '../config/index.js'
import type { CheckOutcome, RetentionOutcome, RunStats } from './events.js'

/** How to run restic. */
export interface ResticContext {
  /** The restic program (default `restic` on PATH). */
  binary: string
  repository: string
  /** `--password-file`; without it restic reads RESTIC_PASSWORD_FILE / RESTIC_PASSWORD from `env`. */
  passwordFile: string | null
  env: Record<string, string | undefined>
  cwd: string
  signal?: AbortSignal
  /** restic's messages (errors, warnings on stderr), one line each. */
  onLog: (level: 'info' | 'warn' | 'error', message: string) => void
}

/** The tag a job's restic snapshots carry. */
export function resticJobTag(job: string): string {
  return `coldstore:${job}`
}

interface ResticExit {
  code: number | null
  signal: NodeJS.Signals | null
  stopped: boolean
}

/** Runs restic with `args`; stdout lines go to `onStdout`, stderr lines to the log. SIGINT on abort (restic then removes its lock). */
function runRestic(c: ResticContext, args: string[], onStdout: (line: string) => void): Promise<ResticExit> {
  return new Promise((resolve, reject) => {
    const full = ['-r', c.repository, ...(c.passwordFile ? ['--password-file', c.passwordFile] : []), ...args]
    const child = spawn(c.binary, full, { cwd: c.cwd, env: c.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stopped = false
    let killTimer: NodeJS.Timeout | null = null
    const onAbort = (): void => {
      stopped = true
      child.kill('SIGINT')
      killTimer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    }
    c.signal?.addEventListener('abort', onAbort, { once: true })
    if (c.signal?.aborted) onAbort()
    createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', onStdout)
    createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', (l) => {
      if (l.trim() !== '') c.onLog(/^(Fatal|error)/i.test(l) ? 'error' : 'warn', l)
    })
    child.on('error', (err) => {
      c.signal?.removeEventListener('abort', onAbort)
      reject(err)
    })
    child.on('close', (code, signal) => {
      if (killTimer) clearTimeout(killTimer)
      c.signal?.removeEventListener('abort', onAbort)
      resolve({ code, signal, stopped })
    })
  })
}

/** Why a restic invocation failed, as one line. */
function failure(what: string, e: ResticExit, last: string | null): string {
  const how = e.code !== null ? `exit code ${e.code}` : `signal ${e.signal}`
  return `restic ${what} failed (${how})${last ? `: ${last}` : ''}`
}

/** What `resticBackup` returns. */
export interface ResticBackupResult {
  /** 'success', 'warning' (exit 3: the snapshot was written, some files could not be read), 'failed', 'interrupted'. */
  result: 'success' | 'warning' | 'failed' | 'interrupted'
  snapshot: string | null
  stats: RunStats | null
  error: string | null
}

interface ResticStatus {
  message_type: 'status'
  percent_done?: number
  total_files?: number
  files_done?: number
  total_bytes?: number
  bytes_done?: number
}

interface ResticSummary {
  message_type: 'summary'
  files_new: number
  files_changed: number
  files_unmodified: number
  dirs_new: number
  dirs_changed: number
  dirs_unmodified: number
  data_added: number
  total_files_processed: number
  total_bytes_processed: number
  total_duration: number
  snapshot_id: string
}

interface ResticError {
  message_type: 'error'
  error?: { Op?: string; Path?: string; Err?: number } | string
  during?: string
  item?: string
}

/** Maps restic's summary to the journal's run stats. */
export function resticStats(s: ResticSummary, unreadable: number): RunStats {
  return {
    files: s.total_files_processed,
    dirs: s.dirs_new + s.dirs_changed + s.dirs_unmodified,
    bytes: s.total_bytes_processed,
    new_files: s.files_new,
    changed_files: s.files_changed,
    unchanged_files: s.files_unmodified,
    added_bytes: s.data_added,
    unreadable,
    duration_s: Math.round(s.total_duration * 100) / 100,
  }
}

/** `restic backup --json` of the job's sources. */
export async function resticBackup(
  c: ResticContext,
  o: {
    job: string
    sources: readonly string[]
    excludes: readonly string[]
    excludeFiles: readonly string[]
    tags: readonly string[]
    oneFileSystem: boolean
    onProgress: (p: { files: number; bytes: number; totalFiles: number | null; totalBytes: number | null }) => void
  },
): Promise<ResticBackupResult> {
  const args = ['backup', '--json', '--tag', resticJobTag(o.job)]
  for (const t of o.tags) args.push('--tag', t)
  for (const x of o.excludes) args.push('--exclude', x)
  for (const f of o.excludeFiles) args.push('--exclude-file', f)
  if (o.oneFileSystem) args.push('--one-file-system')
  args.push('--', ...o.sources)
  let summary: ResticSummary | null = null
  let unreadable = 0
  let lastError: string | null = null
  const exit = await runRestic(c, args, (line) => {
    let m: ResticStatus | ResticSummary | ResticError | { message_type?: string }
    try {
      m = JSON.parse(line) as typeof m
    } catch {
      if (line.trim() !== '') c.onLog('info', line)
      return
    }
    if (m.message_type === 'status') {
      const s = m as ResticStatus
      o.onProgress({ files: s.files_done ?? 0, bytes: s.bytes_done ?? 0, totalFiles: s.total_files ?? null, totalBytes: s.total_bytes ?? null })
    } else if (m.message_type === 'summary') {
      summary = m as ResticSummary
    } else if (m.message_type === 'error') {
      const e = m as ResticError
      unreadable++
      const what = typeof e.error === 'string' ? e.error : e.error ? `${e.error.Op ?? 'error'} ${e.error.Path ?? ''}`.trim() : 'error'
      lastError = `${e.item ?? ''}: ${what}${e.during ? ` (during ${e.during})` : ''}`
      c.onLog('warn', lastError)
    }
  })
  const s = summary as ResticSummary | null
  if (exit.stopped) return { result: 'interrupted', snapshot: null, stats: null, error: 'restic backup was interrupted' }
  if (exit.code === 0 && s) return { result: 'success', snapshot: s.snapshot_id, stats: resticStats(s, unreadable), error: null }
  if (exit.code === 3 && s) {
    return { result: 'warning', snapshot: s.snapshot_id, stats: resticStats(s, unreadable), error: `${unreadable} entr${unreadable === 1 ? 'y' : 'ies'} could not be read` }
  }
  return { result: 'failed', snapshot: null, stats: null, error: failure('backup', exit, lastError) }
}

/** `restic check`, reading `readDataFraction` of the data (0: structure only). */
export async function resticCheck(c: ResticContext, o: { readDataFraction: number }): Promise<CheckOutcome & { interrupted: boolean }> {
  const args = ['check']
  if (o.readDataFraction >= 1) args.push('--read-data')
  else if (o.readDataFraction > 0) args.push(`--read-data-subset=${Math.max(0.01, Math.round(o.readDataFraction * 10000) / 100)}%`)
  const problems: string[] = []
  const lines: string[] = []
  const onLog = c.onLog
  const exit = await runRestic({ ...c, onLog: (level, m) => { if (problems.length < 100 && /error|fatal|damaged|missing|invalid/i.test(m)) problems.push(m); onLog(level, m) } }, args, (line) => {
    if (line.trim() === '') return
    lines.push(line)
    if (problems.length < 100 && /error|damaged|missing|invalid/i.test(line) && !/no errors were found/i.test(line)) problems.push(line)
    c.onLog('info', line)
  })
  if (exit.stopped) return { ok: false, problems: ['interrupted'], read_data_fraction: o.readDataFraction, interrupted: true }
  const ok = exit.code === 0
  if (!ok && problems.length === 0) problems.push(failure('check', exit, lines[lines.length - 1] ?? null))
  return { ok, problems: ok ? [] : problems, read_data_fraction: o.readDataFraction, interrupted: false }
}

interface ResticForgetGroup {
  keep: { id: string }[] | null
  remove: { id: string }[] | null
}

/** `restic forget --json --prune` of the job's snapshots (tag `coldstore:<job>`) by its retention rules. */
export async function resticForget(c: ResticContext, o: { job: string; retention: JobRetention }): Promise<RetentionOutcome> {
  const args = ['forget', '--json', '--prune', '--tag', resticJobTag(o.job), ...resticKeepArgs(o.retention)]
  let out = ''
  const exit = await runRestic(c, args, (line) => {
    // The JSON document is one line; prune's progress lines ("[0:00] 100.00% ...") also start with '['.
    if (out === '' && (line.startsWith('[{') || line === '[]' || line === 'null')) out = line
    else if (line.trim() !== '') c.onLog('info', line)
  })
  if (exit.code !== 0) return { ok: false, kept: 0, removed: 0, removed_ids: [], error: failure('forget', exit, null) }
  let groups: ResticForgetGroup[] = []
  try {
    groups = JSON.parse(out || '[]') as ResticForgetGroup[]
  } catch {
    return { ok: false, kept: 0, removed: 0, removed_ids: [], error: 'restic forget printed no JSON' }
  }
  const removed = groups.flatMap((g) => (g.remove ?? []).map((s) => s.id))
  return { ok: true, kept: groups.reduce((n, g) => n + (g.keep?.length ?? 0), 0), removed: removed.length, removed_ids: removed, error: null }
}

/** The `--keep-...` options of a retention (restic's and coldstore forget's spelling). */
export function resticKeepArgs(r: JobRetention): string[] {
  const args: string[] = []
  const n = (k: keyof JobRetention, flag: string): void => {
    const v = r[k]
    if (typeof v === 'number') args.push(flag, String(v))
  }
  n('keep_last', '--keep-last')
  n('keep_hourly', '--keep-hourly')
  n('keep_daily', '--keep-daily')
  n('keep_weekly', '--keep-weekly')
  n('keep_monthly', '--keep-monthly')
  n('keep_yearly', '--keep-yearly')
  if (r.keep_within) args.push('--keep-within', r.keep_within)
  for (const t of r.keep_tag ?? []) args.push('--keep-tag', t)
  return args
}
