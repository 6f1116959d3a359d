/**
 * Retention decisions as tables: each case a snapshot list, a policy and the clock, with the decision kept
 * as a golden file (t.matchSnapshot) and its key facts asserted. The same bucket rules as restic's forget
 * (restic-compat.test.ts checks them against restic itself); here the parts restic 0.14 cannot show:
 * -1 for unlimited, the oldest snapshot of a group, freezes, grouping by job, time zones.
 */
import t from 'tap'
import {
  applyRetention, describePolicy, formatRetentionDuration, isEmptyPolicy, isoWeek, parseRetentionDuration, subtractDuration,
  type RetentionOptions, type RetentionPolicy, type RetentionSnapshot,
} from './index.js'
import { UsageError } from '../errors.js'

let n = 0
function snap(time: string, o: Partial<RetentionSnapshot> = {}): RetentionSnapshot {
  n++
  return { id: `s${String(n).padStart(3, '0')}`, time, host: 'h', paths: ['/data'], tags: [], job: null, kind: 'snapshot', ...o }
}

/** One snapshot a day at 10:00 UTC from `from` for `days` days. */
function daily(from: string, days: number, o: Partial<RetentionSnapshot> = {}): RetentionSnapshot[] {
  const start = Date.parse(from)
  return Array.from({ length: days }, (_, i) => snap(new Date(start + i * 86_400_000).toISOString(), o))
}

const NOW = new Date('2026-06-30T12:00:00Z')

interface Case {
  name: string
  snapshots: RetentionSnapshot[]
  policy: RetentionPolicy
  options?: Partial<RetentionOptions>
  /** Ids kept, when worth stating beside the golden file. */
  keep?: string[]
  check?: (d: ReturnType<typeof applyRetention>, tt: typeof t) => void
}

