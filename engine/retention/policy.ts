import { UsageError } from '../errors.js'
import { checkTimeZone, isoWeek, subtractDuration, wallTime } from './calendar.js'
import { formatRetentionDuration, isZeroDuration, type RetentionDuration } from './duration.js'

/**
 * Which snapshots to keep: restic's `forget` policy. Counts are a number of buckets (hours, days, ISO
 * weeks, months, years that have a snapshot), -1 for all of them, 0 or absent for none.
 */
export interface RetentionPolicy {
  last?: number
  hourly?: number
  daily?: number
  weekly?: number
  monthly?: number
  yearly?: number
  /** Keep every snapshot newer than the latest one minus this. */
  within?: RetentionDuration
  /** Keep one snapshot per hour (day, week, month, year) among those newer than the latest one minus this. */
  withinHourly?: RetentionDuration
  withinDaily?: RetentionDuration
  withinWeekly?: RetentionDuration
  withinMonthly?: RetentionDuration
  withinYearly?: RetentionDuration
  /** Keep every snapshot that has all the tags of at least one list (`--keep-tag a,b --keep-tag c`). */
  tags?: readonly (readonly string[])[]
}

/** What retention needs to know of a snapshot. */
export interface RetentionSnapshot {
  id: string
  /** ISO 8601 time (as stored) or a Date. */
  time: string | Date
  host: string
  paths: readonly string[]
  tags: readonly string[]
  job: string | null
  kind: 'snapshot' | 'freeze'
}

/** Fields snapshots can be grouped by. */
export type GroupField = 'host' | 'paths' | 'tags' | 'job'
export const GROUP_FIELDS: readonly GroupField[] = ['host', 'paths', 'tags', 'job']

export interface RetentionOptions {
  /** The clock: the latest snapshot a `within` rule counts from is the newest one before `now` (as in restic). */
  now: Date
  /**
   * IANA time zone the hour, day, week, month and year buckets are counted in (default `UTC`). restic counts
   * them in the zone offset each snapshot was recorded with, which is the local zone of the host that made it;
   * coldstore stores times in UTC and the CLI passes the local zone of the machine running forget.
   */
  timeZone?: string
  /**
   * Fields that put snapshots in one group; the policy applies to each group on its own. `auto` (the
   * default): host and job for snapshots of a job, host and paths for the others (restic's default). An
   * empty list makes one group.
   */
  groupBy?: readonly GroupField[] | 'auto'
  /**
   * Keep the oldest snapshot of a group when a bucket still has counts left, with the reason prefixed by
   * "oldest" (restic 0.16 and later; default true). false: as restic up to 0.15, which does not.
   */
  keepOldest?: boolean
}

/** A kept snapshot and why (restic's reason strings, plus "freeze"). */
export interface KeptSnapshot {
  id: string
  time: string
  reasons: string[]
}

export interface RemovedSnapshot {
  id: string
  time: string
}

/** One group and the decisions in it, newest first. */
export interface RetentionGroup {
  /** The values the group shares (only the fields grouped by). */
  key: { host?: string; paths?: string[]; tags?: string[]; job?: string | null }
  keep: KeptSnapshot[]
  remove: RemovedSnapshot[]
}

export interface RetentionDecision {
  groups: RetentionGroup[]
  /** Every kept snapshot (freezes included), newest first. */
  keep: KeptSnapshot[]
  /** Every snapshot to remove, newest first; never a freeze. */
  remove: RemovedSnapshot[]
}

/** The reason freezes are kept with: retention never selects a freeze. */
export const FREEZE_REASON = 'freeze'

const COUNTS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const
const WITHINS = ['withinHourly', 'withinDaily', 'withinWeekly', 'withinMonthly', 'withinYearly'] as const

/** True when the policy keeps nothing by any rule (forget refuses it rather than remove everything). */
export function isEmptyPolicy(p: RetentionPolicy): boolean {
  return COUNTS.every((k) => !p[k]) && isZeroDuration(p.within) && WITHINS.every((k) => isZeroDuration(p[k])) && !(p.tags && p.tags.length > 0)
}

/** Throws UsageError for counts other than whole numbers ≥ -1. */
export function checkPolicy(p: RetentionPolicy): void {
  for (const k of COUNTS) {
    const v = p[k]
    if (v === undefined) continue
    if (!Number.isSafeInteger(v) || v < -1) throw new UsageError(`--keep-${k}: ${v} is not a count (a whole number, or -1 / "unlimited" for all)`)
  }
}

