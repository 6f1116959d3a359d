/**
 * runJob end to end on real repositories, real hook processes and (where installed) the real restic binary;
 * retry delays on a ManualClock moved by the test when the run reports it is waiting.
 */
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { parseConfigFile, parseJobs, type JobDefinition } from '../config/index.js'
import { ConfigError, InterruptedError, NotFoundError } from '../errors.js'
import { LocalRemote } from '../remote/index.js'
import { Repository } from '../repo/index.js'
import { listSnapshots } from '../snapshot/index.js'
import { makeTestRepo, seededBytes } from '../testing/test-repo.js'
import { ManualClock } from './clock.js'
import type { JournalEvent, RunResult } from './events.js'
import { Journal } from './journal.js'
import { JobLocks } from './lock.js'
import { runJob, type JobEvent, type JobWork, type RunJobOptions } from './runner.js'
import { engineWork, resticWork } from './work.js'

const host = hostname()
const exitCode = (r: RunResult, e: unknown): number => ({ success: 0, warning: 3, skipped: 5, interrupted: 143, failed: e instanceof ConfigError ? 2 : 1 })[r]

function jobOf(yaml: string, name: string): JobDefinition {
  return parseJobs(parseConfigFile(yaml, 'test.yaml'), { defaultTimezone: 'UTC' }).get(name)!
}

interface Env {
  dir: string
  src: string
  journal: Journal
  locks: JobLocks
  clock: ManualClock
  events: JournalEvent[]
  notified: JobEvent[]
  forgets: { snapshot: string | null }[]
  tr: Awaited<ReturnType<typeof makeTestRepo>>
}

async function env(t: Test): Promise<Env> {
  const dir = t.testdir()
  const src = join(dir, 'src')
  mkdirSync(src)
  for (let i = 0; i < 5; i++) writeFileSync(join(src, `f${i}.bin`), seededBytes(`f${i}`, 50_000))
  const tr = await makeTestRepo(join(dir, 'r'))
  t.teardown(() => tr.repo.close())
  const clock = new ManualClock(new Date('2026-05-10T03:00:00Z'))
  return {
    dir, src, clock, events: [], notified: [], forgets: [], tr,
    journal: new Journal({ dir: join(dir, 'state', 'journal'), now: () => clock.now() }),
    locks: new JobLocks({ dir: join(dir, 'state', 'locks'), host, now: () => clock.now() }),
  }
}

function work(e: Env, job: JobDefinition): JobWork {
  return engineWork({
    job,
    open: async () => {
      const r = await Repository.open(await LocalRemote.open({ path: e.tr.repoDir }), { password: e.tr.password, cacheDir: e.tr.cacheDir })
      await r.syncIndex()
      return r
    },
    close: async (r) => {
      await r.close()
      await r.remote.close()
    },
    program: 'test', hostname: 'h', username: 'u', now: () => e.clock.now(),
    forget: async (_ctx, o) => {
      e.forgets.push(o)
      return { ok: true, kept: 1, removed: 0, removed_ids: [], error: null }
    },
  })
}

function opts(e: Env, job: JobDefinition, more: Partial<RunJobOptions> = {}): RunJobOptions {
  return {
    job, kind: 'backup', runId: `20260510T030000Z-${Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, '0')}`, trigger: 'manual',
    scheduledFor: null, journal: e.journal, locks: e.locks, clock: e.clock, host, work: work(e, job), hooks: { cwd: e.dir, env: { PATH: process.env.PATH } },
    signal: new AbortController().signal, exitCode, progressIntervalMs: 0,
    onEvent: (x) => void e.notified.push(x), onJournal: (x) => void e.events.push(x),
    ...more,
  }
}

function types(events: JournalEvent[], run: string): string[] {
  return events.filter((x) => x.run === run).map((x) => (x.type === 'phase' ? `phase:${x.phase}` : x.type)).filter((x, i, a) => x !== 'progress' || a[i - 1] !== 'progress')
}