n = 0
const hundredDays = daily('2026-03-22T10:00:00Z', 100)
const cases: Case[] = [
  {
    name: 'keep-last 3 keeps the three newest',
    snapshots: daily('2026-06-01T10:00:00Z', 6),
    policy: { last: 3 },
    check: (d, tt) => tt.same(d.keep.map((k) => k.reasons), [['last snapshot'], ['last snapshot'], ['last snapshot']]),
  },
  {
    name: 'daily 7, weekly 4, monthly 3 over 100 days',
    snapshots: hundredDays,
    policy: { daily: 7, weekly: 4, monthly: 3 },
  },
  {
    name: 'unlimited daily (-1) keeps one per day, all days',
    snapshots: [...daily('2026-06-01T08:00:00Z', 5), ...daily('2026-06-01T20:00:00Z', 5)],
    policy: { daily: -1 },
    check: (d, tt) => {
      tt.equal(d.keep.length, 6, 'one per day, and the oldest')
      tt.ok(d.keep.slice(0, 5).every((k) => k.time.endsWith('T20:00:00.000Z') && k.reasons[0] === 'daily snapshot'), 'the newest of each day')
      tt.same(d.keep[5].reasons, ['oldest daily snapshot'])
    },
  },
  {
    name: 'the oldest snapshot is kept while counts are left (restic ≥ 0.16)',
    snapshots: [snap('2026-06-01T10:00:00Z'), snap('2026-06-01T11:00:00Z'), snap('2026-06-01T12:00:00Z')],
    policy: { daily: 5 },
    check: (d, tt) => {
      tt.same(d.keep.map((k) => k.reasons), [['daily snapshot'], ['oldest daily snapshot']])
      tt.equal(d.remove.length, 1)
    },
  },
  {
    name: 'without keepOldest (restic ≤ 0.15) the oldest goes',
    snapshots: [snap('2026-06-01T10:00:00Z'), snap('2026-06-01T11:00:00Z'), snap('2026-06-01T12:00:00Z')],
    policy: { daily: 5 },
    options: { keepOldest: false },
    check: (d, tt) => tt.equal(d.keep.length, 1),
  },
  {
    name: 'freezes are never removed and not counted',
    snapshots: [
      snap('2026-06-01T10:00:00Z'), snap('2026-06-02T10:00:00Z', { kind: 'freeze' }), snap('2026-06-03T10:00:00Z'),
      snap('2026-06-04T10:00:00Z'), snap('2020-01-01T00:00:00Z', { kind: 'freeze' }),
    ],
    policy: { last: 1 },
    check: (d, tt) => {
      const freezes = d.keep.filter((k) => k.reasons.includes('freeze'))
      tt.equal(freezes.length, 2, 'both freezes kept')
      tt.ok(freezes.every((k) => k.reasons.length === 1), 'with the reason "freeze" only')
      tt.same(d.keep.filter((k) => !k.reasons.includes('freeze')).map((k) => k.time), ['2026-06-04T10:00:00.000Z'], 'keep-last counts snapshots only')
      tt.equal(d.remove.length, 2)
    },
  },
  {
    name: 'auto grouping: host and job for job snapshots, host and paths otherwise',
    snapshots: [
      snap('2026-06-01T10:00:00Z', { job: 'photos', paths: ['/a'] }), snap('2026-06-02T10:00:00Z', { job: 'photos', paths: ['/a', '/b'] }),
      snap('2026-06-01T11:00:00Z', { host: 'other', job: 'photos', paths: ['/a'] }),
      snap('2026-06-01T12:00:00Z', { paths: ['/a'] }), snap('2026-06-02T12:00:00Z', { paths: ['/a', '/b'] }),
    ],
    policy: { last: 1 },
    options: { keepOldest: false },
    check: (d, tt) => {
      tt.equal(d.groups.length, 4, 'photos@h (paths changed, one group), photos@other, /a@h, /a,/b@h')
      tt.equal(d.remove.length, 1, 'only the older photos snapshot on h goes')
      tt.equal(d.remove[0].time, '2026-06-01T10:00:00.000Z')
    },
  },
  {
    name: 'group by nothing: one group',
    snapshots: [snap('2026-06-01T10:00:00Z', { host: 'a' }), snap('2026-06-02T10:00:00Z', { host: 'b' })],
    policy: { last: 1 },
    options: { groupBy: [], keepOldest: false },
    check: (d, tt) => tt.equal(d.keep.length, 1),
  },
  {
    name: 'keep-within counts from the newest snapshot, not from now; future snapshots do not count as newest',
    snapshots: [snap('2026-01-01T00:00:00Z'), snap('2026-01-10T00:00:00Z'), snap('2026-01-20T00:00:00Z'), snap('2027-01-01T00:00:00Z')],
    policy: { within: parseRetentionDuration('10d') },
    check: (d, tt) => tt.same(d.keep.map((k) => k.time), ['2027-01-01T00:00:00.000Z', '2026-01-20T00:00:00.000Z'], 'the future one is after the bound too; 01-10 is exactly 10 days before: not within'),
  },
  {
    name: 'keep-tag lists: all tags of one list',
    snapshots: [snap('2026-06-01T10:00:00Z', { tags: ['a', 'b'] }), snap('2026-06-02T10:00:00Z', { tags: ['a'] }), snap('2026-06-03T10:00:00Z', { tags: ['c'] }), snap('2026-06-04T10:00:00Z')],
    policy: { tags: [['a', 'b'], ['c']] },
    check: (d, tt) => tt.same(d.keep.map((k) => k.reasons), [['has tags [c]'], ['has tags [a, b]']]),
  },
  {
    name: 'days are counted in the given time zone',
    // 23:30 UTC is the next day in Berlin (summer: UTC+2).
    snapshots: [snap('2026-06-01T21:00:00Z'), snap('2026-06-01T23:30:00Z')],
    policy: { daily: 10 },
    options: { timeZone: 'Europe/Berlin', keepOldest: false },
    check: (d, tt) => tt.equal(d.keep.length, 2, 'two days in Berlin (one day in UTC)'),
  },
  {
    name: 'the same in UTC: one day',
    snapshots: [snap('2026-06-01T21:00:00Z'), snap('2026-06-01T23:30:00Z')],
    policy: { daily: 10 },
    options: { keepOldest: false },
    check: (d, tt) => tt.equal(d.keep.length, 1),
  },
  {
    name: 'within-daily keeps one per day inside the window only',
    snapshots: [...daily('2026-06-01T08:00:00Z', 10), ...daily('2026-06-01T18:00:00Z', 10)],
    policy: { withinDaily: parseRetentionDuration('3d') },
    options: { keepOldest: false },
    // The newest is June 10 18:00: June 7 18:00 is not after the bound, so June 8, 9 and 10.
    check: (d, tt) => tt.same(d.keep.map((k) => k.time), ['2026-06-10T18:00:00.000Z', '2026-06-09T18:00:00.000Z', '2026-06-08T18:00:00.000Z']),
  },
]

