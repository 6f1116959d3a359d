import type { Argv, CommandModule } from 'yargs'
import {
  DEFAULT_REPACK_THRESHOLD, DEFAULT_SAFETY_DELAY_MS, prune, type PrunePreview, type PruneReport, type Repository,
} from '../../engine/index.js'
import { prepareAudit, type AuditRecorder } from '../audit-hook.js'
import { CliError, EXIT, PROGRAM, Progress, formatBytes, out, printJson, who, withRepo, type GlobalArgs } from '../common.js'
import { confirm } from '../confirm.js'

/** Options prune takes, alone and as `forget --prune`. */
export interface PruneArgs extends GlobalArgs {
  'dry-run'?: boolean
  'safety-delay'?: string
  'repack-threshold'?: string
  now?: string
  yes?: boolean
}

/** Adds prune's options to a command. */
export function pruneOptions<T>(y: Argv<T>): Argv<T> {
  return y
    .option('safety-delay', { type: 'string', describe: 'delete what a run at least this long ago marked: 0, 90s, 30min, 1h, 2d (default 1h)' })
    .option('repack-threshold', { type: 'string', describe: 'repack packs with more unused bytes than this: 0-100% (default 10%; 100% never repacks)' })
    .option('now', { type: 'string', describe: 'the time to act at (ISO 8601), instead of the clock: for tests and simulations' })
}

/** `0`, `90s`, `30min`, `1h`, `2d` → milliseconds (`m` is refused: months in --keep-within, minutes elsewhere). */
export function parseSafetyDelay(s: string | undefined): number {
  if (s === undefined) return DEFAULT_SAFETY_DELAY_MS
  const m = /^\s*(\d+(?:\.\d+)?)\s*(s|sec|min|h|d)?\s*$/.exec(s)
  if (!m || (m[2] === undefined && Number(m[1]) !== 0)) {
    throw new CliError(`--safety-delay: ${JSON.stringify(s)} is not a delay (write 0, 90s, 30min, 1h or 2d)`, EXIT.usage)
  }
  const unit = { s: 1000, sec: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's']!
  return Math.round(Number(m[1]) * unit)
}

/** `10%` or `10` → 0.1. */
export function parseRepackThreshold(s: string | undefined): number {
  if (s === undefined) return DEFAULT_REPACK_THRESHOLD
  const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(s)
  if (!m || Number(m[1]) > 100) throw new CliError(`--repack-threshold: ${JSON.stringify(s)} is not a percentage from 0 to 100`, EXIT.usage)
  return Number(m[1]) / 100
}

/** The clock: --now (fixed) or the real one. */
export function clockOf(a: { now?: string }): () => Date {
  if (a.now === undefined) return () => new Date()
  const ms = Date.parse(a.now)
  if (!Number.isFinite(ms)) throw new CliError(`--now: ${JSON.stringify(a.now)} is not an ISO 8601 time`, EXIT.usage)
  return () => new Date(ms)
}

function count(c: { packs: number; bytes: number; blobs: number }): string {
  return `${c.packs} pack${c.packs === 1 ? '' : 's'} (${formatBytes(c.bytes)}, ${c.blobs} blob${c.blobs === 1 ? '' : 's'})`
}

