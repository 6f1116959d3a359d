/**
 * `coldstore cost --repo R | --config F [--json]`: what the repositories cost a month, per storage class and
 * per job; the cost and time of a full restore per retrieval tier; the early-deletion fees prune would
 * incur now; and, with `--forget ID...` (or `--keep-...` rules), what removing snapshots would save.
 * Prices: the built-in table with the configuration's `prices:` overrides. `--notify` sends the
 * `cost_threshold` notification when the total is above `notify.cost_threshold_usd`.
 */
import { readFileSync } from 'node:fs'
import type { CommandModule } from 'yargs'
import {
  NotFoundError, applyRetention, parseRetentionDuration, closeRepository, costThresholdEvent, estimateRepositoryCost, findSnapshot, formatUSD, formatWait, listSnapshots, openRepository, parseJobs, parseNotify, parsePrices,
  type ColdstoreConfig, type EarlyDeletion, type JobDefinition, type PricedSet, type PriceTable, type Repository, type RepositoryCost, type RetentionPolicy, type Snapshot,
} from '../../engine/index.js'
import { configPath, loadConfig, resolveLocation } from '../config-file.js'
import { CliError, EXIT, Progress, cacheDir, formatBytes, out, password, printJson, remoteOptions, repoLocation, type GlobalArgs } from '../common.js'
import { makeNotifier } from './notify.js'

interface Args extends GlobalArgs {
  forget?: string[]
  'keep-last'?: number
  'keep-hourly'?: number
  'keep-daily'?: number
  'keep-weekly'?: number
  'keep-monthly'?: number
  'keep-yearly'?: number
  'keep-within'?: string
  'keep-tag'?: string[]
  'retrieval-days'?: number
  notify?: boolean
}

/** The `--keep-*` rules as given (restic's forget options). */
export interface KeepRules {
  last?: number
  hourly?: number
  daily?: number
  weekly?: number
  monthly?: number
  yearly?: number
  within?: string
  tags?: string[]
}

/** The ids of the snapshots `rules` would remove: the retention engine (restic's forget rules, as `coldstore forget`); freezes never. */
export function retentionRemovals(snapshots: readonly Snapshot[], rules: KeepRules, o: { now: Date; timeZone: string }): string[] {
  const policy: RetentionPolicy = {
    last: rules.last, hourly: rules.hourly, daily: rules.daily, weekly: rules.weekly, monthly: rules.monthly, yearly: rules.yearly,
    within: rules.within === undefined ? undefined : parseRetentionDuration(rules.within),
    tags: rules.tags?.map((l) => l.split(',').map((x) => x.trim())),
  }
  return applyRetention(snapshots, policy, { now: o.now, timeZone: o.timeZone }).remove.map((r) => r.id)
}

function keepRules(a: Args): KeepRules | null {
  const r: KeepRules = {}
  const n = (k: 'last' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly', v: number | undefined): void => {
    if (v === undefined) return
    if (!Number.isInteger(v) || v < -1) throw new CliError(`--keep-${k}: expected a whole number (-1: all)`, EXIT.usage)
    r[k] = v
  }
  n('last', a['keep-last'])
  n('hourly', a['keep-hourly'])
  n('daily', a['keep-daily'])
  n('weekly', a['keep-weekly'])
  n('monthly', a['keep-monthly'])
  n('yearly', a['keep-yearly'])
  if (a['keep-within'] !== undefined) r.within = a['keep-within']
  if (a['keep-tag']?.length) r.tags = a['keep-tag']
  return Object.keys(r).length ? r : null
}


function tally(objects: number, bytes: number, what = 'object'): string {
  return `${formatBytes(bytes)} in ${objects} ${what}${objects === 1 ? '' : 's'}`
}

interface Target {
  /** The location as written (a path, URL or name://). */
  location: string
  /** Jobs of the configuration that use it (empty with --repo). */
  jobs: JobDefinition[]
}

