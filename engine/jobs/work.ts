/**
 * The work of each job type, for runJob: dataset and host jobs through the engine's backup and verify,
 * restic jobs through the restic binary. Retention of coldstore jobs is a seam (`forget`) the caller fills
 * (the CLI runs `coldstore forget`), so the retention implementation can change without touching runs.
 */
import type { Repository } from '../repo/index.js'
import { backup, type BackupResult } from '../backup/index.js'
import { ExcludeMatcher } from '../filter/index.js'
import type { JobDefinition } from '../config/index.js'
import { InterruptedError } from '../errors.js'
import { verify } from '../verify/index.js'
import type { RetentionOutcome, RunStats } from './events.js'
import { resticBackup, resticCheck, resticForget } from './restic.js'
import type { AttemptContext, BackupOutcome, JobWork } from './runner.js'

/** Warnings logged per run at most (the rest are counted). */
const MAX_WARNINGS_LOGGED = 200

/** Options of engineWork. */
export interface EngineWorkOptions {
  job: JobDefinition
  /** Opens the job's repository (and `close` closes it): once per attempt. */
  open: () => Promise<Repository>
  close: (repo: Repository) => Promise<void>
  program: string
  hostname: string
  username: string
  now: () => Date
  /** Called after a snapshot is written (the CLI records it in the audit trail). */
  afterSnapshot?: (repo: Repository, result: BackupResult) => Promise<void>
  /** Applies the job's retention (the retention seam). */
  forget: (ctx: AttemptContext, o: { snapshot: string | null }) => Promise<RetentionOutcome>
}

/** Snapshot stats in the journal's form. */
function statsOf(r: BackupResult, unreadable: number): RunStats {
  const s = r.snapshot.stats
  return {
    files: s.files, dirs: s.dirs, bytes: s.bytes, new_files: s.new_files, changed_files: s.changed_files, unchanged_files: s.unchanged_files,
    added_bytes: s.added_bytes, unreadable, duration_s: s.duration_s,
  }
}

/** The work of dataset and host jobs. */
export function engineWork(o: EngineWorkOptions): JobWork {
  const job = o.job
  return {
    async backup(ctx) {
      const excludes = [...job.excludes, ...(await ExcludeMatcher.readPatternFiles(job.excludeFiles))]
      const repo = await o.open()
      try {
        let logged = 0
        let unreadable = 0
        const result = await backup(repo, {
          paths: job.sources, job: job.name, tags: job.tags, excludes, gitignore: job.gitignore, oneFileSystem: job.oneFileSystem,
          program: o.program, hostname: o.hostname, username: o.username, now: o.now, signal: ctx.signal,
          onProgress: (p) => ctx.progress({ files: p.files, bytes: p.bytes, totalFiles: p.totalFiles, totalBytes: p.totalBytes }),
          onWarning: (w) => {
            if (w.kind !== 'changed') unreadable++
            if (++logged <= MAX_WARNINGS_LOGGED) ctx.log('warn', 'backup', `${w.path}: ${w.message}`)
          },
        })
        if (logged > MAX_WARNINGS_LOGGED) ctx.log('warn', 'backup', `(${logged - MAX_WARNINGS_LOGGED} more warnings not logged)`)
        if (result.id) await o.afterSnapshot?.(repo, result)
        const s = result.snapshot.stats
        ctx.log('info', 'backup', `snapshot ${result.id?.slice(0, 8)} saved: ${s.files} files, ${s.dirs} dirs, ${s.bytes} bytes; ${s.new_files} new, ${s.changed_files} changed, ${s.unchanged_files} unchanged; added ${s.added_bytes} bytes`)
        const out: BackupOutcome = {
          result: unreadable ? 'warning' : 'success',
          snapshot: result.id,
          stats: statsOf(result, unreadable),
          warning: unreadable ? `${unreadable} entr${unreadable === 1 ? 'y' : 'ies'} could not be read (the snapshot was written without ${unreadable === 1 ? 'it' : 'them'})` : null,
        }
        return out
      } finally {
        await o.close(repo)
      }
    },
    async check(ctx) {
      const repo = await o.open()
      try {
        const fraction = job.verify?.readDataFraction ?? 0
        const report = await verify(repo, { readData: fraction > 0 ? fraction : undefined })
        if (ctx.signal.aborted) throw new InterruptedError('the check was stopped')
        const errors = report.findings.filter((f) => f.severity === 'error')
        for (const f of report.findings.slice(0, 100)) ctx.log(f.severity === 'error' ? 'error' : 'warn', 'coldstore', f.message)
        ctx.log('info', 'coldstore', `verify: ${report.stats.snapshots} snapshots, ${report.stats.trees} trees, ${report.stats.packs} packs (${report.stats.packs_read} read): ${errors.length ? `${errors.length} errors` : 'no errors'}`)
        return { ok: report.ok, problems: errors.slice(0, 100).map((f) => f.message), read_data_fraction: fraction }
      } finally {
        await o.close(repo)
      }
    },
    retention: (ctx, r) => o.forget(ctx, r),
  }
}

/** Options of resticWork. */
export interface ResticWorkOptions {
  job: JobDefinition
  /** The restic program (default `restic`). */
  binary?: string
  /** restic's environment (RESTIC_PASSWORD_FILE, AWS_* for S3 repositories...). */
  env: Record<string, string | undefined>
  cwd: string
}

/** The work of restic jobs. */
export function resticWork(o: ResticWorkOptions): JobWork {
  const job = o.job
  if (!job.restic) throw new Error(`job ${job.name} is not a restic job`)
  const r = job.restic
  const ctxOf = (ctx: AttemptContext) => ({
    binary: o.binary ?? 'restic', repository: r.repository, passwordFile: r.passwordFile, env: o.env, cwd: o.cwd, signal: ctx.signal,
    onLog: (level: 'info' | 'warn' | 'error', m: string) => ctx.log(level, 'restic', m),
  })
  return {
    async backup(ctx) {
      const res = await resticBackup(ctxOf(ctx), {
        job: job.name, sources: job.sources, excludes: job.excludes, excludeFiles: job.excludeFiles, tags: job.tags, oneFileSystem: job.oneFileSystem,
        onProgress: (p) => ctx.progress(p),
      })
      if (res.result === 'interrupted') throw new InterruptedError(res.error ?? 'interrupted')
      if (res.result === 'failed') throw new Error(res.error ?? 'restic backup failed')
      return { result: res.result, snapshot: res.snapshot, stats: res.stats, warning: res.error }
    },
    async check(ctx) {
      const res = await resticCheck(ctxOf(ctx), { readDataFraction: job.verify?.readDataFraction ?? 0 })
      if (res.interrupted) throw new InterruptedError('restic check was stopped')
      return { ok: res.ok, problems: res.problems, read_data_fraction: res.read_data_fraction }
    },
    async retention(ctx) {
      if (!job.retention) return { ok: true, kept: 0, removed: 0, removed_ids: [], error: null }
      return resticForget(ctxOf(ctx), { job: job.name, retention: job.retention })
    },
  }
}