/** restic's description: "keep 2 daily, 3 weekly snapshots and all snapshots within 1m of the newest". */
export function describePolicy(p: RetentionPolicy): string {
  const names: Record<(typeof COUNTS)[number], string> = { last: 'latest', hourly: 'hourly', daily: 'daily', weekly: 'weekly', monthly: 'monthly', yearly: 'yearly' }
  const keeps: string[] = []
  for (const k of COUNTS) {
    const v = p[k] ?? 0
    if (v > 0) keeps.push(`${v} ${names[k]}`)
    else if (v === -1) keeps.push(`all ${names[k]}`)
  }
  const withins: string[] = []
  for (const k of WITHINS) {
    const d = p[k]
    if (d && !isZeroDuration(d)) withins.push(`${k.slice('within'.length).toLowerCase()} snapshots within ${formatRetentionDuration(d)}`)
  }
  let s = keeps.length ? `${keeps.join(', ')} snapshots` : ''
  if (withins.length) s += `${s ? ', ' : ''}${withins.join(', ')}`
  if (p.tags && p.tags.length) s += `${s ? ' and ' : ''}all snapshots with tags ${p.tags.map(tagList).join(' ')}`
  if (p.within && !isZeroDuration(p.within)) s += `${s ? ' and ' : ''}all snapshots within ${formatRetentionDuration(p.within)} of the newest`
  return `keep ${s}`
}

/** restic's spelling of a tag list in reasons: `[a, b]`. */
function tagList(l: readonly string[]): string {
  return `[${l.join(', ')}]`
}

/** restic's HasTags: every tag of `l` is present; an empty tag in `l` matches a snapshot without tags. */
function hasTags(s: RetentionSnapshot, l: readonly string[]): boolean {
  for (const tag of l) {
    if (tag === '' && s.tags.length === 0) return true
    if (!s.tags.includes(tag)) return false
  }
  return true
}

interface Timed {
  s: RetentionSnapshot
  ms: number
  time: string
}

function toTimed(s: RetentionSnapshot): Timed {
  const ms = s.time instanceof Date ? s.time.getTime() : Date.parse(s.time)
  if (!Number.isFinite(ms)) throw new UsageError(`snapshot ${s.id}: time ${JSON.stringify(s.time)} is not a date`)
  return { s, ms, time: new Date(ms).toISOString() }
}

function groupFields(s: RetentionSnapshot, by: RetentionOptions['groupBy']): readonly GroupField[] {
  if (by === undefined || by === 'auto') return s.job !== null ? ['host', 'job'] : ['host', 'paths']
  return by
}

function groupKey(s: RetentionSnapshot, fields: readonly GroupField[]): RetentionGroup['key'] {
  const k: RetentionGroup['key'] = {}
  if (fields.includes('host')) k.host = s.host
  if (fields.includes('paths')) k.paths = [...s.paths].sort()
  if (fields.includes('tags')) k.tags = [...s.tags].sort()
  if (fields.includes('job')) k.job = s.job
  return k
}

/**
 * Applies a policy to snapshots: groups them, then, in each group, walks the snapshots from newest to
 * oldest with restic's buckets. A snapshot is kept when one rule keeps it; its reasons are restic's
 * strings ("last snapshot", "daily snapshot", "oldest monthly snapshot", "within 1m2d", "has tags [a]",
 * "daily within 1y"). Freezes are not counted in any bucket and are always kept, with the reason "freeze".
 * Pure: the same input gives the same decision.
 */
export function applyRetention(snapshots: readonly RetentionSnapshot[], policy: RetentionPolicy, o: RetentionOptions): RetentionDecision {
  checkPolicy(policy)
  const timeZone = o.timeZone ?? 'UTC'
  checkTimeZone(timeZone)
  const groups = new Map<string, { key: RetentionGroup['key']; list: Timed[] }>()
  for (const s of snapshots) {
    const key = groupKey(s, groupFields(s, o.groupBy))
    const k = JSON.stringify([key.host, key.paths, key.tags, key.job])
    let g = groups.get(k)
    if (!g) groups.set(k, (g = { key, list: [] }))
    g.list.push(toTimed(s))
  }
  const out: RetentionGroup[] = []
  for (const g of [...groups.values()].sort((a, b) => compareKeys(a.key, b.key))) {
    out.push({ key: g.key, ...applyToGroup(g.list, policy, o.now.getTime(), timeZone, o.keepOldest ?? true) })
  }
  const byTime = <T extends { time: string; id: string }>(a: T, b: T): number => (a.time < b.time ? 1 : a.time > b.time ? -1 : a.id < b.id ? -1 : 1)
  return {
    groups: out,
    keep: out.flatMap((g) => g.keep).sort(byTime),
    remove: out.flatMap((g) => g.remove).sort(byTime),
  }
}

function compareKeys(a: RetentionGroup['key'], b: RetentionGroup['key']): number {
  const x = JSON.stringify([a.host, a.job, a.paths, a.tags])
  const y = JSON.stringify([b.host, b.job, b.paths, b.tags])
  return x < y ? -1 : x > y ? 1 : 0
}