/** The repositories to estimate: --repo, or every distinct repository of the configuration's jobs. */
function targets(a: Args, config: ColdstoreConfig | null): { list: Target[]; restic: string[] } {
  if (a.repo || process.env.COLDSTORE_REPO) return { list: [{ location: repoLocation(a), jobs: [] }], restic: [] }
  if (!config) throw new CliError('give --repo R, or --config F with jobs:', EXIT.usage)
  const jobs = parseJobs(config, { defaultTimezone: process.env.TZ || Intl.DateTimeFormat().resolvedOptions().timeZone })
  const byUrl = new Map<string, Target>()
  const restic: string[] = []
  for (const j of jobs.values()) {
    if (j.repo === null) {
      restic.push(j.name)
      continue
    }
    const url = resolveLocation(j.repo, a.config).url
    let t = byUrl.get(url)
    if (!t) byUrl.set(url, (t = { location: j.repo, jobs: [] }))
    t.jobs.push(j)
  }
  if (byUrl.size === 0 && restic.length === 0) throw new CliError(`${config.path} has no jobs: give --repo R`, EXIT.usage)
  return { list: [...byUrl.values()], restic }
}

async function openTarget(a: Args, t: Target, config: ColdstoreConfig | null): Promise<Repository> {
  const r = resolveLocation(t.location, a.config)
  const job = t.jobs.find((j) => j.passwordFile !== null)
  let pw: string | null
  if (job?.passwordFile && config) {
    const file = configPath(config, job.passwordFile)
    try {
      pw = readFileSync(file, 'utf8').replace(/\r?\n$/, '')
    } catch (err) {
      throw new CliError(`jobs.${job.name}.password_file: cannot read ${file}: ${(err as Error).message}`, EXIT.usage)
    }
  } else {
    pw = await password(a, { location: t.location })
  }
  const ro = remoteOptions(a, t.location)
  const settings = { ...ro.settings, ...Object.assign({}, ...t.jobs.map((j) => j.remoteSettings)) }
  const progress = new Progress(a)
  try {
    return await openRepository({
      url: r.url, password: pw, cacheDir: cacheDir(a), remote: { ...ro, settings },
      onProgress: (p) => progress.line(`loading index ${p.done}/${p.total}`, p.done === p.total),
    })
  } finally {
    progress.done()
  }
}

function pricedJson(p: PricedSet): Record<string, unknown> {
  return {
    objects: p.objects, bytes: p.bytes, monthly_usd: p.monthlyUSD,
    by_class: p.byClass.map((c) => ({ storage_class: c.storageClass, objects: c.objects, bytes: c.bytes, price_per_gb_month: c.pricePerGBMonth, monthly_usd: c.monthlyUSD })),
  }
}

function earlyJson(e: EarlyDeletion): Record<string, unknown> {
  return {
    packs: e.packs, bytes: e.bytes, fee_usd: e.feeUSD, age_known: e.ageKnown,
    by_class: e.byClass.map((c) => ({ storage_class: c.storageClass, packs: c.packs, bytes: c.bytes, min_days: c.minDays, fee_usd: c.feeUSD })),
  }
}

/** The `--json` form of one repository's report. */
export function costJson(r: RepositoryCost, configJobs: string[]): Record<string, unknown> {
  return {
    location: r.location, provider: r.provider, price_label: r.priceLabel, storage_classes: r.storageClasses, time: r.time,
    stored: pricedJson(r.stored),
    jobs: r.jobs.map((j) => ({
      job: j.job, host: j.host, paths: j.paths, snapshots: j.snapshots, latest_time: j.latestTime, referenced: pricedJson(j.referenced),
      restore: {
        snapshots: j.restore.snapshots, files: j.restore.files, bytes: j.restore.bytes, packs: j.restore.packs, by_class: j.restore.byClass,
        tiers: j.restore.tiers.map((x) => ({ tier: x.tier, hours: x.hours, cost_usd: x.costUSD, breakdown: { retrieval: x.breakdown.retrieval, requests: x.breakdown.requests, reads: x.breakdown.reads, egress: x.breakdown.egress, restored_copy: x.breakdown.restoredCopy } })),
      },
    })),
    config_jobs_without_snapshots: configJobs.filter((n) => !r.jobs.some((j) => j.job === n)),
    unreferenced: { objects: r.unreferenced.objects, bytes: r.unreferenced.bytes, early_deletion: earlyJson(r.unreferenced.earlyDeletion) },
    retention: r.retention && {
      remove: r.retention.remove, freed: pricedJson(r.retention.freed), shared: r.retention.shared, early_deletion: earlyJson(r.retention.earlyDeletion),
    },
    notes: r.notes,
  }
}

