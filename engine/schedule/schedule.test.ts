import t from 'tap'
import { ConfigError } from '../errors.js'
import { missedRuns, nextRun, parseSchedule, previousRun } from './schedule.js'

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null)

t.test('presets and cron expressions', async (t) => {
  const cases: { spec: string; tz?: string; after: string; next: string }[] = [
    { spec: 'hourly', after: '2026-05-01T10:15:00Z', next: '2026-05-01T11:00:00.000Z' },
    { spec: '@daily', after: '2026-05-01T10:15:00Z', next: '2026-05-02T03:00:00.000Z' },
    { spec: 'weekly', after: '2026-05-01T10:15:00Z', next: '2026-05-03T03:00:00.000Z' }, // Sunday
    { spec: 'monthly', after: '2026-05-01T10:15:00Z', next: '2026-06-01T03:00:00.000Z' },
    { spec: '0 3 * * *', tz: 'Europe/Berlin', after: '2026-05-01T10:15:00Z', next: '2026-05-02T01:00:00.000Z' }, // CEST = UTC+2
    { spec: '*/15 * * * *', after: '2026-05-01T10:15:00Z', next: '2026-05-01T10:30:00.000Z' },
    { spec: '30 4 * * 1-5', tz: 'America/New_York', after: '2026-05-01T10:15:00Z', next: '2026-05-04T08:30:00.000Z' }, // Friday → Monday, EDT
  ]
  for (const c of cases) {
    const s = parseSchedule(c.spec, c.tz)
    t.equal(iso(nextRun(s, new Date(c.after))), c.next, `${c.spec} ${c.tz ?? 'UTC'}`)
  }
})

t.test('daylight saving time changes', async (t) => {
  const s = parseSchedule('30 2 * * *', 'Europe/Berlin')
  // 2026-03-29: 02:00 → 03:00 local; 02:30 does not exist: it runs once, at the next valid time.
  const spring = missedRuns(s, { lastRun: new Date('2026-03-27T12:00:00Z'), since: new Date(0), now: new Date('2026-03-30T12:00:00Z') })
  t.same(spring.map(iso), ['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z'], 'spring forward: one run on the short day')
  // 2026-10-25: 03:00 → 02:00 local; 02:30 occurs twice: it runs once.
  const fall = missedRuns(s, { lastRun: new Date('2026-10-23T12:00:00Z'), since: new Date(0), now: new Date('2026-10-26T12:00:00Z') })
  t.same(fall.map(iso), ['2026-10-24T00:30:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z'], 'fall back: one run on the long day')
  const hourly = parseSchedule('0 * * * *', 'Europe/Berlin')
  const runs = missedRuns(hourly, { lastRun: new Date('2026-10-24T22:30:00Z'), since: new Date(0), now: new Date('2026-10-25T03:30:00Z') })
  t.equal(runs.length, 5, 'hourly keeps firing every real hour through the change')
})

t.test('missed runs after downtime and the previous run', async (t) => {
  const s = parseSchedule('daily')
  const now = new Date('2026-06-10T12:00:00Z')
  t.equal(iso(previousRun(s, now)), '2026-06-10T03:00:00.000Z')
  t.equal(iso(previousRun(parseSchedule('0 0 1 1 *'), now)), '2026-01-01T00:00:00.000Z', 'yearly looks back far enough')
  t.equal(iso(previousRun(s, new Date('2026-06-10T03:00:00Z'))), '2026-06-10T03:00:00.000Z', 'a fire time at the instant counts')
  const missed = missedRuns(s, { lastRun: new Date('2026-06-06T03:00:05Z'), since: new Date(0), now })
  t.same(missed.map(iso), ['2026-06-07T03:00:00.000Z', '2026-06-08T03:00:00.000Z', '2026-06-09T03:00:00.000Z', '2026-06-10T03:00:00.000Z'])
  t.same(missedRuns(s, { lastRun: new Date('2026-06-10T03:00:01Z'), since: new Date(0), now }), [], 'nothing missed after a run')
  t.equal(missedRuns(parseSchedule('* * * * *'), { lastRun: null, since: new Date('2026-01-01T00:00:00Z'), now, limit: 10 }).length, 10, 'bounded')
})

t.test('bad schedules are ConfigErrors with a reason', async (t) => {
  for (const [spec, tz] of [['sometimes', 'UTC'], ['0 3 * *', 'UTC'], ['61 * * * *', 'UTC'], ['daily', 'Mars/Olympus']] as const) {
    t.throws(() => parseSchedule(spec, tz), ConfigError, `${spec} ${tz}`)
  }
})
