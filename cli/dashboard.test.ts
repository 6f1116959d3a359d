/**
 * The dashboard of `coldstore daemon` in headless Chromium (Debian's, driven by playwright-core), against
 * the built CLI with real worker processes: the login flow (wrong token, session cookie flags, logout,
 * expiry on the daemon's test clock), the job list and a job's page, Run now with its log appearing live
 * while the run is still in its pre-hook, the log download, the snapshot link into the file browser and
 * a file downloaded from there, CSRF refusals of POSTs without the token or from another origin, escaping
 * of names, paths and log lines, and the pages at a phone's width (390 px) without horizontal scrolling.
 *
 * Screenshots: .tap/artifacts/dashboard/*.png (COLDSTORE_TEST_ARTIFACTS moves them).
 */
import t from 'tap'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ensureBuilt } from './testing/build.js'
import { CHROMIUM, CliProcess, artifactsDir, cliEnv, exits, http, launchChromium, runCli } from './testing/daemon.js'

ensureBuilt(t)

const TOKEN = 'dashboard-test-token-0123456789'

t.test('dashboard: login, job list, job page, Run now with a live log, downloads, CSRF, phone width', async (t) => {
  if (!existsSync(CHROMIUM)) {
    if (process.env.CI === 'true') t.fail('chromium is not installed (apt-get install chromium)')
    else t.skip('chromium is not installed')
    return
  }
  const dir = t.testdir()
  const shots = artifactsDir('dashboard')
  const src = join(dir, 'library')
  const odd = join(src, '<i>odd & "name"</i>')
  mkdirSync(odd, { recursive: true })
  writeFileSync(join(src, 'photo1.jpg'), Buffer.alloc(150_000, 7))
  writeFileSync(join(odd, 'notes.txt'), 'hello from a strange folder\n')
  const repo = join(dir, 'repo')
  const base = ['--state-dir', join(dir, 'state'), '--cache-dir', join(dir, 'cache')]
  const env = cliEnv(dir, { COLDSTORE_TEST_CLOCK: '2026-07-01T09:30:00Z' })
  exits(t, await runCli(['init', '--repo', repo, '--no-encryption', ...base], env), 0, 'init')
  writeFileSync(join(dir, 'token'), `${TOKEN}\n`)
  const config = join(dir, 'coldstore.yaml')
  writeFileSync(config, `
jobs:
  photos:
    sources: [${JSON.stringify(src)}]
    repo: ${repo}
    schedule: weekly
    retention: { keep_last: 3 }
    pre_hook: "echo '<b>dump</b> of the database'; while [ ! -e ${dir}/go ]; do sleep 0.05; done; echo dumped"
  notes:
    sources: [${JSON.stringify(odd)}]
    repo: ${repo}
server:
  listen: 127.0.0.1:0
  token_file: token
  session_timeout: 1h
daemon:
  progress_interval: 0s
`)
  const d = new CliProcess(t, ['daemon', '--json', '--config', config, ...base], env, 'pipe')
  const info = await d.json<{ url: string; dashboard: string }>()
  t.equal(info.dashboard, `${info.url}-/`)

  // API clients keep bearer authentication; without it: 401 with a Bearer challenge.
  t.equal((await http('GET', `${info.url}api/jobs`, { headers: { Authorization: `Bearer ${TOKEN}` } })).status, 200, 'bearer still works')
  const anon = await http('GET', `${info.url}api/jobs`)
  t.equal(anon.status, 401)
  t.match(anon.headers['www-authenticate'], /Bearer/)
  t.equal((await http('GET', `${info.url}healthz`)).body, 'ok\n', '/healthz answers without authentication')

  const context = await launchChromium(t, dir)
  const page = await context.newPage()

  // Login: a browser without a session is sent to the login page; a wrong token is refused.
  await page.goto(`${info.url}-/jobs/photos`)
  t.match(page.url(), /\/-\/login\?next=%2F-%2Fjobs%2Fphotos$/, 'redirected to the login page')
  await page.screenshot({ path: join(shots, 'login.png') })
  await page.fill('#password', 'not-the-token-at-all')
  await page.click('button[type=submit]')
  t.match(await page.locator('.error').innerText(), /Wrong token or password/)
  await page.fill('#password', TOKEN)
  await page.click('button[type=submit]')
  await page.waitForURL(/\/-\/jobs\/photos$/)
  t.pass('logged in: back where the browser wanted to go')
  const cookie = (await context.cookies()).find((c) => c.name === 'coldstore_session')
  t.ok(cookie, 'a session cookie')
  t.equal(cookie?.httpOnly, true, 'HttpOnly')
  t.equal(cookie?.sameSite, 'Strict', 'SameSite=Strict')
  t.equal(cookie?.secure, false, 'not Secure over plain HTTP on loopback')

  // The job list.
  await page.goto(`${info.url}`)
  t.match(page.url(), /\/-\/$/, 'the server root opens the dashboard')
  t.same(await page.locator('li.card h2 a').allInnerTexts(), ['photos', 'notes'], 'one card per job, in configuration order')
  t.equal(await page.locator('li.card[data-job=photos] [data-health]').getAttribute('data-health'), 'yellow', 'never run: yellow')
  await page.screenshot({ path: join(shots, 'jobs.png'), fullPage: true })

  // CSRF: POSTs without the token are refused, from the page itself; a foreign Origin too.
  const refused = await page.evaluate(async () => {
    const api = await fetch('/api/jobs/photos/run', { method: 'POST' })
    const form = await fetch('/-/jobs/photos/run', { method: 'POST', body: new URLSearchParams({ kind: 'backup' }) })
    const wrong = await fetch('/-/jobs/photos/run', { method: 'POST', body: new URLSearchParams({ kind: 'backup', csrf: 'guess' }) })
    return [api.status, form.status, wrong.status]
  })
  t.same(refused, [403, 403, 403], 'API POST without X-Coldstore-Csrf, form POST without or with a wrong csrf field: 403')
  const session = `coldstore_session=${cookie!.value}`
  const csrf = await page.locator('meta[name=csrf-token]').getAttribute('content')
  const foreign = await http('POST', `${info.url}-/jobs/photos/run`, {
    headers: { Cookie: session, Origin: 'http://evil.example', 'Content-Type': 'application/x-www-form-urlencoded' }, body: `csrf=${csrf}&kind=backup`,
  })
  t.equal(foreign.status, 403, 'the right token from another origin: 403')
  t.same(JSON.parse((await http('GET', `${info.url}api/runs`, { headers: { Cookie: session } })).body).runs, [], 'no run was started by any of them')

  // Run now: the run's page follows its log live (the pre-hook waits for a file until the first line is shown).
  await page.click('li.card[data-job=photos] form.runnow button')
  await page.waitForURL(/\/-\/runs\/\d{8}T\d{6}Z-[0-9a-f]{6}$/)
  const runId = page.url().split('/').pop()!
  await page.locator('#log', { hasText: 'of the database' }).waitFor()
  t.equal(await page.locator('#live-status').getAttribute('data-state'), 'live', 'the log is streaming while the run waits in its pre-hook')
  t.notMatch(await page.locator('#log').innerText(), /\[hook\] dumped/, 'the run has not gone further yet')
  t.equal(await page.locator('#log b').count(), 0, 'a log line with markup is text')
  t.match(await page.locator('#log').innerText(), /\[hook\] <b>dump<\/b> of the database/)
  await page.screenshot({ path: join(shots, 'run-live.png'), fullPage: true })
  writeFileSync(join(dir, 'go'), '')
  await page.locator('#live-status[data-state=ended]').waitFor()
  t.equal(await page.locator('#live-status').getAttribute('data-result'), 'success')
  const live = await page.locator('#log').innerText()
  t.match(live, /\[hook\] dumped/, 'the rest of the log arrived live')
  t.match(live, new RegExp(`photos: run ${runId} success`))
  await d.line(new RegExp(`photos: run ${runId} success`))

  // The log: view, and download as a file.
  await page.reload()
  const [logDl] = await Promise.all([page.waitForEvent('download'), page.click('text=Download the log')])
  t.equal(logDl.suggestedFilename(), `photos-${runId}.log`)
  const saved = join(dir, 'run.log')
  await logDl.saveAs(saved)
  t.match(readFileSync(saved, 'utf8'), /\[hook\] dumped/, 'the downloaded log')

  // The job page: history, snapshot, retention; the snapshot link leads into the file browser.
  await page.goto(`${info.url}-/jobs/photos`)
  t.equal(await page.locator('table.runs tbody tr').count(), 1, 'one run in the history')
  t.match(await page.locator('table.runs tbody tr').innerText(), /success/)
  t.equal(await page.locator('table.snapshots tbody tr').count(), 1, 'one snapshot')
  t.match(await page.locator('table.snapshots tbody tr').innerText(), /last snapshot/, 'why retention keeps it')
  t.match(await page.locator('main').innerText(), /Policy: keep 3 latest/)
  t.match(await page.locator('main').innerText(), /Last forget .*kept 1, removed 0 snapshots/)
  t.ok(await page.locator('figure.chart svg polyline').count() >= 1, 'the stored-bytes chart')
  await page.screenshot({ path: join(shots, 'job.png'), fullPage: true })
  const notes = await context.newPage()
  await notes.goto(`${info.url}-/jobs/notes`)
  t.equal(await notes.locator('main i').count(), 0, 'a source path with markup is text')
  t.match(await notes.locator('main').innerText(), /<i>odd & "name"<\/i>/)
  await notes.close()
  await page.click('table.snapshots tbody tr a >> nth=0')
  await page.waitForURL(/\/photos\/\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d_[0-9a-f]{8}\/$/)
  // The snapshot's tree: each source under its name.
  await page.click('tbody a:text-is("library/")')
  const [fileDl] = await Promise.all([page.waitForEvent('download'), page.click('tr:has-text("photo1.jpg") a.dl')])
  const photo = join(dir, 'photo1.jpg')
  await fileDl.saveAs(photo)
  t.ok(readFileSync(photo).equals(Buffer.alloc(150_000, 7)), 'a file restored from the browser is byte-identical')
  await page.click('header a:text-is("Dashboard")')
  t.match(page.url(), /\/-\/$/, 'back to the dashboard from the file browser')

  // A phone's width: every page fits without horizontal scrolling.
  const phone = await context.newPage()
  await phone.setViewportSize({ width: 390, height: 844 })
  for (const [name, path] of [['phone-jobs', '-/'], ['phone-job', '-/jobs/photos'], ['phone-run', `-/runs/${runId}`]]) {
    await phone.goto(`${info.url}${path}`)
    const width = await phone.evaluate(() => document.documentElement.scrollWidth)
    t.ok(width <= 390, `${name}: ${width} px wide at 390 px`)
    await phone.screenshot({ path: join(shots, `${name}.png`), fullPage: true })
  }
  await phone.close()

  // Logout ends the session.
  await page.goto(`${info.url}-/`)
  await page.click('button:text-is("Log out")')
  await page.waitForURL(/\/-\/login$/)
  await page.goto(`${info.url}-/`)
  t.match(page.url(), /\/-\/login/, 'logged out: back to the login page')
  t.equal((await http('GET', `${info.url}-/`, { headers: { Cookie: session } })).status, 401, 'the old cookie is worth nothing')

  // Sessions expire (session_timeout: 1h, on the daemon's clock).
  await page.fill('#password', TOKEN)
  await page.click('button[type=submit]')
  await page.waitForURL(/\/-\/$/)
  await d.setClock('2026-07-01T10:31:00Z')
  await page.goto(`${info.url}-/jobs/photos`)
  t.match(page.url(), /\/-\/login\?next=/, 'an expired session is sent to the login page')

  t.equal(await d.stop(), 0, 'the daemon stops on SIGTERM')
  t.comment(`screenshots: ${shots}`)
})