function printReport(r: RepositoryCost, configJobs: string[], days: number): void {
  out(`repository ${r.location}  (prices: ${r.priceLabel})`)
  out(`  stored: ${tally(r.stored.objects, r.stored.bytes)}, ${formatUSD(r.stored.monthlyUSD)}/month`)
  const w = Math.max(0, ...r.stored.byClass.map((c) => c.storageClass.length))
  for (const c of r.stored.byClass) {
    out(`    ${c.storageClass.padEnd(w)}  ${tally(c.objects, c.bytes).padEnd(24)}  ${c.pricePerGBMonth === null ? 'no price' : `at $${c.pricePerGBMonth}/GB-month`}  ${formatUSD(c.monthlyUSD)}/month`)
  }
  for (const j of r.jobs) {
    const name = j.job !== null ? `job ${j.job}` : `snapshots of ${j.host} ${j.paths!.join(' ')} (no job)`
    out(`  ${name}: ${j.snapshots} snapshot${j.snapshots === 1 ? '' : 's'}, latest ${j.latestTime.replace('T', ' ').slice(0, 16)} UTC`)
    out(`    references ${tally(j.referenced.objects, j.referenced.bytes, 'pack')}, ${formatUSD(j.referenced.monthlyUSD)}/month${r.jobs.length > 1 ? ' (packs shared between jobs count for each)' : ''}`)
    const rs = j.restore
    out(`    full restore: ${formatBytes(rs.bytes)} in ${rs.files} file${rs.files === 1 ? '' : 's'}, reading ${tally(rs.packs.objects, rs.packs.bytes, 'data pack')}${Object.keys(rs.byClass).length ? ` (${Object.entries(rs.byClass).map(([c, t]) => `${c} ${formatBytes(t.bytes)}`).join(', ')})` : ''}`)
    for (const x of rs.tiers) {
      const b = x.breakdown
      out(`      ${x.tier.padEnd(9)}  ${formatWait(x.hours).padEnd(14)}  ~${formatUSD(x.costUSD).padEnd(8)}  (retrieval ${formatUSD(b.retrieval + b.requests)}, reads ${formatUSD(b.reads)}, download ${formatUSD(b.egress)}${b.restoredCopy ? `, retrieved copies for ${days} days ${formatUSD(b.restoredCopy)}` : ''})`)
    }
  }
  for (const n of configJobs.filter((n) => !r.jobs.some((j) => j.job === n))) out(`  job ${n}: no snapshots yet`)
  const u = r.unreferenced
  if (u.objects > 0) {
    out(`  prune now: ${tally(u.objects, u.bytes, 'unreferenced pack')}; early-deletion fees ${formatUSD(u.earlyDeletion.feeUSD)}${u.earlyDeletion.ageKnown ? '' : ' (at most: ages unknown)'}`)
  } else {
    out('  prune now: nothing unreferenced')
  }
  if (r.retention) {
    const x = r.retention
    out(`  removing ${x.remove.length} snapshot${x.remove.length === 1 ? '' : 's'} (${x.remove.map((id) => id.slice(0, 8)).join(', ')}): frees ${tally(x.freed.objects, x.freed.bytes, 'pack')}, saves ${formatUSD(x.freed.monthlyUSD)}/month`)
    const e = x.earlyDeletion
    out(`    early-deletion fees if pruned now: ${formatUSD(e.feeUSD)}${e.byClass.length ? ` (${e.byClass.map((c) => `${c.packs} ${c.storageClass} pack${c.packs === 1 ? '' : 's'} younger than ${c.minDays} days`).join(', ')})` : ''}`)
    if (x.shared.objects) out(`    ${tally(x.shared.objects, x.shared.bytes, 'pack')} stay: kept snapshots use them too (prune frees their unused parts only by repacking)`)
  }
  for (const n of r.notes) out(`  note: ${n}`)
}