t.test('a run: pre-hook, backup, post-hook, retention; everything in the journal', async (t) => {
  const e = await env(t)
  const job = jobOf(`
jobs:
  docs:
    sources: [${e.src}]
    repo: /unused
    retention: { keep_last: 3 }
    pre_hook: ["echo dumping; echo dumped > ${e.dir}/dump.sql"]
    post_hook: ["echo result=$COLDSTORE_RESULT job=$COLDSTORE_JOB"]
`, 'docs')
  const o = opts(e, job)
  const r = await runJob(o)
  t.equal(r.result, 'success')
  t.equal(r.exitCode, 0)
  t.ok(existsSync(join(e.dir, 'dump.sql')), 'the pre-hook ran')
  t.same(types(e.events, o.runId), ['started', 'phase:pre_hook', 'log', 'log', 'phase:backup', 'progress', 'log', 'phase:post_hook', 'log', 'log', 'phase:retention', 'log', 'finished'])
  const logs = e.events.filter((x): x is Extract<JournalEvent, { type: 'log' }> => x.type === 'log').map((x) => `${x.source}: ${x.message}`)
  t.ok(logs.includes('hook: dumping'), 'hook output is logged')
  t.ok(logs.includes('hook: result=success job=docs'), 'post-hooks see the result and job')
  const fin = e.events.find((x) => x.type === 'finished')
  t.ok(fin?.type === 'finished' && fin.snapshot && fin.stats?.files === 5 && fin.retention?.ok, 'finished: snapshot, stats, retention')
  const snaps = await listSnapshots(e.tr.repo)
  t.equal(snaps.length, 1)
  t.equal(snaps[0].job, 'docs', 'the snapshot carries the job name')
  t.same(e.forgets, [{ snapshot: snaps[0].id }], 'retention ran once, after the backup, through the seam')
  t.same(e.notified.map((n) => n.kind), ['success'])
  // The journal file holds the same events.
  const stored: JournalEvent[] = []
  for await (const x of e.journal.events()) stored.push(x)
  t.same(stored, e.events, 'onJournal saw exactly what was written')
  t.same(readdirSync(join(e.dir, 'state', 'locks')), [], 'the lock is released')
})

t.test('a failing pre-hook fails the attempt (logged); retries wait on the clock with doubling delays', async (t) => {
  const e = await env(t)
  const job = jobOf(`
jobs:
  flaky:
    sources: [${e.src}]
    repo: /unused
    retries: 2
    retry_delay: 1h
    retention: { keep_last: 1 }
    pre_hook: "n=$(cat ${e.dir}/n 2>/dev/null || echo 0); echo $((n+1)) > ${e.dir}/n; [ $n -ge 2 ] || { echo 'db is down' >&2; exit 4; }"
    post_hook: "echo post $COLDSTORE_RESULT >> ${e.dir}/post.log"
`, 'flaky')
  const waits: string[] = []
  const o = opts(e, job, {
    onJournal: (x) => {
      e.events.push(x)
      if (x.type === 'phase' && x.phase === 'retry_wait') {
        waits.push(x.until!)
        // The run waits on the clock: move it to the retry time (no sleeping).
        queueMicrotask(() => e.clock.set(new Date(x.until!)))
      }
    },
  })
  const r = await runJob(o)
  t.equal(r.result, 'success', 'succeeds on the third attempt')
  t.same(waits, ['2026-05-10T04:00:00.000Z', '2026-05-10T06:00:00.000Z'], '1 h, then 2 h')
  const failed = e.events.filter((x) => x.type === 'attempt_failed')
  t.equal(failed.length, 2)
  t.match((failed[0] as Extract<JournalEvent, { type: 'attempt_failed' }>).error, /pre-hook 1 failed \(exit code 4\)/)
  t.ok(e.events.some((x) => x.type === 'log' && x.level === 'warn' && x.message === 'db is down'), "the hook's stderr is logged")
  t.same(readFileSync(join(e.dir, 'post.log'), 'utf8').trim().split('\n'), ['post failed', 'post failed', 'post success'], 'post-hooks run after every attempt')
  const fin = e.events.find((x) => x.type === 'finished')
  t.ok(fin?.type === 'finished' && fin.attempts === 3)
  t.equal(e.forgets.length, 1, 'retention once, after the successful attempt')

  // Without retries left: failed, notified, exit code from the error.
  e.events.length = 0
  e.notified.length = 0
  e.forgets.length = 0
  writeFileSync(join(e.dir, 'n'), '-10')
  const r2 = await runJob(opts(e, { ...job, retries: 0 }))
  t.equal(r2.result, 'failed')
  t.equal(r2.exitCode, 1)
  t.same(e.notified.map((n) => n.kind), ['failure'])
  t.match(e.notified[0].message, /flaky: backup failed: pre-hook 1 failed \(exit code 4\)/)
  t.same(e.forgets, [], 'no retention after a failed backup')
  t.ok(e.events.some((x) => x.type === 'log' && x.level === 'error' && /pre-hook 1 failed/.test(x.message)), 'the failure is logged')
})

t.test('errors retrying cannot cure are not retried', async (t) => {
  const e = await env(t)
  const job = jobOf(`jobs:\n  j:\n    sources: [${e.src}]\n    repo: /unused\n    retries: 3\n`, 'j')
  const missing: JobWork = { ...work(e, job), backup: async () => { throw new NotFoundError('config', 'no repository at /nowhere') } }
  const r = await runJob(opts(e, job, { work: missing }))
  t.equal(r.result, 'failed')
  t.equal(e.events.filter((x) => x.type === 'attempt_failed').length, 1, 'one attempt only')
})