type Bucker = (ms: number, nr: number) => number

function applyToGroup(all: Timed[], p: RetentionPolicy, nowMs: number, timeZone: string, keepOldest: boolean): { keep: KeptSnapshot[]; remove: RemovedSnapshot[] } {
  const freezes = all.filter((t) => t.s.kind === 'freeze')
  // Newest first; equal times in id order (restic keeps its listing order there).
  const list = all.filter((t) => t.s.kind !== 'freeze').sort((a, b) => b.ms - a.ms || (a.s.id < b.s.id ? -1 : a.s.id > b.s.id ? 1 : 0))
  const keep: KeptSnapshot[] = []
  const remove: RemovedSnapshot[] = []
  const wall = (ms: number) => wallTime(ms, timeZone)
  const ymdh: Bucker = (ms) => { const w = wall(ms); return w.year * 1_000_000 + w.month * 10_000 + w.day * 100 + w.hour }
  const ymd: Bucker = (ms) => { const w = wall(ms); return w.year * 10_000 + w.month * 100 + w.day }
  const yw: Bucker = (ms) => { const w = wall(ms); const iw = isoWeek(w.year, w.month, w.day); return iw.year * 100 + iw.week }
  const ym: Bucker = (ms) => { const w = wall(ms); return w.year * 100 + w.month }
  const y: Bucker = (ms) => wall(ms).year
  const always: Bucker = (_ms, nr) => nr
  const buckets = [
    { count: p.last ?? 0, bucker: always, last: -1, reason: 'last snapshot' },
    { count: p.hourly ?? 0, bucker: ymdh, last: -1, reason: 'hourly snapshot' },
    { count: p.daily ?? 0, bucker: ymd, last: -1, reason: 'daily snapshot' },
    { count: p.weekly ?? 0, bucker: yw, last: -1, reason: 'weekly snapshot' },
    { count: p.monthly ?? 0, bucker: ym, last: -1, reason: 'monthly snapshot' },
    { count: p.yearly ?? 0, bucker: y, last: -1, reason: 'yearly snapshot' },
  ]
  const withins = [
    { within: p.withinHourly, bucker: ymdh, last: -1, reason: 'hourly within' },
    { within: p.withinDaily, bucker: ymd, last: -1, reason: 'daily within' },
    { within: p.withinWeekly, bucker: yw, last: -1, reason: 'weekly within' },
    { within: p.withinMonthly, bucker: ym, last: -1, reason: 'monthly within' },
    { within: p.withinYearly, bucker: y, last: -1, reason: 'yearly within' },
  ]
  // The newest snapshot that is not in the future (restic's findLatestTimestamp); none: every snapshot is "within".
  let latest = -Infinity
  for (const t of list) if (t.ms > latest && t.ms < nowMs) latest = t.ms
  const since = (d: RetentionDuration): number => (latest === -Infinity ? -Infinity : subtractDuration(latest, d, timeZone))

  list.forEach((cur, nr) => {
    let keepIt = false
    const reasons: string[] = []
    const oldest = nr === list.length - 1
    for (const l of p.tags ?? []) {
      if (hasTags(cur.s, l)) {
        keepIt = true
        reasons.push(`has tags ${tagList(l)}`)
      }
    }
    if (p.within && !isZeroDuration(p.within) && cur.ms > since(p.within)) {
      keepIt = true
      reasons.push(`within ${formatRetentionDuration(p.within)}`)
    }
    for (const b of buckets) {
      if (b.count > 0 || b.count === -1) {
        const val = b.bucker(cur.ms, nr)
        if (val !== b.last || (keepOldest && oldest)) {
          keepIt = true
          reasons.push(val === b.last ? `oldest ${b.reason}` : b.reason)
          b.last = val
          if (b.count > 0) b.count--
        }
      }
    }
    for (const b of withins) {
      if (!b.within || isZeroDuration(b.within) || !(cur.ms > since(b.within))) continue
      const val = b.bucker(cur.ms, nr)
      if (val !== b.last || (keepOldest && oldest)) {
        keepIt = true
        reasons.push(`${val === b.last ? `oldest ${b.reason}` : b.reason} ${formatRetentionDuration(b.within)}`)
        b.last = val
      }
    }
    if (keepIt) keep.push({ id: cur.s.id, time: cur.time, reasons })
    else remove.push({ id: cur.s.id, time: cur.time })
  })
  for (const f of freezes) keep.push({ id: f.s.id, time: f.time, reasons: [FREEZE_REASON] })
  keep.sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : a.id < b.id ? -1 : 1))
  return { keep, remove }
}
