/**
 * The daemon's scheduler on a ManualClock (no sleeping, no wall time), with real worker processes
 * (engine/testing/jobs-child.ts writes each run's journal events): presets, cron and DST, missed runs after
 * downtime under both policies, overlap inside one daemon, shutdown with grace, SIGTERM and SIGKILL. And the
 * health rules as a table.
 */
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseConfigFile, parseJobs, type JobDefinition } from '../config/index.js'
import { ManualClock } from './clock.js'
import { Daemon, type WorkerHandle, type WorkerRequest } from './daemon.js'
import type { JournalEvent, MissedEvent, StartedEvent } from './events.js'
import { jobStatus } from './health.js'
import { Journal } from './journal.js'
import { JobLocks } from './lock.js'
import type { JobEvent } from './runner.js'
import type { RunSummary } from './runs.js'

const CHILD = fileURLToPath(new URL('../testing/jobs-child.ts', import.meta.url))
const loaderArgs = process.execArgv.filter((a) => a.includes('@tapjs/typescript') || a.includes('ts-node') || a.includes('tsx'))
const host = hostname()

function jobs(yaml: string): Map<string, JobDefinition> {
  return parseJobs(parseConfigFile(yaml, 'test.yaml'), { defaultTimezone: 'UTC' })
}

interface Harness {
  daemon: Daemon
  clock: ManualClock
  journal: Journal
  children: Map<string, ChildProcess>
  notified: JobEvent[]
  log: string[]
  /** Stops the daemon (each test ends with it). */
  close(): Promise<void>
  /** Sets the clock and waits until the scheduler has acted and every run it started has ended. */
  step(iso: string): Promise<void>
  started(): Promise<StartedEvent[]>
  events(): Promise<JournalEvent[]>
}

async function harness(t: Test, o: { dir: string; jobs: Map<string, JobDefinition>; start: string; mode?: (r: WorkerRequest) => string }): Promise<Harness> {
  const clock = new ManualClock(new Date(o.start))
  const journal = new Journal({ dir: join(o.dir, 'journal'), now: () => clock.now() })
  const children = new Map<string, ChildProcess>()
  const notified: JobEvent[] = []
  const log: string[] = []
  const startWorker = (r: WorkerRequest): WorkerHandle => {
    const req = { run: r.run, job: r.job.name, kind: r.kind, trigger: r.trigger, scheduled_for: r.scheduledFor?.toISOString() ?? null, now: clock.now().toISOString(), mode: o.mode?.(r) ?? 'success' }
    const c = spawn(process.execPath, [...loaderArgs, CHILD, 'worker', journal.dir, JSON.stringify(req)], { stdio: ['pipe', 'ignore', 'pipe'] })
    children.set(r.run, c)
    let tail = ''
    c.stderr!.on('data', (d: Buffer) => (tail += d.toString()))
    return {
      pid: c.pid,
      exited: new Promise((resolve) => c.on('close', (code, signal) => resolve({ code, signal }))),
      kill: (s) => void c.kill(s),
      stderrTail: () => tail,
    }
  }
  const daemon = new Daemon({
    jobs: o.jobs, journal, locks: new JobLocks({ dir: join(o.dir, 'locks'), host, now: () => clock.now() }), clock, host, stateDir: o.dir,
    startWorker, onEvent: (e) => void notified.push(e), log: (l) => void log.push(l),
  })
  const first = clock.nextSleep()
  await daemon.start()
  await first
  await daemon.idle()
  // Stopped by each test at its end (tap removes the test folder before teardowns added later run).
  t.teardown(() => {
    for (const c of children.values()) c.kill('SIGKILL')
  })
  const events = async (): Promise<JournalEvent[]> => {
    const out: JournalEvent[] = []
    for await (const e of journal.events()) out.push(e)
    return out
  }
  return {
    daemon, clock, journal, children, notified, log, events,
    close: () => daemon.stop({ graceMs: 0, killAfterMs: 0 }),
    step: async (iso) => {
      const asleep = clock.nextSleep()
      if (clock.set(new Date(iso)) > 0) await asleep
      await daemon.idle()
    },
    started: async () => (await events()).filter((e): e is StartedEvent => e.type === 'started'),
  }
}