/** Runs prune on an open repository, with progress, confirmation and its audit entry. */
export async function runPrune(repo: Repository, a: PruneArgs, audit: AuditRecorder, o: { confirmed?: boolean } = {}): Promise<PruneReport> {
  const safetyDelayMs = parseSafetyDelay(a['safety-delay'])
  const repackThreshold = parseRepackThreshold(a['repack-threshold'])
  const now = clockOf(a)
  const progress = new Progress(a)
  const names = { index: 'reading the index', snapshots: 'reading snapshots', repack: 'repacking', delete: 'deleting' }
  let report: PruneReport
  try {
    const w = who()
    report = await prune(repo, {
      host: w.hostname, username: w.username, program: PROGRAM, now, safetyDelayMs, repackThreshold, dryRun: a['dry-run'],
      onProgress: (p) => progress.line(`prune: ${names[p.phase]} ${p.total ? `${p.done}/${p.total}` : `${p.done} blobs`}`),
      approve: async (pv: PrunePreview) => {
        progress.done()
        if (!o.confirmed) {
          const parts = [
            pv.delete.packs ? `delete ${count(pv.delete)}` : '',
            pv.repack.packs ? `repack ${count(pv.repack)}` : '',
            pv.immediate && pv.mark.packs ? `delete ${count(pv.mark)} no snapshot needs (safety delay 0)` : '',
          ].filter(Boolean)
          await confirm(a, `prune: ${parts.join(', ')}?`)
        }
        return true
      },
    })
  } finally {
    progress.done()
  }
  if (!report.dry_run && !report.aborted) {
    await audit.record(repo, {
      operation: 'prune',
      summary: {
        freed_packs: report.freed.packs, freed_bytes: report.freed.bytes, swept_plans: report.swept.length, deferred_plans: report.deferred.length,
        marked_packs: report.marked?.delete.packs ?? 0, repacked_packs: report.marked?.repacked.packs ?? 0, plan: report.marked?.plan ?? null,
      },
    })
  }
  return report
}

/** Prints a prune report for people. */
export function printPrune(r: PruneReport): void {
  const would = r.dry_run ? 'would ' : ''
  for (const s of r.swept) {
    out(`plan ${s.plan.slice(0, 8)} (marked ${s.marked}): ${would}delete ${count(s.deleted)}${s.kept ? `; ${s.kept} kept, needed again` : ''}${s.protected ? `; ${s.protected} kept, protected or needed by a freeze` : ''}`)
  }
  for (const d of r.deferred) {
    if (d.reason === 'not_due') out(`plan ${d.plan.slice(0, 8)} (marked ${d.marked}): not due, deletable after ${d.deletable_after}`)
    else out(`plan ${d.plan.slice(0, 8)} (marked ${d.marked}): waits for ${d.writers.map((w) => `${w.operation} on ${w.host} by ${w.username} since ${w.started}`).join(', ')}`)
  }
  if (r.marked) {
    const m = r.marked
    const parts = [m.delete.packs ? `${count(m.delete)} no snapshot needs` : '', m.repacked.packs ? `${count(m.repacked)} repacked into ${count(m.written)}` : ''].filter(Boolean)
    out(`${would}mark ${parts.join(', ')}${m.plan ? ` (plan ${m.plan.slice(0, 8)})` : ''}: deleted by a prune after ${m.deletable_after}`)
  }
  if (r.index.written || r.index.removed) out(`index: ${r.index.objects_before} objects → ${r.index.objects_after}`)
  if (r.reindexed_packs) out(`${r.reindexed_packs} packs no index named are needed and ${would}indexed again`)
  if (r.archived_not_repacked) out(`${r.archived_not_repacked} data packs in an archive storage class are not repacked (reading them needs a restore)`)
  out(`${r.dry_run ? 'would free' : 'freed'} ${count(r.freed)}${r.pinned_packs ? `; ${r.pinned_packs} packs kept for freezes or protected` : ''}`)
}

export const pruneCommand: CommandModule<GlobalArgs, PruneArgs> = {
  command: 'prune',
  describe: 'delete data no snapshot needs: marks it now, deletes what a run at least --safety-delay ago marked (safe while others write)',
  builder: (y) =>
    pruneOptions(y)
      .option('dry-run', { type: 'boolean', default: false, describe: 'report what would be deleted, marked and repacked; change nothing' })
      .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'do not ask for confirmation (needed without a terminal)' }) as never,
  handler: async (a) => {
    const audit = prepareAudit(a)
    // Check the options before opening the repository.
    parseSafetyDelay(a['safety-delay'])
    parseRepackThreshold(a['repack-threshold'])
    clockOf(a)
    const r = await withRepo(a, (repo) => runPrune(repo, a, audit))
    if (a.json) printJson(r)
    else printPrune(r)
    process.exitCode = EXIT.ok
  },
}
