/**
 * The jobs commands end to end, on the built CLI: `run` (hooks, nice/ionice, retention seam, exit codes,
 * overlap between processes), `jobs --json`, `log`, and `daemon` (API with CSRF and a live SSE log, runs
 * from the schedule driven through the test clock on stdin, SIGTERM mid-run, two daemons on one
 * configuration), plus a restic job. Real processes, real temporary folders, no sleeping.
 */
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { ensureBuilt } from './testing/build.js'
import { CliProcess, exits, http, runCli } from './testing/daemon.js'

ensureBuilt(t)

const run = runCli

function env(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', TZ: 'UTC', ...extra }
}

/** Reads a Server-Sent Events stream until its `end` event; calls `onEvent` for each journal event. */
function sse(url: string, onEvent: (e: { type: string; [k: string]: unknown }) => void): Promise<{ status: number; type: string; events: { type: string; [k: string]: unknown }[] }> {
  return new Promise((resolve, reject) => {
    const events: { type: string; [k: string]: unknown }[] = []
    const req = request(url, { headers: { Accept: 'text/event-stream' } }, (res) => {
      let buf = ''
      res.on('data', (d: Buffer) => {
        buf += d.toString()
        let i
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          const ev = /^event: (.*)$/m.exec(block)?.[1]
          const data = /^data: (.*)$/m.exec(block)?.[1]
          if (ev === 'journal' && data) {
            const e = JSON.parse(data) as { type: string }
            events.push(e)
            onEvent(e)
          }
          if (ev === 'end') {
            req.destroy()
            resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), events })
          }
        }
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), events }))
    })
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)))
    req.end()
  })
}

interface Setup {
  dir: string
  config: string
  env: NodeJS.ProcessEnv
  base: string[]
  src: string
}