t.test('overlap: a second run is skipped (or waits with wait:), naming the holder', async (t) => {
  const e = await env(t)
  const go = join(e.dir, 'go')
  const job = jobOf(`jobs:\n  slow:\n    sources: [${e.src}]\n    repo: /unused\n    pre_hook: "echo waiting; while [ ! -e ${go} ]; do sleep 0.02; done"\n`, 'slow')
  let inHook!: () => void
  const hookReached = new Promise<void>((r) => (inHook = r))
  const first = opts(e, job, { runId: '20260510T030000Z-000001', onJournal: (x) => { e.events.push(x); if (x.type === 'log' && x.message === 'waiting') inHook() } })
  const running = runJob(first)
  await hookReached
  const second = await runJob(opts(e, job, { runId: '20260510T030000Z-000002' }))
  t.equal(second.result, 'skipped')
  t.equal(second.exitCode, 5)
  const skipped = e.events.find((x) => x.type === 'skipped')
  t.ok(skipped?.type === 'skipped' && skipped.holder?.run === '20260510T030000Z-000001', 'the skipped run names the run holding the lock')
  let told = false
  const third = runJob(opts(e, job, { runId: '20260510T030000Z-000003', wait: { pollMs: 60_000, onWait: () => { told = true; writeFileSync(go, '') } } }))
  t.equal((await running).result, 'success')
  t.equal((await third).result, 'success', 'the waiting run ran after the first')
  t.ok(told, 'it was told whom it waits for')
  const starts = e.events.filter((x) => x.type === 'started').map((x) => x.run)
  t.same(starts, ['20260510T030000Z-000001', '20260510T030000Z-000003'])
  const finishedFirst = e.events.findIndex((x) => x.type === 'finished' && x.run === '20260510T030000Z-000001')
  const startedThird = e.events.findIndex((x) => x.type === 'started' && x.run === '20260510T030000Z-000003')
  t.ok(finishedFirst < startedThird, 'never at once')
})

t.test('a scheduled time runs once: a second process asking after the first finished finds it run', async (t) => {
  const e = await env(t)
  const job = jobOf(`jobs:\n  daily:\n    sources: [${e.src}]\n    repo: /unused\n`, 'daily')
  const at = new Date('2026-05-10T03:00:00Z')
  const first = await runJob(opts(e, job, { runId: '20260510T030000Z-00000a', trigger: 'schedule', scheduledFor: at }))
  t.equal(first.result, 'success', 'the first daemon runs the 03:00 backup')
  const second = await runJob(opts(e, job, { runId: '20260510T030000Z-00000b', trigger: 'schedule', scheduledFor: at }))
  t.equal(second.result, 'skipped', 'the second, after the first released the lock, does not run it again')
  t.equal(second.exitCode, 5)
  const skipped = e.events.find((x) => x.type === 'skipped')
  t.ok(skipped?.type === 'skipped' && skipped.reason === 'done' && skipped.holder?.run === '20260510T030000Z-00000a', 'it names the run that ran it')
  const later = await runJob(opts(e, job, { runId: '20260511T030000Z-00000c', trigger: 'schedule', scheduledFor: new Date('2026-05-11T03:00:00Z') }))
  t.equal(later.result, 'success', 'the next fire time runs')
  const manual = await runJob(opts(e, job, { runId: '20260511T030000Z-00000d' }))
  t.equal(manual.result, 'success', 'a manual run is never taken for a scheduled one')
  t.equal((await listSnapshots(e.tr.repo)).length, 3)
})

t.test('a stop (SIGTERM) mid-run: interrupted, post-hooks still run, lock released', async (t) => {
  const e = await env(t)
  const job = jobOf(`jobs:\n  j:\n    sources: [${e.src}]\n    repo: /unused\n    retries: 2\n    pre_hook: "echo waiting; sleep 60"\n    post_hook: "echo post $COLDSTORE_RESULT > ${e.dir}/post"\n`, 'j')
  const ac = new AbortController()
  const o = opts(e, job, { signal: ac.signal, onJournal: (x) => { e.events.push(x); if (x.type === 'log' && x.message === 'waiting') ac.abort() } })
  const r = await runJob(o)
  t.equal(r.result, 'interrupted')
  t.equal(r.exitCode, 143)
  t.ok(r.error instanceof InterruptedError)
  t.equal(readFileSync(join(e.dir, 'post'), 'utf8').trim(), 'post interrupted')
  t.equal(e.events.filter((x) => x.type === 'attempt_failed').length, 1, 'not retried')
  t.same(e.notified, [], 'an interruption is not an alert')
  t.same(readdirSync(join(e.dir, 'state', 'locks')), [])
})