t.test('presets, cron and daylight saving time', async (t) => {
  const h = await harness(t, {
    dir: t.testdir(),
    start: '2026-03-27T12:00:00Z',
    jobs: jobs(`
jobs:
  nightly: { sources: [/x], repo: /r, schedule: daily }
  berlin: { sources: [/x], repo: /r, schedule: "30 2 * * *", timezone: Europe/Berlin }
  weekdays: { sources: [/x], repo: /r, schedule: "0 12 * * 1-5", timezone: America/New_York }
`),
  })
  await h.step('2026-03-27T15:59:00Z')
  t.same(await h.started(), [], 'nothing before its time')
  await h.step('2026-03-27T16:00:00Z') // Friday 12:00 EDT
  await h.step('2026-03-28T01:30:00Z') // 02:30 CET
  await h.step('2026-03-28T03:00:00Z') // daily preset: 03:00 UTC
  await h.step('2026-03-29T01:00:00Z') // spring forward: 02:30 does not exist, runs at 03:00 CEST
  await h.step('2026-03-29T03:00:00Z')
  await h.step('2026-03-30T00:30:00Z') // 02:30 CEST
  await h.step('2026-03-30T03:00:00Z')
  await h.step('2026-03-30T16:00:00Z') // Monday 12:00 EDT
  const runs = (await h.started()).map((e) => `${e.job} ${e.scheduled_for} ${e.trigger}`)
  t.same(runs, [
    'weekdays 2026-03-27T16:00:00.000Z schedule',
    'berlin 2026-03-28T01:30:00.000Z schedule',
    'nightly 2026-03-28T03:00:00.000Z schedule',
    'berlin 2026-03-29T01:00:00.000Z schedule',
    'nightly 2026-03-29T03:00:00.000Z schedule',
    'berlin 2026-03-30T00:30:00.000Z schedule',
    'nightly 2026-03-30T03:00:00.000Z schedule',
    'weekdays 2026-03-30T16:00:00.000Z schedule',
  ], 'each fire time once, across the change (the weekend skipped)')
  t.same((await h.daemon.statuses()).map((s) => [s.name, s.health, s.next_run]), [
    ['nightly', 'green', '2026-03-31T03:00:00.000Z'],
    ['berlin', 'green', '2026-03-31T00:30:00.000Z'],
    ['weekdays', 'green', '2026-03-31T16:00:00.000Z'],
  ])
  await h.close()
})

t.test('missed runs after downtime: run once (missed: run) or only report (missed: skip)', async (t) => {
  const dir = t.testdir()
  const defs = jobs(`
jobs:
  media: { sources: [/x], repo: /r, schedule: daily, missed: run }
  photos: { sources: [/x], repo: /r, schedule: daily, missed: skip }
  manual: { sources: [/x], repo: /r }
`)
  const first = await harness(t, { dir, jobs: defs, start: '2026-06-01T02:00:00Z' })
  await first.step('2026-06-01T03:00:00Z')
  t.equal((await first.started()).length, 2, 'both ran while the daemon was up')
  await first.daemon.stop({ graceMs: 0 })
  // Down for three days; back at 09:00 on the 4th.
  const second = await harness(t, { dir, jobs: defs, start: '2026-06-04T09:00:00Z' })
  const evs = await second.events()
  const missed = evs.filter((e): e is MissedEvent => e.type === 'missed')
  t.same(missed.map((m) => [m.job, m.count, m.latest, m.policy]), [
    ['media', 3, '2026-06-04T03:00:00.000Z', 'run'],
    ['photos', 3, '2026-06-04T03:00:00.000Z', 'skip'],
  ])
  t.same(missed[0].scheduled_for, ['2026-06-02T03:00:00.000Z', '2026-06-03T03:00:00.000Z', '2026-06-04T03:00:00.000Z'])
  const again = (await second.started()).filter((e) => e.t >= '2026-06-04')
  t.same(again.map((e) => [e.job, e.trigger, e.scheduled_for]), [['media', 'missed', '2026-06-04T03:00:00.000Z']], 'media ran once; photos did not')
  t.same(second.notified.map((n) => [n.kind, n.job]), [['missed', 'media'], ['missed', 'photos']])
  const st = new Map((await second.daemon.statuses()).map((s) => [s.name, s]))
  t.equal(st.get('media')!.health, 'green', 'media: the missed run ran')
  t.equal(st.get('photos')!.health, 'red', 'photos: missed and not run')
  t.match(st.get('photos')!.reasons[0], /3 scheduled runs were missed/)
  t.equal(st.get('manual')!.health, 'yellow', 'a manual-only job that never ran')
  // The next regular fire time runs both again, on schedule.
  await second.step('2026-06-05T03:00:00Z')
  const later = (await second.started()).filter((e) => e.scheduled_for === '2026-06-05T03:00:00.000Z')
  t.same(later.map((e) => [e.job, e.trigger]).sort(), [['media', 'schedule'], ['photos', 'schedule']])
  t.equal((await second.daemon.statuses()).find((s) => s.name === 'photos')!.health, 'green', 'a run after the report clears it')
  await second.close()
})