/** A folder with sources, an unencrypted repository, and a configuration written from `yaml(dir)`. */
async function setup(t: Test, yaml: (s: { dir: string; src: string; repo: string }) => string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Setup> {
  const dir = t.testdir()
  const src = join(dir, 'src')
  mkdirSync(src)
  for (let i = 0; i < 4; i++) writeFileSync(join(src, `file${i}.txt`), `content ${i}\n`.repeat(100 + i))
  const repo = join(dir, 'repo')
  const e = env(dir, extraEnv)
  const base = ['--state-dir', join(dir, 'state'), '--cache-dir', join(dir, 'cache')]
  exits(t, await run(['init', '--repo', repo, '--no-encryption', ...base], e), 0, 'init')
  const config = join(dir, 'coldstore.yaml')
  writeFileSync(config, yaml({ dir, src, repo }))
  return { dir, config, env: e, base: ['--config', config, ...base], src }
}

t.test('coldstore run: hooks under nice/ionice, the retention seam, journal, jobs --json, log', async (t) => {
  const s = await setup(t, ({ dir, src, repo }) => `
jobs:
  docs:
    sources: [${src}]
    repo: ${repo}
    schedule: daily
    nice: 7
    ionice: idle
    exclude: ["file3.txt"]
    tags: [nightly]
    pre_hook: ["echo nice=$(nice) io=$(ionice) job=$COLDSTORE_JOB > ${dir}/hook.out"]
    retention: { keep_daily: 7, keep_weekly: 4 }
  broken:
    sources: [${src}]
    repo: ${repo}
    retries: 0
    pre_hook: "echo 'cannot dump the database' >&2; exit 9"
`, { COLDSTORE_FORGET_COMMAND: '' })
  // The retention seam: a stand-in for `coldstore forget` that records its arguments and answers like it.
  const fake = join(s.dir, 'fake-forget')
  writeFileSync(fake, `#!/bin/sh\nprintf '%s\\n' "$@" > ${s.dir}/forget.args\necho '{"keep":[{"id":"a","time":"t","reasons":["daily snapshot"]}],"remove":[]}'\n`)
  chmodSync(fake, 0o755)
  const e = { ...s.env, COLDSTORE_FORGET_COMMAND: fake }
  const r = await run(['run', 'docs', '--json', ...s.base], e)
  exits(t, r, 0, 'run docs')
  const doc = JSON.parse(r.stdout)
  t.equal(doc.result, 'success')
  t.equal(doc.stats.files, 3, 'the exclude applied')
  t.same(doc.retention, { ok: true, kept: 1, removed: 0, removed_ids: [], error: null })
  t.equal(readFileSync(join(s.dir, 'hook.out'), 'utf8').trim(), 'nice=7 io=idle job=docs', 'the work runs under nice and ionice')
  const args = readFileSync(join(s.dir, 'forget.args'), 'utf8').trim().split('\n')
  t.same(args.slice(0, 3), ['forget', '--repo', join(s.dir, 'repo')])
  for (const want of [['--job', 'docs'], ['--keep-daily', '7'], ['--keep-weekly', '4']]) t.ok(args.join(' ').includes(want.join(' ')), `forget gets ${want.join(' ')}`)
  t.ok(args.includes('--yes') && args.includes('--json'), 'forget runs without asking, with --json')

  const snaps = JSON.parse((await run(['snapshots', '--json', '--repo', join(s.dir, 'repo'), ...s.base], e)).stdout)
  t.same(snaps.map((x: { job: string; tags: string[] }) => [x.job, x.tags]), [['docs', ['nightly']]], 'the snapshot carries the job and its tags')
  const audit = JSON.parse((await run(['audit', '--json', '--repo', join(s.dir, 'repo'), ...s.base], e)).stdout)
  t.equal(audit.entries.filter((x: { operation: string }) => x.operation === 'snapshot').length, 1, 'the run is in the audit trail')

  const bad = await run(['run', 'broken', ...s.base], e)
  exits(t, bad, 1, 'a failing pre-hook')
  t.match(bad.stderr, /cannot dump the database/, 'its output is shown')
  t.match(bad.stderr, /pre-hook 1 failed \(exit code 9\)/)
  exits(t, await run(['run', 'nope', ...s.base], e), 2, 'an unknown job')

  const jobs = JSON.parse((await run(['jobs', '--json', ...s.base], { ...e, COLDSTORE_TEST_NOW: new Date(Date.now() + 60_000).toISOString() })).stdout)
  const byName = new Map(jobs.jobs.map((j: { name: string }) => [j.name, j]))
  const docs = byName.get('docs') as { health: string; last_success: { id: string }; next_run: string; last_snapshot: { files: number } }
  t.equal(docs.health, 'green')
  t.equal(docs.last_success.id, doc.run)
  t.equal(docs.last_snapshot.files, 3)
  t.ok(docs.next_run.endsWith('T03:00:00.000Z'), 'next run: 03:00 UTC')
  const broken = byName.get('broken') as { health: string; reasons: string[] }
  t.equal(broken.health, 'red')
  t.match(broken.reasons[0], /the last run failed: pre-hook 1 failed/)
  const text = await run(['jobs', ...s.base], e)
  t.match(text.stdout, /^JOB\s+TYPE\s+SCHEDULE\s+LAST RUN\s+LAST SUCCESS\s+NEXT RUN\s+HEALTH/)
  t.match(text.stdout, /broken\s+dataset\s+manual\s+.* failed .*red/)

  const list = JSON.parse((await run(['log', '--json', ...s.base], e)).stdout)
  t.same(list.runs.map((x: { job: string; result: string }) => [x.job, x.result]), [['broken', 'failed'], ['docs', 'success']], 'newest first')
  const one = JSON.parse((await run(['log', '--run', doc.run, '--json', ...s.base], e)).stdout)
  t.same(one.events.map((x: { type: string }) => x.type).filter((x: string) => x !== 'log' && x !== 'progress'), ['started', 'phase', 'phase', 'phase', 'finished'])
  const lines = (await run(['log', 'docs', '--run', doc.run, ...s.base], e)).stdout
  t.match(lines, /\[pre-hook\]/)
  t.match(lines, /\[retention\] retention kept 1 and removed 0 snapshots/)
  exits(t, await run(['log', '--verify', ...s.base], e), 0, 'log --verify')
})

t.test('two runs of one job at once: the second exits 5, or waits with --wait', async (t) => {
  const s = await setup(t, ({ dir, src, repo }) => `
jobs:
  slow:
    sources: [${src}]
    repo: ${repo}
    pre_hook: "echo waiting for go; while [ ! -e ${dir}/go ]; do sleep 0.05; done"
`)
  const first = new CliProcess(t, ['run', 'slow', ...s.base], s.env)
  await first.line(/waiting for go/)
  const second = await run(['run', 'slow', ...s.base], s.env)
  exits(t, second, 5, 'a second run while the first runs')
  t.match(second.stderr, /already running/)
  const third = new CliProcess(t, ['run', 'slow', '--wait', ...s.base], s.env)
  await third.line(/job slow is running \(pid \d+.*\): waiting/)
  writeFileSync(join(s.dir, 'go'), '')
  t.equal(await first.exited, 0, 'the first finishes')
  t.equal(await third.exited, 0, 'then the waiting one runs')
  const runs = JSON.parse((await run(['log', '--json', ...s.base], s.env)).stdout).runs
  t.same(runs.map((r: { result: string }) => r.result).sort(), ['skipped', 'success', 'success'])
})

t.test('coldstore daemon: API (CSRF, Run now, live log), schedule through the test clock, jobs --json, SIGTERM mid-run', async (t) => {
  const s = await setup(t, ({ dir, src, repo }) => `
jobs:
  photos:
    sources: [${src}]
    repo: ${repo}
    schedule: hourly
    pre_hook: "echo photos hook"
  media:
    sources: [${src}]
    repo: ${repo}
    retries: 0
    pre_hook: "echo media waits; while [ ! -e ${dir}/go ]; do sleep 0.05; done"
server:
  listen: 127.0.0.1:0
daemon:
  shutdown_grace: 0s
  progress_interval: 0s
`, { COLDSTORE_TEST_CLOCK: '2026-07-01T09:30:00Z' })
  const d = new CliProcess(t, ['daemon', '--json', ...s.base], s.env, 'pipe')
  t.teardown(() => void d.child.kill('SIGKILL'))
  const info = JSON.parse(await d.firstStdoutLine()) as { url: string; state_dir: string; jobs: string[] }
  t.same(info.jobs, ['photos', 'media'])
  const api = `${info.url}api`

  const jobs = JSON.parse((await http('GET', `${api}/jobs`)).body)
  t.same(jobs.jobs.map((j: { name: string; health: string }) => [j.name, j.health]), [['photos', 'yellow'], ['media', 'yellow']], 'never run: yellow')
  // Run now needs the CSRF token; a wrong origin is refused too.
  t.equal((await http('POST', `${api}/jobs/photos/run`)).status, 403, 'POST without the CSRF header')
  const session = await http('GET', `${api}/session`)
  const token = JSON.parse(session.body).csrf_token as string
  t.equal(session.headers['x-coldstore-csrf'], token)
  t.equal((await http('POST', `${api}/jobs/photos/run`, { headers: { 'X-Coldstore-Csrf': token, Origin: 'http://evil.example' } })).status, 403, 'a foreign Origin')
  t.equal((await http('POST', `${api}/jobs/nope/run`, { headers: { 'X-Coldstore-Csrf': token } })).status, 404)
  const started = await http('POST', `${api}/jobs/photos/run`, { headers: { 'X-Coldstore-Csrf': token, 'Content-Type': 'application/json' }, body: '{"kind":"backup"}' })
  t.equal(started.status, 202)
  const runId = JSON.parse(started.body).run as string
  const live = await sse(`${info.url}api/runs/${runId}/log`, () => undefined)
  t.equal(live.status, 200)
  t.match(live.type, /text\/event-stream/)
  t.same([live.events[0].type, live.events[live.events.length - 1].type], ['started', 'finished'], 'the live log streams the run to its end')
  t.ok(live.events.some((e) => e.type === 'log' && e.message === 'photos hook'), 'with the hook output')
  t.equal(live.events[live.events.length - 1].result, 'success')
  await d.line(new RegExp(`photos: run ${runId} success`))
  const textLog = await http('GET', `${api}/runs/${runId}/log`)
  t.match(textLog.headers['content-type'] as string, /text\/plain/)
  t.match(textLog.body, /\[hook\] photos hook/)
  const jsonl = await http('GET', `${api}/runs/${runId}/log?format=jsonl`)
  t.equal(jsonl.body.trim().split('\n').length, live.events.length, 'the JSONL download has every event')
  t.equal(JSON.parse((await http('GET', `${api}/runs/${runId}`)).body).run.result, 'success')
  t.equal((await http('GET', `${api}/runs/20990101T000000Z-000000`)).status, 404)

  // The schedule: move the test clock to 10:00; the hourly job runs.
  const clockAck = d.next(/clock 2026-07-01T10:00:00.000Z/)
  const scheduledStart = d.next(/photos: backup run (\S+) started \(schedule, due 2026-07-01T10:00:00.000Z/)
  d.child.stdin!.write('now 2026-07-01T10:00:00Z\n')
  await clockAck
  const scheduled = (await scheduledStart)[1]
  await d.line(new RegExp(`photos: run ${scheduled} success`))
  const runs = JSON.parse((await http('GET', `${api}/jobs/photos/runs`)).body).runs
  t.same(runs.map((r: { trigger: string; scheduled_for: string | null }) => [r.trigger, r.scheduled_for]), [['schedule', '2026-07-01T10:00:00.000Z'], ['api', null]])
  const cliJobs = JSON.parse((await run(['jobs', '--json', ...s.base], { ...s.env, COLDSTORE_TEST_NOW: '2026-07-01T10:05:00Z' })).stdout)
  t.same(cliJobs.jobs.map((j: { name: string; health: string }) => [j.name, j.health]), [['photos', 'green'], ['media', 'yellow']], 'coldstore jobs --json sees the daemon\'s runs')
  const root = await http('GET', info.url)
  t.match(root.body, /href="\/photos\/"/, 'WebDAV/HTML browsing on the same listener')

  // SIGTERM while media waits in its pre-hook: grace 0, the run is stopped and recorded as interrupted.
  const m = await http('POST', `${api}/jobs/media/run`, { headers: { 'X-Coldstore-Csrf': token } })
  const mediaRun = JSON.parse(m.body).run as string
  t.equal((await http('POST', `${api}/jobs/media/run`, { headers: { 'X-Coldstore-Csrf': token } })).status, 409, 'Run now while it runs: 409')
  await sse(`${info.url}api/runs/${mediaRun}/log`, (e) => {
    if (e.type === 'log' && e.message === 'media waits') d.child.kill('SIGTERM')
  })
  t.equal(await d.exited, 0, 'the daemon exits 0 after SIGTERM')
  t.ok(d.lines.some((l) => /stopping run/.test(l)))
  const rec = JSON.parse((await run(['log', '--run', mediaRun, '--json', ...s.base], s.env)).stdout)
  t.equal(rec.run.result, 'interrupted', 'the interrupted run is in the journal')
  const all = JSON.parse((await run(['log', '--json', ...s.base], s.env)).stdout).runs
  t.equal(all.length, 3, 'every run is in the journal')
  t.notOk(existsSync(join(s.dir, 'state', 'locks', 'job.media.lock')), 'no lock left behind')
})

t.test('two daemons on one configuration: only one runs a job', async (t) => {
  const s = await setup(t, ({ src, repo }) => `
jobs:
  shared:
    sources: [${src}]
    repo: ${repo}
    schedule: "0 4 * * *"
    pre_hook: "echo shared hook"
server:
  listen: 127.0.0.1:0
`, { COLDSTORE_TEST_CLOCK: '2026-07-01T03:59:00Z' })
  const a = new CliProcess(t, ['daemon', '--json', ...s.base], s.env, 'pipe')
  const b = new CliProcess(t, ['daemon', '--json', ...s.base], s.env, 'pipe')
  t.teardown(() => {
    a.child.kill('SIGKILL')
    b.child.kill('SIGKILL')
  })
  await Promise.all([a.firstStdoutLine(), b.firstStdoutLine()])
  const ends = [a, b].map((p) => p.next(/shared: run \S+ (success|skipped|failed|interrupted|warning)/))
  for (const p of [a, b]) p.child.stdin!.write('now 2026-07-01T04:00:00Z\n')
  const results = (await Promise.all(ends)).map((m) => m[1]).sort()
  t.same(results, ['skipped', 'success'], 'one ran it; the other found it running, or found it run for that time')
  for (const p of [a, b]) p.child.kill('SIGTERM')
  t.same(await Promise.all([a.exited, b.exited]), [0, 0])
  const runs = JSON.parse((await run(['log', '--json', ...s.base], s.env)).stdout).runs as { result: string; error: string | null }[]
  t.same(runs.map((r) => r.result).sort(), ['skipped', 'success'])
  t.match(runs.find((r) => r.result === 'skipped')?.error, /^already (running|run for 2026-07-01T04:00:00\.000Z) \(pid \d+/)
  const snaps = JSON.parse((await run(['snapshots', '--json', '--repo', join(s.dir, 'repo'), ...s.base], s.env)).stdout)
  t.equal(snaps.length, 1, 'one snapshot')
})

t.test('a restic job through coldstore run', async (t) => {
  if (spawnSync('restic', ['version']).status !== 0) {
    if (process.env.CI === 'true') t.fail('restic is not installed (apt-get install restic)')
    else t.skip('restic is not installed')
    return
  }
  const s = await setup(t, ({ dir, src }) => `
jobs:
  host:
    type: restic
    sources: [${src}]
    restic_repository: ${dir}/restic
    password_file: restic-password
    check: weekly
`, {})
  writeFileSync(join(s.dir, 'restic-password'), 'pw\n')
  const e = { ...s.env, RESTIC_CACHE_DIR: join(s.dir, 'restic-cache') }
  t.equal(spawnSync('restic', ['-r', join(s.dir, 'restic'), '--password-file', join(s.dir, 'restic-password'), 'init'], { env: e }).status, 0)
  const r = await run(['run', 'host', '--json', ...s.base], e)
  exits(t, r, 0, 'restic backup')
  const doc = JSON.parse(r.stdout)
  t.equal(doc.stats.files, 4)
  t.match(doc.snapshot, /^[0-9a-f]{8,}$/)
  const c = await run(['run', 'host', '--check', '--json', ...s.base], e)
  exits(t, c, 0, 'restic check')
  t.equal(JSON.parse(c.stdout).check.ok, true)
  const jobs = JSON.parse((await run(['jobs', '--json', ...s.base], e)).stdout)
  t.equal(jobs.jobs[0].check.last.result, 'success', 'the check is in the job status')
})