t.test('check runs: verify of the repository; damage is a verify_failure', async (t) => {
  const e = await env(t)
  const job = jobOf(`jobs:\n  j:\n    sources: [${e.src}]\n    repo: /unused\n    verify: { schedule: weekly, read_data_subset: 100% }\n`, 'j')
  t.equal((await runJob(opts(e, job))).result, 'success')
  t.equal((await runJob(opts(e, job, { kind: 'check' }))).result, 'success', 'a check of a healthy repository')
  const fin = e.events.filter((x) => x.type === 'finished').pop()
  t.ok(fin?.type === 'finished' && fin.check?.ok && fin.check.read_data_fraction === 1)
  // Flip a byte in a data pack.
  const dataDir = join(e.tr.repoDir, 'data')
  const sub = readdirSync(dataDir)[0]
  const pack = join(dataDir, sub, readdirSync(join(dataDir, sub))[0])
  const bytes = readFileSync(pack)
  bytes[100] ^= 0xff
  writeFileSync(pack, bytes)
  const r = await runJob(opts(e, job, { kind: 'check' }))
  t.equal(r.result, 'failed')
  t.same(e.notified.map((n) => n.kind), ['success', 'success', 'verify_failure'])
})

t.test('restic jobs: backup, check and retention through the restic binary', async (t) => {
  if (spawnSync('restic', ['version']).status !== 0) {
    if (process.env.CI === 'true') t.fail('restic is not installed (apt-get install restic)')
    else t.skip('restic is not installed')
    return
  }
  const e = await env(t)
  const repo = join(e.dir, 'restic-repo')
  writeFileSync(join(e.dir, 'restic-pw'), 'restic password\n')
  const env2 = { PATH: process.env.PATH, HOME: e.dir, RESTIC_CACHE_DIR: join(e.dir, 'restic-cache') }
  t.equal(spawnSync('restic', ['-r', repo, '--password-file', join(e.dir, 'restic-pw'), 'init'], { env: env2 }).status, 0, 'restic init')
  const job = jobOf(`
jobs:
  host:
    type: restic
    sources: [${e.src}]
    restic_repository: ${repo}
    password_file: ${join(e.dir, 'restic-pw')}
    exclude: ["*.skip"]
    tags: [nightly]
    check: weekly
    retention: { keep_last: 1 }
`, 'host')
  writeFileSync(join(e.src, 'leave-me.skip'), 'excluded')
  const rw = resticWork({ job, env: env2, cwd: e.dir })
  const first = await runJob(opts(e, job, { work: rw }))
  t.equal(first.result, 'success', `restic backup: ${first.event?.type === 'finished' ? first.event.error : ''}`)
  const fin = first.event
  t.ok(fin?.type === 'finished' && /^[0-9a-f]{8,}$/.test(fin.snapshot ?? '') && fin.stats?.files === 5 && fin.stats.new_files === 5, 'snapshot id and stats from restic\'s summary')
  t.ok(e.events.some((x) => x.type === 'progress'), 'progress from restic --json')
  writeFileSync(join(e.src, 'new.txt'), 'new')
  const second = await runJob(opts(e, job, { work: rw }))
  t.equal(second.result, 'success', second.event?.type === 'finished' ? String(second.event.error) : '')
  t.ok(second.event?.type === 'finished' && second.event.stats?.new_files === 1 && second.event.stats.unchanged_files === 5, 'incremental')
  t.ok(second.event?.type === 'finished' && second.event.retention?.ok && second.event.retention.removed === 1, 'restic forget --keep-last 1 removed the first snapshot')
  const snaps = JSON.parse(spawnSync('restic', ['-r', repo, '--password-file', join(e.dir, 'restic-pw'), 'snapshots', '--json'], { env: env2, encoding: 'utf8' }).stdout) as { tags: string[] }[]
  t.equal(snaps.length, 1)
  t.same(snaps[0].tags.sort(), ['coldstore:host', 'nightly'], 'tagged with the job')
  const check = await runJob(opts(e, job, { work: rw, kind: 'check' }))
  t.equal(check.result, 'success', 'restic check')
  // A wrong password: restic fails, the run fails with restic's message.
  writeFileSync(join(e.dir, 'restic-pw'), 'wrong\n')
  const bad = await runJob(opts(e, { ...job, retries: 0 }, { work: rw }))
  t.equal(bad.result, 'failed')
  t.match(bad.event?.type === 'finished' ? bad.event.error : '', /restic backup failed \(exit code 1\)/)
  t.ok(e.events.some((x) => x.type === 'log' && x.source === 'restic' && /password/i.test(x.message)), "restic's own message is logged")
})
