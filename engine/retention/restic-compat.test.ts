/**
 * The same snapshot times through Debian's `restic forget --dry-run --json` and `applyRetention`: identical
 * keep/remove decisions and identical reasons, policy by policy.
 *
 * The snapshots are made by restic itself (`restic backup --time`, in the Europe/Berlin zone, so buckets
 * cross DST changes, ISO week 53 of 2020 and month ends), and coldstore's input is what restic recorded
 * (ids, times, hosts, paths, tags). restic 0.14 predates two later changes: it does not keep a group's
 * oldest snapshot when counts are left (0.16) and has no -1 "unlimited" (0.15); the comparison runs with
 * `keepOldest: false` and positive counts, and a second check shows the default differs from restic 0.14
 * only at each group's oldest snapshot, with "oldest …" reasons.
 */
import t, { type Test } from 'tap'
import { execFile, spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { seededRandom } from '../testing/test-repo.js'
import { applyRetention, parseRetentionDuration, type GroupField, type RetentionPolicy, type RetentionSnapshot } from './index.js'

const run = promisify(execFile)
const TZ = 'Europe/Berlin'

function resticVersion(): string | null {
  const r = spawnSync('restic', ['version'], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : null
}


interface ResticSnapshot { id: string; time: string; hostname: string; paths: string[]; tags?: string[] }
interface ResticGroup {
  keep: ResticSnapshot[] | null
  remove: ResticSnapshot[] | null
  reasons: { snapshot: { time: string }; matches: string[] }[] | null
}

/** Times (UTC ms) to snapshot: dense and sparse stretches, DST changes, ISO week 53, month ends, a year change. */
function snapshotTimes(): { ms: number; host: string; src: number; tags: string[] }[] {
  const r = seededRandom(20261202)
  const out: { ms: number; host: string; src: number; tags: string[] }[] = []
  const at = (iso: string, host = 'alpha', src = 0, tags: string[] = []): void => { out.push({ ms: Date.parse(iso), host, src, tags }) }
  // Spread over two and a half years.
  let ms = Date.parse('2019-11-03T08:00:00Z')
  for (let i = 0; i < 18; i++) {
    ms += Math.floor((3 + r() * 70) * 86_400_000) + Math.floor(r() * 86_400_000)
    at(new Date(ms).toISOString(), 'alpha', 0, r() < 0.2 ? ['keep'] : [])
  }
  // Several in one hour and one day, and across midnight in Berlin (22:xx and 23:xx UTC in winter).
  for (const iso of ['2021-01-14T09:05:00Z', '2021-01-14T09:40:00Z', '2021-01-14T10:01:00Z', '2021-01-14T22:50:00Z', '2021-01-14T23:10:00Z']) at(iso)
  // DST: the night of 2021-03-28 (02:00 → 03:00) and of 2021-10-31 (03:00 → 02:00; restic's --time takes a wall
  // clock without offset, so the two of that night are at different wall times of the hour that happens twice).
  for (const iso of ['2021-03-27T23:30:00Z', '2021-03-28T00:30:00Z', '2021-03-28T01:30:00Z', '2021-10-30T23:30:00Z', '2021-10-31T00:10:00Z', '2021-10-31T01:50:00Z']) at(iso, 'alpha', 0, ['daily', 'manual'])
  // ISO week 53 of 2020 and the year change; month ends for "within 1m" arithmetic.
  for (const iso of ['2020-12-27T12:00:00Z', '2020-12-28T12:00:00Z', '2020-12-31T23:30:00Z', '2021-01-03T12:00:00Z', '2021-01-04T12:00:00Z']) at(iso)
  for (const iso of ['2022-01-31T12:00:00Z', '2022-02-28T12:00:00Z', '2022-03-03T12:00:00Z', '2022-03-31T10:00:00Z']) at(iso)
  // A second host, and a second source on the first host (other groups by host,paths).
  for (const iso of ['2021-02-01T06:00:00Z', '2021-06-01T06:00:00Z', '2021-06-02T06:00:00Z', '2022-03-30T06:00:00Z']) at(iso, 'beta', 1)
  for (const iso of ['2021-05-05T05:00:00Z', '2021-05-06T05:00:00Z', '2022-02-01T05:00:00Z']) at(iso, 'alpha', 1, ['keep'])
  return out.sort((a, b) => a.ms - b.ms)
}

/** Berlin wall clock of `ms` as restic's --time reads it ("2006-01-02 15:04:05" in the local zone). */
function berlinWall(ms: number): string {
  const p = new Intl.DateTimeFormat('en-CA', { timeZone: TZ, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).formatToParts(new Date(ms))
  const g = (k: string): string => p.find((x) => x.type === k)?.value ?? ''
  return `${g('year')}-${g('month')}-${g('day')} ${g('hour')}:${g('minute')}:${g('second')}`
}

interface Case {
  name: string
  args: string[]
  policy: RetentionPolicy
  groupBy?: GroupField[]
}

const d = parseRetentionDuration
const CASES: Case[] = [
  { name: 'keep-last 3', args: ['--keep-last', '3'], policy: { last: 3 } },
  { name: 'keep-hourly 5', args: ['--keep-hourly', '5'], policy: { hourly: 5 } },
  { name: 'daily, weekly, monthly, yearly', args: ['--keep-daily', '7', '--keep-weekly', '4', '--keep-monthly', '6', '--keep-yearly', '2'], policy: { daily: 7, weekly: 4, monthly: 6, yearly: 2 } },
  { name: 'keep-weekly 30 (ISO week 53)', args: ['--keep-weekly', '30'], policy: { weekly: 30 } },
  { name: 'keep-within 1m2d', args: ['--keep-within', '1m2d'], policy: { within: d('1m2d') } },
  { name: 'keep-within 3d4h', args: ['--keep-within', '3d4h'], policy: { within: d('3d4h') } },
  { name: 'keep-within 1y with keep-last 2', args: ['--keep-within', '1y', '--keep-last', '2'], policy: { within: d('1y'), last: 2 } },
  { name: 'keep-weekly 10 and keep-tag', args: ['--keep-weekly', '10', '--keep-tag', 'keep'], policy: { weekly: 10, tags: [['keep']] } },
  {
    name: 'within-daily, within-weekly, within-monthly, within-yearly',
    args: ['--keep-within-daily', '3m', '--keep-within-weekly', '6m', '--keep-within-monthly', '2y', '--keep-within-yearly', '5y', '--keep-within-hourly', '2d'],
    policy: { withinDaily: d('3m'), withinWeekly: d('6m'), withinMonthly: d('2y'), withinYearly: d('5y'), withinHourly: d('2d') },
  },
  { name: 'keep-monthly 12, grouped by host', args: ['--keep-monthly', '12', '--group-by', 'host'], policy: { monthly: 12 }, groupBy: ['host'] },
  { name: 'keep-daily 4, one group', args: ['--keep-daily', '4', '--group-by', ''], policy: { daily: 4 }, groupBy: [] },
  {
    name: 'keep-daily 3 and two tag lists, grouped by host,paths,tags',
    args: ['--keep-daily', '3', '--keep-tag', 'daily,manual', '--keep-tag', 'keep', '--group-by', 'host,paths,tags'],
    policy: { daily: 3, tags: [['daily', 'manual'], ['keep']] }, groupBy: ['host', 'paths', 'tags'],
  },
  { name: 'large counts', args: ['--keep-hourly', '100', '--keep-yearly', '10'], policy: { hourly: 100, yearly: 10 } },
]

async function compare(t: Test): Promise<void> {
  const dir = t.testdir()
  const env = { ...process.env, RESTIC_PASSWORD: 'restic compat', RESTIC_REPOSITORY: join(dir, 'repo'), RESTIC_CACHE_DIR: join(dir, 'cache'), TZ }
  const restic = async (args: string[]): Promise<string> => (await run('restic', args, { env, maxBuffer: 64 * 1024 * 1024 })).stdout
  await restic(['init', '-q'])
  const srcs = [join(dir, 'src-a'), join(dir, 'src-b')]
  for (const s of srcs) {
    mkdirSync(s, { recursive: true })
    writeFileSync(join(s, 'f.txt'), s)
  }
  const wanted = snapshotTimes()
  // Two at a time: a backup is mostly key derivation.
  for (let i = 0; i < wanted.length; i += 2) {
    await Promise.all(wanted.slice(i, i + 2).map((w) => restic([
      'backup', '-q', '--host', w.host, '--time', berlinWall(w.ms), ...(w.tags.length ? ['--tag', w.tags.join(',')] : []), srcs[w.src],
    ])))
  }
  const recorded = JSON.parse(await restic(['snapshots', '--json'])) as ResticSnapshot[]
  t.equal(recorded.length, wanted.length, `restic recorded ${wanted.length} snapshots`)
  t.equal(new Set(recorded.map((s) => Date.parse(s.time))).size, recorded.length, 'no two snapshots share a time (restic orders ties by listing order)')
  const input: RetentionSnapshot[] = recorded.map((s) => ({ id: s.id, time: s.time, host: s.hostname, paths: s.paths, tags: s.tags ?? [], job: null, kind: 'snapshot' }))
  const timeToId = new Map(recorded.map((s) => [Date.parse(s.time), s.id]))

  for (const c of CASES) {
    await t.test(c.name, async (t) => {
      const groups = JSON.parse(await restic(['forget', '--dry-run', '--json', ...c.args])) as ResticGroup[]
      const rKeep = new Map<string, string[]>()
      const rRemove = new Set<string>()
      for (const g of groups) {
        for (const r of g.reasons ?? []) rKeep.set(timeToId.get(Date.parse(r.snapshot.time))!, r.matches)
        for (const s of g.remove ?? []) rRemove.add(s.id)
        t.equal((g.keep ?? []).length, (g.reasons ?? []).length, 'restic gives one reason list per kept snapshot')
      }
      const now = new Date()
      const ours = applyRetention(input, c.policy, { now, timeZone: TZ, groupBy: c.groupBy ?? ['host', 'paths'], keepOldest: false })
      const oKeep = new Map(ours.keep.map((k) => [k.id, k.reasons]))
      t.same([...oKeep.keys()].sort(), [...rKeep.keys()].sort(), `the same ${rKeep.size} snapshots kept`)
      t.same(ours.remove.map((r) => r.id).sort(), [...rRemove].sort(), `the same ${rRemove.size} snapshots removed`)
      t.same(Object.fromEntries([...oKeep].sort()), Object.fromEntries([...rKeep].sort()), 'the same reasons, in the same order')
      t.equal(oKeep.size + ours.remove.length, input.length, 'every snapshot decided')

      // The default (restic ≥ 0.16) differs only at each group's oldest snapshot.
      const def = applyRetention(input, c.policy, { now, timeZone: TZ, groupBy: c.groupBy ?? ['host', 'paths'] })
      const oldest = new Set(def.groups.map((g) => [...g.keep, ...g.remove].sort((a, b) => (a.time < b.time ? -1 : 1))[0].id))
      const dKeep = new Map(def.keep.map((k) => [k.id, k.reasons]))
      let differs = 0
      for (const s of input) {
        const a = oKeep.get(s.id)
        const b = dKeep.get(s.id)
        if (JSON.stringify(a) === JSON.stringify(b)) continue
        differs++
        t.ok(oldest.has(s.id), `${s.time}: the default differs from restic 0.14 only at a group's oldest snapshot`)
        const extra = (b ?? []).filter((x) => !(a ?? []).includes(x))
        t.ok(extra.length > 0 && extra.every((x) => x.startsWith('oldest ')), `${s.time}: kept additionally as ${JSON.stringify(extra)}`)
      }
      t.comment(`${differs} group-oldest snapshots kept additionally by the default`)
    })
  }
}

const version = resticVersion()
if (!version) {
  if (process.env.CI === 'true') t.fail('restic is not installed (CI installs it in .ci/run)')
  else t.pass('skipped', { skip: 'restic is not installed' })
} else {
  t.comment(version)
  await compare(t)
}