export const costCommand: CommandModule<GlobalArgs, Args> = {
  command: 'cost',
  describe: 'estimated monthly cost, full-restore cost per retrieval tier, and what a retention change would save',
  builder: (y) =>
    y
      .option('forget', { type: 'string', array: true, describe: 'estimate removing these snapshots (ids or 8+ hex prefixes)' })
      .option('keep-last', { type: 'number', describe: 'estimate a retention change: keep the last N snapshots' })
      .option('keep-hourly', { type: 'number', describe: 'keep N hourly snapshots' })
      .option('keep-daily', { type: 'number', describe: 'keep N daily snapshots' })
      .option('keep-weekly', { type: 'number', describe: 'keep N weekly snapshots' })
      .option('keep-monthly', { type: 'number', describe: 'keep N monthly snapshots' })
      .option('keep-yearly', { type: 'number', describe: 'keep N yearly snapshots' })
      .option('keep-within', { type: 'string', describe: 'keep snapshots within this duration of the newest (1y6m, 30d)' })
      .option('keep-tag', { type: 'string', array: true, describe: 'keep snapshots with this tag' })
      .option('retrieval-days', { type: 'number', describe: 'days retrieved copies are kept in a restore estimate (default 7)' })
      .option('notify', { type: 'boolean', describe: 'send the cost_threshold notification when the total is above notify.cost_threshold_usd' }),
  handler: async (a) => {
    const config = loadConfig(a.config)
    const prices: PriceTable = parsePrices(config)
    const notify = config ? parseNotify(config) : null
    const days = a['retrieval-days'] ?? 7
    if (!Number.isInteger(days) || days < 1 || days > 365) throw new CliError('--retrieval-days must be a whole number of days from 1 to 365', EXIT.usage)
    const rules = keepRules(a)
    if (rules && a.forget?.length) throw new CliError('give --forget or --keep-... rules, not both', EXIT.usage)
    if (a.notify && !notify) throw new CliError('--notify needs a configuration file with a notify: section', EXIT.usage)
    const { list, restic } = targets(a, config)
    const now = new Date()
    const reports: { report: RepositoryCost; jobs: string[] }[] = []
    const found = new Set<string>()
    for (const t of list) {
      const repo = await openTarget(a, t, config)
      try {
        let remove: string[] | null = null
        if (a.forget?.length) {
          remove = []
          for (const ref of a.forget) {
            try {
              remove.push((await findSnapshot(repo, ref)).id)
              found.add(ref)
            } catch (err) {
              if (!(err instanceof NotFoundError)) throw err
            }
          }
        } else if (rules) {
          remove = retentionRemovals(await listSnapshots(repo), rules, { now, timeZone: process.env.TZ || Intl.DateTimeFormat().resolvedOptions().timeZone })
        }
        const progress = new Progress(a)
        try {
          const report = await estimateRepositoryCost(repo, { prices, now, remove, retrievalDays: days, onProgress: (m) => progress.line(m) })
          reports.push({ report, jobs: t.jobs.map((j) => j.name) })
        } finally {
          progress.done()
        }
      } finally {
        await closeRepository(repo)
      }
    }
    const missing = (a.forget ?? []).filter((ref) => !found.has(ref))
    if (missing.length) throw new CliError(`--forget: no snapshot ${missing.join(', ')}`, EXIT.usage)

    const total = Math.round(reports.reduce((s, r) => s + r.report.stored.monthlyUSD, 0) * 1e9) / 1e9
    const threshold = notify?.costThresholdUSD ?? null
    const above = threshold !== null && total > threshold
    let notification: Record<string, unknown> | null = null
    if (a.notify && notify && threshold !== null) {
      const parts: Record<string, number> = {}
      for (const r of reports) for (const j of r.report.jobs) if (j.job) parts[`job ${j.job}`] = j.referenced.monthlyUSD
      const event = costThresholdEvent({ monthlyUSD: total, thresholdUSD: threshold, parts })
      if (event) {
        const o = await makeNotifier(a, notify).notify(event)
        notification = { sent: o.sent, reason: o.reason, results: o.results.map((r) => ({ channel: r.channel, ok: r.ok, error: r.error ?? null })) }
      }
    }
    if (a.json) {
      printJson({
        time: now.toISOString(), total_monthly_usd: total, threshold_usd: threshold, above_threshold: above,
        repositories: reports.map((r) => costJson(r.report, r.jobs)), restic_jobs: restic, notification,
      })
      return
    }
    for (const r of reports) printReport(r.report, r.jobs, days)
    for (const j of restic) out(`job ${j}: a restic repository, not estimated (restic's format is not read)`)
    out(`total: ${formatUSD(total)}/month (estimate; storage only, without requests)${threshold !== null ? `; threshold ${formatUSD(threshold)}${above ? ': ABOVE' : ''}` : ''}`)
    if (notification) out(`cost notification: ${notification.sent ? 'sent' : `not sent (${String(notification.reason)})`}`)
  },
}
