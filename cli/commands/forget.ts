import type { CommandModule } from 'yargs'
import {
  GROUP_FIELDS, checkTimeZone, describePolicy, forget, parseRetentionDuration, type GroupField, type PruneReport, type RetentionDecision,
  type RetentionPolicy,
} from '../../engine/index.js'
import { prepareAudit } from '../audit-hook.js'
import { CliError, EXIT, err, out, printJson, withRepo, type GlobalArgs } from '../common.js'
import { confirm } from '../confirm.js'
import { clockOf, parseRepackThreshold, parseSafetyDelay, printPrune, pruneOptions, runPrune, type PruneArgs } from './prune.js'

interface Args extends GlobalArgs, PruneArgs {
  'keep-last'?: string
  'keep-hourly'?: string
  'keep-daily'?: string
  'keep-weekly'?: string
  'keep-monthly'?: string
  'keep-yearly'?: string
  'keep-within'?: string
  'keep-within-hourly'?: string
  'keep-within-daily'?: string
  'keep-within-weekly'?: string
  'keep-within-monthly'?: string
  'keep-within-yearly'?: string
  'keep-tag'?: string[]
  host?: string[]
  job?: string[]
  tag?: string[]
  'group-by'?: string
  'time-zone'?: string
  prune?: boolean
}

const COUNTS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const
const WITHINS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const

/** `7`, `-1` or `unlimited` → a count (-1: all). */
function parseCount(flag: string, s: string | undefined): number | undefined {
  if (s === undefined) return undefined
  if (/^\s*unlimited\s*$/i.test(s)) return -1
  if (!/^\s*-?\d+\s*$/.test(s) || Number(s) < -1) throw new CliError(`--${flag}: ${JSON.stringify(s)} is not a count (a whole number, or -1 / unlimited for all)`, EXIT.usage)
  return Number(s)
}

function duration(flag: string, s: string | undefined): RetentionPolicy['within'] {
  if (s === undefined) return undefined
  try {
    return parseRetentionDuration(s)
  } catch (e) {
    throw new CliError(`--${flag}: ${(e as Error).message}`, EXIT.usage)
  }
}

/** `a,b` → ['a', 'b'] (restic's tag lists; an empty string is the list of no tags). */
const tagList = (s: string): string[] => (s === '' ? [''] : s.split(',').map((x) => x.trim()))

function policyOf(a: Args): RetentionPolicy {
  const p: RetentionPolicy = {}
  for (const k of COUNTS) {
    const v = parseCount(`keep-${k}`, a[`keep-${k}`])
    if (v !== undefined) p[k] = v
  }
  p.within = duration('keep-within', a['keep-within'])
  for (const k of WITHINS) {
    const key = `within${k[0].toUpperCase()}${k.slice(1)}` as 'withinHourly'
    const d = duration(`keep-within-${k}`, a[`keep-within-${k}`])
    if (d) p[key] = d
  }
  if (a['keep-tag']?.length) p.tags = a['keep-tag'].map(tagList)
  return p
}

function groupByOf(s: string | undefined): readonly GroupField[] | 'auto' {
  if (s === undefined || s === 'auto') return 'auto'
  if (s.trim() === '') return []
  const fields = s.split(',').map((x) => x.trim())
  for (const f of fields) if (!GROUP_FIELDS.includes(f as GroupField)) throw new CliError(`--group-by: unknown field ${JSON.stringify(f)} (host, paths, tags, job; "auto"; or "" for one group)`, EXIT.usage)
  return fields as GroupField[]
}

/** The local time zone (TZ, else the system's), or --time-zone. */
function timeZoneOf(a: Args): string {
  const z = a['time-zone'] ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC'
  try {
    checkTimeZone(z)
  } catch (e) {
    throw new CliError(`--time-zone: ${(e as Error).message}`, EXIT.usage)
  }
  return z
}

/** `2026-06-01 10:00:00` in the zone buckets are counted in. */
function localTime(iso: string, timeZone: string): string {
  const p = new Intl.DateTimeFormat('en-CA', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).formatToParts(new Date(iso))
  const g = (k: string): string => p.find((x) => x.type === k)?.value ?? ''
  return `${g('year')}-${g('month')}-${g('day')} ${g('hour')}:${g('minute')}:${g('second')}`
}

function groupTitle(k: RetentionDecision['groups'][number]['key']): string {
  const parts: string[] = []
  if (k.host !== undefined) parts.push(`host ${k.host}`)
  if (k.job !== undefined) parts.push(k.job === null ? 'no job' : `job ${k.job}`)
  if (k.paths !== undefined) parts.push(`paths ${k.paths.join(', ')}`)
  if (k.tags !== undefined) parts.push(k.tags.length ? `tags ${k.tags.join(',')}` : 'no tags')
  return parts.length ? parts.join(', ') : 'all snapshots'
}