t.test('a job never watched before is not behind; noticing a fire time late beyond the tolerance is a missed run', async (t) => {
  const h = await harness(t, { dir: t.testdir(), start: '2026-06-10T12:00:00Z', jobs: jobs('jobs:\n  hourly: { sources: [/x], repo: /r, schedule: hourly, missed: skip }\n') })
  t.same(await h.events().then((e) => e.filter((x) => x.type === 'missed' || x.type === 'started')), [], 'nothing at the first start')
  await h.step('2026-06-10T13:10:00Z') // 10 min late: within the tolerance (a quarter of an hour)
  await h.step('2026-06-10T14:20:00Z') // 20 min late: missed (the machine slept)
  const evs = await h.events()
  t.same(evs.filter((e) => e.type === 'started').map((e) => (e as StartedEvent).scheduled_for), ['2026-06-10T13:00:00.000Z'])
  t.same(evs.filter((e): e is MissedEvent => e.type === 'missed').map((m) => m.latest), ['2026-06-10T14:00:00.000Z'])
  await h.close()
})

t.test('inside one daemon: a run due while the job runs waits for it; Run now is refused meanwhile', async (t) => {
  const h = await harness(t, {
    dir: t.testdir(), start: '2026-06-10T11:59:00Z', jobs: jobs('jobs:\n  hourly: { sources: [/x], repo: /r, schedule: hourly }\n'),
    mode: (r) => (r.scheduledFor?.toISOString() === '2026-06-10T12:00:00.000Z' ? 'hang' : 'success'),
  })
  const asleep = h.clock.nextSleep()
  h.clock.set(new Date('2026-06-10T12:00:00Z'))
  await asleep
  t.equal(h.daemon.running.length, 1)
  const busy = await h.daemon.requestRun('hourly')
  t.same(busy, { ok: false, reason: 'running', run: h.daemon.running[0].run }, 'Run now: already running')
  t.same(await h.daemon.requestRun('nope'), { ok: false, reason: 'unknown_job' })
  const asleep2 = h.clock.nextSleep()
  h.clock.set(new Date('2026-06-10T13:00:00Z'))
  await asleep2
  t.equal(h.daemon.running.length, 1, 'the 13:00 run waits')
  t.ok(h.log.some((l) => /due at 2026-06-10T13:00:00.000Z waits for the run in progress/.test(l)))
  h.children.get(h.daemon.running[0].run)!.stdin!.end()
  await h.daemon.idle()
  const started = await h.started()
  t.same(started.map((e) => e.scheduled_for), ['2026-06-10T12:00:00.000Z', '2026-06-10T13:00:00.000Z'], 'then it runs')
  const api = await h.daemon.requestRun('hourly')
  t.ok(api.ok, 'Run now when idle')
  await h.daemon.idle()
  t.equal((await h.daemon.runs({ job: 'hourly' }))[0].trigger, 'api')
  await h.close()
})

