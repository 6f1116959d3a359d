/**
 * What the daemon wires together, end to end on the built CLI: notifications (a job failing in its
 * pre-hook sends a webhook to a local recording server, with the hook's output; a second failure within
 * the rate limit is held back, the state shared by the worker processes; runs missed while the daemon was
 * down; the daily cost check against the threshold), cost estimates that grow with the stored data on a
 * test clock (the dashboard's figures), the access rules beyond loopback (plain HTTP refused unless
 * allowed; HTTPS with a Secure `__Host-` session cookie), the Docker health check over HTTP and HTTPS, and
 * the Docker entry point handing /cache and its state folder to PUID:PGID.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { seededBytes } from '../engine/testing/test-repo.js'
import { ROOT, ensureBuilt } from './testing/build.js'
import { CliProcess, cliEnv, exits, http, runCli, startRecorder } from './testing/daemon.js'

ensureBuilt(t)

const num = (html: string, attr: string): number => {
  const m = new RegExp(`${attr}="([0-9.e-]+)"`).exec(html)
  if (!m) throw new Error(`no ${attr} in the page`)
  return Number(m[1])
}

t.test('notifications and cost estimates from the daemon (test clock)', async (t) => {
  const dir = t.testdir()
  const hook = await startRecorder(t)
  const src = join(dir, 'src')
  mkdirSync(src)
  writeFileSync(join(src, 'a.bin'), seededBytes('a', 400_000))
  const repo = join(dir, 'repo')
  const base = ['--state-dir', join(dir, 'state'), '--cache-dir', join(dir, 'cache')]
  const env = cliEnv(dir, { COLDSTORE_TEST_CLOCK: '2026-07-01T09:30:00Z' })
  exits(t, await runCli(['init', '--repo', repo, '--no-encryption', ...base], env), 0, 'init')
  writeFileSync(join(dir, 'hook-url'), `${hook.url}\n`)
  const config = join(dir, 'coldstore.yaml')
  writeFileSync(config, `
jobs:
  grow:
    sources: [${src}]
    repo: ${repo}
    schedule: hourly
  broken:
    sources: [${src}]
    repo: ${repo}
    retries: 0
    pre_hook: "echo 'pg_dump: cannot connect to the database' >&2; exit 3"
notify:
  rate_limit: 1h
  cost_threshold_usd: 0.000001
  webhook:
    - { name: recorder, format: json, url_file: hook-url }
prices:
  local:
    classes:
      STANDARD: { storage_per_gb_month: 10 }
server:
  listen: 127.0.0.1:0
`)
  const d = new CliProcess(t, ['daemon', '--json', '--config', config, ...base], env, 'pipe')
  const info = await d.json<{ url: string }>()
  t.match(d.lines.join('\n'), /notifications to 1 channel/)

  // The daily cost check at start: above the (tiny) threshold.
  const cost = await hook.wait((b) => b.kind === 'cost_threshold')
  t.match(cost.message, /above the threshold of \$0\.00/)
  t.equal(cost.source, 'coldstore')
  t.ok(existsSync(join(dir, 'state', 'daemon', 'cost-check.json')), 'the check is remembered in the state folder')

  // No authentication on loopback: the dashboard is open, the login page sends browsers on.
  const login = await http('GET', `${info.url}-/login`)
  t.equal(login.status, 303, 'nothing to log in to')
  let page = (await http('GET', `${info.url}-/`)).body
  const total0 = num(page, 'data-total-usd')
  const stored0 = num(page, 'data-stored-bytes')

  // A failing pre-hook: the worker process sends the failure, with the hook's output.
  const csrf = JSON.parse((await http('GET', `${info.url}api/session`)).body).csrf_token as string
  const post = (job: string): Promise<string> => http('POST', `${info.url}api/jobs/${job}/run`, { headers: { 'X-Coldstore-Csrf': csrf } }).then((r) => JSON.parse(r.body).run as string)
  const failed = await post('broken')
  const msg = await hook.wait((b) => b.kind === 'failure')
  t.equal(msg.job, 'broken')
  t.equal(msg.run, failed)
  t.match(msg.message, /broken: backup failed: pre-hook 1 failed \(exit code 3\)/)
  t.match(msg.message, /pg_dump: cannot connect to the database/, 'with the last log lines')
  t.match(msg.details, { result: 'failed', 'exit code': 1 })
  await d.line(new RegExp(`broken: run ${failed} failed`))
  // Again within the hour: held back (the rate limit is a file shared by the worker processes).
  const again = await post('broken')
  await d.line(new RegExp(`broken: run ${again} failed`))
  t.equal(hook.received.filter((r) => r.body.kind === 'failure').length, 1, 'the second failure is rate-limited')
  const limits = JSON.parse(readFileSync(join(dir, 'cache', 'notify', 'rate-limit.json'), 'utf8')) as { entries: Record<string, { suppressed: number }> }
  t.equal(limits.entries['failure:broken'].suppressed, 1, 'counted, for the next message to say')

  // Costs grow with the stored data: the hourly job runs at 10:00, then with more data at 11:00.
  const first = d.next(/costs: estimated .* 1 snapshots, (\d+) bytes stored/)
  await d.setClock('2026-07-01T10:00:00Z')
  await first
  page = (await http('GET', `${info.url}-/`)).body
  const total1 = num(page, 'data-total-usd')
  const stored1 = num(page, 'data-stored-bytes')
  t.ok(stored1 > stored0 + 300_000, `stored bytes grew with the first snapshot (${stored0} → ${stored1})`)
  t.ok(total1 > total0, `so did the estimated monthly cost (${total0} → ${total1})`)
  writeFileSync(join(src, 'b.bin'), seededBytes('b', 2_000_000))
  const second = d.next(/costs: estimated .* 2 snapshots, (\d+) bytes stored/)
  await d.setClock('2026-07-01T11:00:00Z')
  await second
  page = (await http('GET', `${info.url}-/jobs/grow`)).body
  const jobUsd = num(page, 'data-job-usd')
  page = (await http('GET', `${info.url}-/`)).body
  const total2 = num(page, 'data-total-usd')
  t.ok(num(page, 'data-stored-bytes') > stored1 + 1_900_000, 'stored bytes grew with the new file')
  t.ok(total2 > total1, `the estimate grew again (${total1} → ${total2})`)
  t.ok(jobUsd > 0 && jobUsd <= total2, `the job's own share is shown (${jobUsd})`)
  t.match(page, /<polyline class="line s0" points="[^"]+ [^"]+"\/>/, 'the chart has a line of two runs')
  t.equal(hook.received.filter((r) => r.body.kind === 'cost_threshold').length, 1, 'the cost check is daily, not after every run')
  t.equal(await d.stop(), 0)

  // Down for three hours: the next daemon reports the missed runs.
  const d2 = new CliProcess(t, ['daemon', '--json', '--config', config, ...base], { ...env, COLDSTORE_TEST_CLOCK: '2026-07-01T14:20:00Z' }, 'pipe')
  await d2.json()
  const missed = await hook.wait((b) => b.kind === 'missed')
  t.equal(missed.job, 'grow')
  t.match(missed.message, /grow: missed 3 runs .*running it now/)
  const ran = await d2.line(/grow: backup run (\S+) started \(missed/)
  await d2.line(new RegExp(`grow: run ${ran[1]} success`))
  t.equal(await d2.stop(), 0, 'stopped after delivering')
})

t.test('beyond loopback: plain HTTP refused unless allowed; HTTPS login with a Secure cookie; the health check', async (t) => {
  const dir = t.testdir()
  const base = ['--state-dir', join(dir, 'state'), '--cache-dir', join(dir, 'cache')]
  const env = cliEnv(dir)
  writeFileSync(join(dir, 'token'), 'a-long-enough-token-for-tests\n')
  const write = (server: string): string => {
    const f = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`)
    writeFileSync(f, `jobs:\n  j: { sources: [${dir}], repo: ${join(dir, 'none')} }\nserver:\n${server}`)
    return f
  }
  const refused = await runCli(['daemon', '--config', write('  listen: 0.0.0.0:0\n  token_file: token\n'), ...base], env)
  exits(t, refused, 2, 'token over plain HTTP on 0.0.0.0')
  t.match(refused.stderr, /refusing to listen on 0\.0\.0\.0 over plain HTTP.*server\.allow_plain_http: true/)
  exits(t, await runCli(['daemon', '--config', write('  listen: 0.0.0.0:0\n'), ...base], env), 2, 'no authentication on 0.0.0.0')

  const plain = new CliProcess(t, ['daemon', '--json', '--config', write('  listen: 0.0.0.0:0\n  token_file: token\n  allow_plain_http: true\n'), ...base], env)
  const p = await plain.json<{ url: string }>()
  await plain.line(/warning: plain HTTP on 0\.0\.0\.0 \(server\.allow_plain_http\)/)
  const port = new URL(p.url).port
  const health = (url: string): number | null => spawnSync(process.execPath, [join(ROOT, 'scripts', 'docker-healthcheck.mjs')], { env: { ...env, COLDSTORE_HEALTH_URL: url } }).status
  t.equal(health(`http://127.0.0.1:${port}/healthz`), 0, 'the Docker health check: healthy over HTTP')
  const loginForm = await http('GET', `http://127.0.0.1:${port}/-/login`)
  t.match(loginForm.body, /plain HTTP \(server\.allow_plain_http\)/, 'the login page says the connection is not encrypted')
  t.equal(await plain.stop(), 0)
  t.equal(health(`http://127.0.0.1:${port}/healthz`), 1, 'unhealthy when nothing answers')

  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1'], { encoding: 'utf8' })
  if (gen.status !== 0) {
    if (process.env.CI === 'true') t.fail(`openssl: ${gen.stderr}`)
    else t.skip('openssl is missing')
    return
  }
  const tls = new CliProcess(t, ['daemon', '--json', '--config', write(`  listen: 0.0.0.0:0\n  token_file: token\n  tls_cert: ${cert}\n  tls_key: ${key}\n`), ...base], env)
  const u = new URL((await tls.json<{ url: string }>()).url)
  const url = `https://127.0.0.1:${u.port}`
  t.equal(health(`http://127.0.0.1:${u.port}/healthz`), 0, 'the health check finds HTTPS on an http:// address')
  const form = await http('GET', `${url}/-/login`)
  const nonce = /name="csrf" value="([^"]+)"/.exec(form.body)![1]
  const loginCookie = String(form.headers['set-cookie']).split(';')[0]
  t.match(String(form.headers['set-cookie']), /; Secure/, 'the login form cookie is Secure')
  const ok = await http('POST', `${url}/-/login`, {
    headers: { Cookie: loginCookie, 'Content-Type': 'application/x-www-form-urlencoded', Origin: url.replace('127.0.0.1', '127.0.0.1') },
    body: `csrf=${nonce}&next=%2F-%2F&user=&password=a-long-enough-token-for-tests`,
  })
  t.equal(ok.status, 303)
  const set = (ok.headers['set-cookie'] as string[]).find((c) => c.startsWith('__Host-coldstore_session='))!
  t.match(set, /^__Host-coldstore_session=[\w-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/, 'the session cookie over HTTPS')
  const jobs = await http('GET', `${url}/-/`, { headers: { Cookie: set.split(';')[0] } })
  t.equal(jobs.status, 200, 'the session opens the dashboard')
  const noCsrfLogin = await http('POST', `${url}/-/login`, { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'password=a-long-enough-token-for-tests' })
  t.equal(noCsrfLogin.status, 403, 'a login POST without the form\'s token is refused')
  t.equal(await tls.stop(), 0)
})

t.test('the Docker entry point gives /cache and its state folder to PUID:PGID', async (t) => {
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/setpriv')) {
    t.skip('needs root and setpriv (it changes owners and drops privileges)')
    return
  }
  const dir = t.testdir()
  const bin = join(dir, 'bin')
  mkdirSync(bin)
  // A stand-in for the coldstore binary: who runs it, and where the state goes.
  writeFileSync(join(bin, 'coldstore'), '#!/bin/sh\necho "uid=$(id -u) gid=$(id -g) state=$COLDSTORE_STATE_DIR args=$*"\n')
  chmodSync(join(bin, 'coldstore'), 0o755)
  chmodSync(dir, 0o755)
  const cache = join(dir, 'cache')
  const r = spawnSync('/bin/sh', [join(ROOT, 'scripts', 'docker-entrypoint.sh'), 'daemon', '--config', '/config/coldstore.yaml'], {
    encoding: 'utf8', env: { PATH: `${bin}:/usr/bin:/bin`, COLDSTORE_CACHE_DIR: cache, COLDSTORE_STATE_DIR: join(cache, 'state'), PUID: '4321', PGID: '4321' },
  })
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout.trim(), `uid=4321 gid=4321 state=${join(cache, 'state')} args=daemon --config /config/coldstore.yaml`)
  for (const d of [cache, join(cache, 'state')]) t.same([statSync(d).uid, statSync(d).gid], [4321, 4321], `${d} belongs to PUID:PGID`)
  const bad = spawnSync('/bin/sh', [join(ROOT, 'scripts', 'docker-entrypoint.sh')], { encoding: 'utf8', env: { PATH: `${bin}:/usr/bin:/bin`, COLDSTORE_CACHE_DIR: cache, PUID: 'me' } })
  t.equal(bad.status, 2)
  t.match(bad.stderr, /PUID and PGID must be numbers/)
})