export const forgetCommand: CommandModule<GlobalArgs, Args> = {
  command: 'forget',
  describe: 'remove snapshots by a retention policy (restic\'s forget rules); freezes are always kept; --prune deletes their data afterwards',
  builder: (y) => {
    let b = y
    const units = { hourly: 'hours', daily: 'days', weekly: 'ISO weeks', monthly: 'months', yearly: 'years' }
    for (const k of COUNTS) {
      b = b.option(`keep-${k}`, { type: 'string', describe: k === 'last' ? 'keep the N newest snapshots (-1 or unlimited: all)' : `keep the newest snapshot of each of the last N ${units[k]} that have one (-1 or unlimited: all)` })
    }
    b = b.option('keep-within', { type: 'string', describe: 'keep snapshots newer than the newest one minus this (1y2m3d4h: years, months, days, hours)' })
    for (const k of WITHINS) b = b.option(`keep-within-${k}`, { type: 'string', describe: `keep one ${k} snapshot among those newer than the newest minus this duration` })
    return pruneOptions(
      b
        .option('keep-tag', { type: 'string', array: true, describe: 'keep snapshots with all these tags (a,b; repeatable: any of the lists)' })
        .option('host', { type: 'string', array: true, describe: 'only consider snapshots of this host (repeatable)' })
        .option('job', { type: 'string', array: true, describe: 'only consider snapshots of this job (repeatable)' })
        .option('tag', { type: 'string', array: true, describe: 'only consider snapshots with all these tags (a,b; repeatable: any of the lists)' })
        .option('group-by', { type: 'string', describe: 'apply the policy per group of these fields: host, paths, tags, job; "" for one group (default auto: host,job for job snapshots, host,paths for others)' })
        .option('time-zone', { type: 'string', describe: 'count hours, days, weeks, months and years in this IANA zone (default: the local zone, TZ)' })
        .option('dry-run', { alias: 'n', type: 'boolean', default: false, describe: 'show what would be kept (and why) and removed; change nothing' })
        .option('prune', { type: 'boolean', default: false, describe: 'run prune afterwards (with --safety-delay, --repack-threshold)' })
        .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'do not ask for confirmation (needed without a terminal)' }),
    ) as never
  },
  handler: async (a) => {
    const audit = prepareAudit(a)
    const policy = policyOf(a)
    const groupBy = groupByOf(a['group-by'])
    const timeZone = timeZoneOf(a)
    const now = clockOf(a)
    if (a.prune) {
      parseSafetyDelay(a['safety-delay'])
      parseRepackThreshold(a['repack-threshold'])
    }
    const { result, pruned } = await withRepo(a, async (repo) => {
      const result = await forget(repo, {
        policy, groupBy, timeZone, now, dryRun: a['dry-run'],
        hosts: a.host, jobs: a.job, tags: a.tag?.map(tagList),
        onUnreadable: (id, e) => err(`warning: snapshot ${id.slice(0, 8)} cannot be read and is left alone: ${(e as Error).message}`),
        approve: async (d) => {
          await confirm(a, `remove ${d.remove.length} snapshot${d.remove.length === 1 ? '' : 's'}${a.prune ? ' and prune' : ''}?`)
          // Recorded before anything is removed: a removal the trail does not list would show as tampering.
          await audit.record(repo, {
            operation: 'forget',
            removed: d.remove.map((r) => r.id),
            summary: { kept: d.keep.length, removed: d.remove.length, policy: describePolicy(policy) },
          }, { strict: true })
          return true
        },
      })
      let pruned: PruneReport | null = null
      if (a.prune && !a['dry-run']) pruned = await runPrune(repo, a, audit, { confirmed: result.removed.length > 0 })
      return { result, pruned }
    })
    const d = result.decision
    if (a.json) {
      const doc: Record<string, unknown> = {
        keep: d.keep.map((k) => ({ id: k.id, time: k.time, reasons: k.reasons })),
        remove: d.remove.map((r) => ({ id: r.id, time: r.time })),
      }
      if (a.prune) doc.prune = pruned
      printJson(doc)
      return
    }
    out(`applying policy: ${describePolicy(policy)}${timeZone !== 'UTC' ? ` (buckets in ${timeZone})` : ''}`)
    for (const g of d.groups) {
      out(`${groupTitle(g.key)}: keep ${g.keep.length}, remove ${g.remove.length}`)
      for (const k of g.keep) out(`  keep    ${k.id.slice(0, 8)}  ${localTime(k.time, timeZone)}  ${k.reasons.join(', ')}`)
      for (const r of g.remove) out(`  remove  ${r.id.slice(0, 8)}  ${localTime(r.time, timeZone)}`)
    }
    if (result.dryRun) out(`dry run: would remove ${d.remove.length} of ${result.considered} snapshots${a.prune ? ' (prune is not run in a dry run)' : ''}`)
    else out(`removed ${result.removed.length} of ${result.considered} snapshots`)
    if (pruned) printPrune(pruned)
  },
}