for (const c of cases) {
  t.test(c.name, async (tt) => {
    const d = applyRetention(c.snapshots, c.policy, { now: NOW, ...c.options })
    tt.equal(d.keep.length + d.remove.length, c.snapshots.length, 'every snapshot is decided')
    tt.ok(d.remove.every((r) => c.snapshots.find((s) => s.id === r.id)?.kind !== 'freeze'), 'no freeze removed')
    tt.matchSnapshot({ policy: describePolicy(c.policy), keep: d.keep, remove: d.remove.map((r) => r.time) }, 'decision')
    c.check?.(d, tt)
  })
}

t.test('the decision does not depend on the input order', async (tt) => {
  const shuffled = [...hundredDays].reverse()
  const a = applyRetention(hundredDays, { daily: 7, weekly: 4, monthly: 3 }, { now: NOW })
  const b = applyRetention(shuffled, { daily: 7, weekly: 4, monthly: 3 }, { now: NOW })
  tt.same(a, b)
})

t.test('durations: restic forms, spelling, errors', async (tt) => {
  tt.same(parseRetentionDuration('1y2m3d4h'), { years: 1, months: 2, days: 3, hours: 4 })
  tt.same(parseRetentionDuration(' 4h1y '), { years: 1, months: 0, days: 0, hours: 4 })
  tt.equal(formatRetentionDuration(parseRetentionDuration('2m0d5h')), '2m5h')
  for (const bad of ['', '5', 'y', '3w', '-1d', '1d-2h']) tt.throws(() => parseRetentionDuration(bad), UsageError, `${JSON.stringify(bad)} refused`)
})

t.test('calendar arithmetic is Go\'s: months overflow into the next month, ISO weeks', async (tt) => {
  const ms = Date.parse('2026-03-31T12:00:00Z')
  tt.equal(new Date(subtractDuration(ms, parseRetentionDuration('1m'), 'UTC')).toISOString(), '2026-03-03T12:00:00.000Z', 'March 31 minus a month is "February 31" = March 3')
  tt.equal(new Date(subtractDuration(ms, parseRetentionDuration('1d2h'), 'UTC')).toISOString(), '2026-03-30T10:00:00.000Z')
  // In Berlin, 6 months before a summer time is computed at the summer offset (restic's fixed offset).
  tt.equal(new Date(subtractDuration(Date.parse('2021-07-01T08:00:00Z'), parseRetentionDuration('6m'), 'Europe/Berlin')).toISOString(), '2021-01-01T08:00:00.000Z')
  tt.same(isoWeek(2020, 12, 31), { year: 2020, week: 53 })
  tt.same(isoWeek(2021, 1, 3), { year: 2020, week: 53 })
  tt.same(isoWeek(2021, 1, 4), { year: 2021, week: 1 })
  tt.same(isoWeek(2019, 12, 30), { year: 2020, week: 1 })
})

t.test('policies: empty, description, invalid counts', async (tt) => {
  tt.ok(isEmptyPolicy({}))
  tt.ok(isEmptyPolicy({ daily: 0, within: parseRetentionDuration('0d') }))
  tt.notOk(isEmptyPolicy({ tags: [['x']] }))
  tt.equal(describePolicy({ daily: 7, weekly: -1, within: parseRetentionDuration('1m') }), 'keep 7 daily, all weekly snapshots and all snapshots within 1m of the newest')
  tt.throws(() => applyRetention([], { daily: -2 }, { now: NOW }), UsageError)
  tt.throws(() => applyRetention([], { daily: 1.5 }, { now: NOW }), UsageError)
  tt.throws(() => applyRetention([], { daily: 1 }, { now: NOW, timeZone: 'Mars/Olympus' }), UsageError)
})