t.test('shutdown: grace, then SIGTERM (the worker records itself), then SIGKILL (the daemon records it)', async (t) => {
  const h = await harness(t, {
    dir: t.testdir(), start: '2026-06-10T02:59:00Z',
    jobs: jobs('jobs:\n  polite: { sources: [/x], repo: /r, schedule: daily }\n  stubborn: { sources: [/x], repo: /r, schedule: daily }\n  early: { sources: [/x], repo: /r }\n'),
    mode: (r) => (r.job.name === 'polite' ? 'hang' : r.job.name === 'stubborn' ? 'stubborn' : 'early'),
  })
  // A worker that fails before it starts the run: the daemon records it and tells.
  t.ok((await h.daemon.requestRun('early')).ok)
  await h.daemon.idle()
  const early = (await h.daemon.runs({ job: 'early' }))[0]
  t.equal(early.result, 'failed')
  t.match(early.error, /ended \(exit code 2\) without recording the run's end: coldstore: error: cannot read the configuration/)
  t.same(h.notified.map((n) => n.kind), ['failure'])
  const asleep = h.clock.nextSleep()
  h.clock.set(new Date('2026-06-10T03:00:00Z'))
  await asleep
  // Both are in their backup phase once their phase events are in the journal.
  const ac = new AbortController()
  let phases = 0
  for await (const e of h.journal.follow({ fromDay: '2026-06-10', signal: ac.signal })) if (e.type === 'phase' && ++phases === 2) ac.abort()
  await h.daemon.stop({ graceMs: 0, killAfterMs: 300 })
  const runs = new Map((await h.daemon.runs()).map((r: RunSummary) => [r.job, r]))
  t.equal(runs.get('polite')!.result, 'interrupted')
  t.equal(runs.get('polite')!.exit_code, 143, 'recorded by the worker on SIGTERM')
  t.equal(runs.get('stubborn')!.result, 'interrupted')
  t.match(runs.get('stubborn')!.error, /signal SIGKILL/, 'recorded by the daemon after SIGKILL')
  t.ok(h.log.some((l) => /stubborn: run .* did not stop: SIGKILL/.test(l)))
  const last = (await h.events()).pop()
  t.ok(last?.type === 'daemon' && last.state === 'stopped', 'the stop is in the journal')
  t.same((await h.daemon.requestRun('polite')), { ok: false, reason: 'stopping' })
})

t.test('health rules', async (t) => {
  const [job] = jobs('jobs:\n  j: { sources: [/x], repo: /r, schedule: daily }\n').values()
  const run = (over: Partial<RunSummary>): RunSummary => ({
    id: '20260610T030000Z-000000', job: 'j', kind: 'backup', trigger: 'schedule', scheduled_for: '2026-06-10T03:00:00.000Z', started: '2026-06-10T03:00:01.000Z',
    finished: '2026-06-10T03:05:00.000Z', state: 'finished', result: 'success', phase: 'backup', attempt: 1, retry_at: null, error: null, duration_ms: 1,
    snapshot: 'abcd', stats: { files: 1, dirs: 1, bytes: 10, new_files: 1, changed_files: 0, unchanged_files: 0, added_bytes: 5, unreadable: 0, duration_s: 1 },
    retention: null, check: null, progress: null, exit_code: 0, process: null, ...over,
  })
  const ok = run({})
  const cases: { name: string; runs: RunSummary[]; now: string; health: string; reason?: RegExp }[] = [
    { name: 'last run succeeded', runs: [ok], now: '2026-06-10T12:00:00Z', health: 'green' },
    { name: 'never run', runs: [], now: '2026-06-10T12:00:00Z', health: 'yellow', reason: /never run/ },
    { name: 'last run failed', runs: [ok, run({ id: 'x2', scheduled_for: '2026-06-11T03:00:00.000Z', started: '2026-06-11T03:00:01.000Z', result: 'failed', error: 'disk full' })], now: '2026-06-11T12:00:00Z', health: 'red', reason: /failed: disk full/ },
    { name: 'interrupted', runs: [run({ result: 'interrupted' })], now: '2026-06-10T12:00:00Z', health: 'red', reason: /interrupted/ },
    { name: 'warning', runs: [run({ result: 'warning', error: '2 entries could not be read' })], now: '2026-06-10T12:00:00Z', health: 'yellow', reason: /warning/ },
    { name: 'running late (within one interval)', runs: [ok], now: '2026-06-11T03:30:00Z', health: 'yellow', reason: /running late/ },
    { name: 'on time within the tolerance', runs: [ok], now: '2026-06-11T03:10:00Z', health: 'green' },
    { name: 'two runs did not happen', runs: [ok], now: '2026-06-12T04:00:00Z', health: 'red', reason: /2 scheduled runs did not happen/ },
    { name: 'retrying', runs: [ok, run({ id: 'x3', scheduled_for: '2026-06-11T03:00:00.000Z', started: '2026-06-11T03:00:01.000Z', state: 'running', result: null, phase: 'retry_wait', attempt: 2, retry_at: '2026-06-11T03:10:00.000Z' })], now: '2026-06-11T03:05:00Z', health: 'yellow', reason: /retrying \(attempt 2/ },
    { name: 'skipped runs do not count as the last run', runs: [ok, run({ id: 'x4', scheduled_for: '2026-06-11T03:00:00.000Z', started: '2026-06-11T03:00:01.000Z', result: 'skipped' })], now: '2026-06-11T04:00:00Z', health: 'green' },
  ]
  for (const c of cases) {
    const s = jobStatus(job, c.runs, [], new Date(c.now))
    t.equal(s.health, c.health, c.name)
    if (c.reason) t.match(s.reasons.join('\n'), c.reason, `${c.name}: reason`)
    else t.same(s.reasons, [], `${c.name}: no reasons`)
  }
  const s = jobStatus(job, [ok], [], new Date('2026-06-10T12:00:00Z'))
  t.same(s.last_snapshot, { id: 'abcd', bytes: 10, files: 1, added_bytes: 5 })
  t.equal(s.added_bytes_total, 5)
})
