/**
 * The homelab acceptance scenario of the README ("A homelab, start to finish"), as one test on the built
 * CLI: three jobs in one configuration (a media library weekly to DEEP_ARCHIVE, a photo library with its
 * database dump in a pre-hook daily to GLACIER_IR, the host nightly to GLACIER) on one S3 remote,
 * `coldstore daemon` on a test clock that reaches Sunday 03:00 so all three run on schedule; then in
 * headless Chromium: the runs in the dashboard, a manual run from the dashboard with its live log, a
 * forced failure and its alert (a webhook to a local recording server), a photo restored without a shell
 * (dashboard → snapshot → file → download), the Deep Archive media job's restore estimate (tiers with
 * their wait and cost) and its files answering "retrieve first", and cost estimates that grow with the
 * stored data.
 *
 * The S3 remote is s3rver behind the project's S3 test gateway (engine/remote/s3/testing/gateway.ts),
 * which keeps the storage classes and refuses to read DEEP_ARCHIVE objects before a retrieval, as AWS does.
 * Screenshots: .tap/artifacts/homelab/*.png.
 */
import t from 'tap'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startGateway } from '../engine/remote/s3/testing/gateway.js'
import { haveServer } from '../engine/remote/s3/testing/s3-server.js'
import { s3rverMissing, startS3rver } from '../engine/remote/s3/testing/s3rver.js'
import { seededBytes, writeTree } from '../engine/testing/test-repo.js'
import { ensureBuilt } from './testing/build.js'
import { allFiles, secretForms } from './testing/secrets.js'
import { CHROMIUM, CliProcess, artifactsDir, cliEnv, exits, http, launchChromium, runCli, startRecorder } from './testing/daemon.js'

ensureBuilt(t)

const TOKEN = 'homelab-dashboard-token-2f8e1c'

t.test('homelab: three jobs, the daemon, the dashboard, a manual run, an alert, a restore without a shell, growing costs', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  if (!existsSync(CHROMIUM)) {
    if (process.env.CI === 'true') t.fail('chromium is not installed (apt-get install chromium)')
    else t.skip('chromium is not installed')
    return
  }
  const dir = t.testdir() // first: a later t.testdir() would empty the folder s3rver keeps its files in
  const upstream = await startS3rver(t)
  const gw = await startGateway(t, upstream)
  const bucket = await gw.createBucket()
  const alerts = await startRecorder(t)
  const shots = artifactsDir('homelab')

  // The data: a media library, a photo library with its "database", the host's files.
  const photo = seededBytes('IMG_0001', 600_000)
  writeTree(join(dir, 'srv'), {
    'media/movies/holiday.mkv': seededBytes('holiday', 3 << 20),
    'media/music/song.flac': seededBytes('song', 1 << 20),
    'immich/library/2026/IMG_0001.jpg': photo,
    'immich/library/2026/IMG_0002.jpg': seededBytes('IMG_0002', 400_000),
    'immich/library/backups/.keep': '',
    'immich/postgres/data.db': 'the photo database\n'.repeat(1000),
    'host/etc/hostname': 'thinkcentre\n',
    'host/home/me/.bashrc': 'alias ll="ls -l"\n',
  })
  const srv = join(dir, 'srv')

  // The README's configuration folder: secrets in files, then coldstore.yaml.
  const config = join(dir, 'config')
  mkdirSync(join(config, 'secrets'), { recursive: true })
  const secrets: Record<string, string> = {
    'repo-password': 'correct horse battery staple\n',
    'aws.env': Object.entries(gw.env()).map(([k, v]) => `${k}=${v}`).join('\n') + '\n',
    'dashboard-token': `${TOKEN}\n`,
    'alert-webhook': `${alerts.url}\n`,
  }
  for (const [name, text] of Object.entries(secrets)) {
    writeFileSync(join(config, 'secrets', name), text)
    chmodSync(join(config, 'secrets', name), 0o600)
  }
  const yaml = join(config, 'coldstore.yaml')
  writeFileSync(yaml, `
remotes:
  cold:
    url: "${gw.url(bucket, 'coldstore')}"
    storage_class: DEEP_ARCHIVE
    env_file: secrets/aws.env
    password_file: secrets/repo-password
jobs:
  media:
    sources: [${srv}/media]
    remote: cold
    path: media
    schedule: weekly
    retention: { keep_weekly: 4, keep_monthly: 12 }
  photos:
    sources: [${srv}/immich/library]
    remote: cold
    path: photos
    storage_class: GLACIER_IR
    schedule: daily
    retries: 0
    pre_hook: "echo dumping the Immich database; test ! -e ${dir}/fail-photos || { echo 'pg_dumpall: database is locked' >&2; exit 1; }; cp ${srv}/immich/postgres/data.db ${srv}/immich/library/backups/immich.sql"
    retention: { keep_daily: 7, keep_weekly: 8, keep_monthly: 24 }
  host:
    type: host
    sources: [${srv}/host/etc, ${srv}/host/home]
    remote: cold
    path: host
    storage_class: GLACIER
    schedule: "0 3 * * *"
notify:
  cost_threshold_usd: 10
  webhook:
    - { name: alerts, format: json, url_file: secrets/alert-webhook }
server:
  listen: 127.0.0.1:0
  token_file: secrets/dashboard-token
`)
  const base = ['--config', yaml, '--state-dir', join(dir, 'cache', 'state'), '--cache-dir', join(dir, 'cache')]
  const env = cliEnv(join(dir, 'home'), { COLDSTORE_TEST_CLOCK: '2026-07-05T02:59:00Z' })
  for (const p of ['media', 'photos', 'host']) exits(t, await runCli(['init', '--repo', `cold://${p}`, ...base], env), 0, `init cold://${p}`)

  // The daemon; the clock reaches Sunday 03:00: the weekly, daily and nightly jobs all run.
  const d = new CliProcess(t, ['daemon', '--json', ...base], env, 'pipe')
  const info = await d.json<{ url: string; dashboard: string }>()
  const ends = ['media', 'photos', 'host'].map((j) => d.next(new RegExp(`${j}: run \\S+ (success|warning|failed)`)))
  const costsAfterRuns = d.next(/costs: estimated .*: 3 snapshots, (\d+) bytes stored/)
  await d.setClock('2026-07-05T03:00:00Z')
  t.same((await Promise.all(ends)).map((m) => m[1]), ['success', 'success', 'success'], 'the three scheduled runs succeeded')
  const stored0 = Number((await costsAfterRuns)[1])
  const dataPuts = gw.log.filter((e) => e.method === 'PUT' && /\/data\//.test(e.key))
  for (const [job, cls] of [['media', 'DEEP_ARCHIVE'], ['photos', 'GLACIER_IR'], ['host', 'GLACIER']]) {
    const keys = dataPuts.filter((e) => e.key.includes(`coldstore/${job}/`)).map((e) => e.key)
    t.ok(keys.length > 0 && keys.every((k) => gw.objectState(bucket, k)?.storageClass === cls), `${job}: data packs in ${cls}`)
  }

  // The dashboard: log in with the token.
  const context = await launchChromium(t, dir)
  const page = await context.newPage()
  await page.goto(info.url)
  await page.fill('#password', TOKEN)
  await page.click('button[type=submit]')
  await page.waitForURL(/\/-\/$/)
  t.same(await page.locator('li.card h2 a').allInnerTexts(), ['media', 'photos', 'host'])
  for (const j of ['media', 'photos', 'host']) {
    t.equal(await page.locator(`li.card[data-job=${j}] [data-health]`).getAttribute('data-health'), 'green', `${j} is green`)
    t.match(await page.locator(`li.card[data-job=${j}] .last-run`).innerText(), /success/, `${j}: its run is shown`)
  }
  const totalBefore = Number(await page.locator('[data-total-usd]').getAttribute('data-total-usd'))
  t.ok(totalBefore > 0, `an estimated monthly cost ($${totalBefore})`)
  t.match(await page.locator('table.costs').innerText(), /DEEP_ARCHIVE/, 'storage per class in the cost table')
  await page.screenshot({ path: join(shots, 'jobs-after-first-runs.png'), fullPage: true })

  // A manual run from the dashboard, with its live log.
  await page.click('li.card[data-job=photos] form.runnow button')
  await page.waitForURL(/\/-\/runs\//)
  await page.locator('#live-status[data-state=ended]').waitFor({ timeout: 120_000 })
  t.equal(await page.locator('#live-status').getAttribute('data-result'), 'success', 'the manual run succeeded')
  t.match(await page.locator('#log').innerText(), /\[hook\] dumping the Immich database/, 'its log, live: the database dump')
  await page.screenshot({ path: join(shots, 'manual-run.png'), fullPage: true })

  // A forced failure: the database dump fails; the alert goes out.
  writeFileSync(join(dir, 'fail-photos'), '')
  await page.goto(`${info.url}-/jobs/photos`)
  await page.click('form.runnow button:text-is("Run now")')
  await page.waitForURL(/\/-\/runs\//)
  await page.locator('#live-status[data-state=ended]').waitFor({ timeout: 120_000 })
  t.equal(await page.locator('#live-status').getAttribute('data-result'), 'failed')
  const alert = await alerts.wait((b) => b.kind === 'failure' && b.job === 'photos')
  t.match(alert.message, /pre-hook 1 failed/, 'the alert says what failed')
  t.match(alert.message, /database is locked/, 'with the hook\'s error')
  await page.goto(`${info.url}-/`)
  t.equal(await page.locator('li.card[data-job=photos] [data-health]').getAttribute('data-health'), 'red', 'photos is red')
  t.match(await page.locator('li.card[data-job=photos] .reasons').innerText(), /the last run failed/)

  // A restore without a shell: the photos job → its newest snapshot → the file → download.
  await page.goto(`${info.url}-/jobs/photos`)
  // Retention (restic's rules): the newest of the day and the oldest snapshot, each with its reasons.
  t.equal(await page.locator('table.snapshots tbody tr').count(), 2, 'two photo snapshots')
  t.match(await page.locator('table.snapshots tbody tr >> nth=0').innerText(), /daily snapshot/, 'why retention keeps the newest')
  t.match(await page.locator('table.snapshots tbody tr >> nth=1').innerText(), /oldest daily snapshot/, 'and the oldest')
  t.match(await page.locator('main').innerText(), /Last forget .*kept 2, removed 0 snapshots/, 'the last forget result')
  await page.click('table.snapshots tbody tr >> nth=0 >> a >> nth=0')
  for (const folder of ['library/', '2026/']) await page.click(`tbody a:text-is("${folder}")`)
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('tr:has-text("IMG_0001.jpg") a.dl')])
  const restored = join(dir, 'restored.jpg')
  await dl.saveAs(restored)
  t.ok(readFileSync(restored).equals(photo), 'the photo downloaded from the browser is the original')
  await page.goBack()
  await page.click('tbody a:text-is("backups/")')
  t.match(await page.locator('tbody').innerText(), /immich\.sql/, 'the database dump is in the snapshot')

  // Deep Archive: the media job's full restore per tier, and its files need a retrieval first.
  await page.goto(`${info.url}-/jobs/media`)
  const tiers = await page.locator('table.tiers tbody tr').allInnerTexts()
  t.match(tiers.join('\n'), /Standard\s+9–12 hours\s+~\$/, 'Standard: 9–12 hours, with its cost')
  t.match(tiers.join('\n'), /Bulk\s+24–48 hours\s+~\$/, 'Bulk: 24–48 hours')
  t.match(await page.locator('main').innerText(), /must be retrieved before files can be downloaded/)
  await page.screenshot({ path: join(shots, 'media-job.png'), fullPage: true })
  const session = (await context.cookies()).find((c) => c.name === 'coldstore_session')!
  const archived = await http('GET', `${info.url}media/latest/media/movies/holiday.mkv`, { headers: { Cookie: `coldstore_session=${session.value}` } })
  t.equal(archived.status, 409, 'a Deep Archive file: 409 until it is retrieved')
  t.match(archived.body, /--request-retrieval/)

  // Costs grow with the stored data: more media, a run from the dashboard, a higher estimate.
  const mediaUsdBefore = Number(await page.locator('[data-job-usd]').getAttribute('data-job-usd'))
  writeFileSync(join(srv, 'media', 'movies', 'wedding.mkv'), seededBytes('wedding', 4 << 20))
  const storedBefore = Number(await page.locator('[data-job-bytes]').getAttribute('data-job-bytes'))
  const grown = (async () => {
    // Estimates come after each run (and hourly); wait for the one that counts the new file.
    for (;;) {
      const m = await d.next(/costs: estimated .*: \d+ snapshots, (\d+) bytes stored/)
      if (Number(m[1]) > stored0 + (4 << 20)) return
    }
  })()
  await page.click('form.runnow button:text-is("Run now")')
  await page.waitForURL(/\/-\/runs\//)
  await page.locator('#live-status[data-state=ended]').waitFor({ timeout: 120_000 })
  t.equal(await page.locator('#live-status').getAttribute('data-result'), 'success')
  await grown
  await page.goto(`${info.url}-/jobs/media`)
  const mediaUsdAfter = Number(await page.locator('[data-job-usd]').getAttribute('data-job-usd'))
  t.ok(mediaUsdAfter > mediaUsdBefore, `the media job's monthly cost grew ($${mediaUsdBefore} → $${mediaUsdAfter})`)
  t.ok(Number(await page.locator('[data-job-bytes]').getAttribute('data-job-bytes')) > storedBefore + (4 << 20), 'and its stored bytes')
  await page.goto(`${info.url}-/`)
  const totalAfter = Number(await page.locator('[data-total-usd]').getAttribute('data-total-usd'))
  t.ok(totalAfter > totalBefore, `the total grew ($${totalBefore} → $${totalAfter})`)
  t.ok(await page.locator('figure.chart svg polyline').count() === 3, 'the chart: one line per job')
  await page.screenshot({ path: join(shots, 'jobs-at-the-end.png'), fullPage: true })
  t.equal(alerts.received.filter((r) => r.body.kind === 'cost_threshold').length, 0, 'far below the $10 threshold: no cost alert')

  // No secret in what the daemon left or showed: every file of the run (the repositories in s3rver's folder,
  // the cache, state, run journal, the downloaded photo), its output and command line (what ps shows), and
  // the dashboard's pages, run logs included. (The S3 keys are s3rver's fixed `S3RVER`: cli/secrets.test.ts
  // searches for distinctive cloud credentials.)
  const runLink = await page.locator('a[href*="/-/runs/"]').first().getAttribute('href')
  const pages: string[] = []
  for (const path of ['-/', '-/jobs/media', '-/jobs/photos', '-/jobs/host', (runLink ?? '/-/').replace(/^\//, '')]) {
    await page.goto(`${info.url}${path}`)
    pages.push(await page.content())
  }
  const runLog = await http('GET', `${info.url}${(runLink ?? '/-/').replace(/^\//, '')}`, { headers: { Cookie: `coldstore_session=${session.value}` } })
  t.equal(runLog.status, 200, 'a run page, with its log')
  const outputs = [Buffer.from(d.stdout), Buffer.from(d.lines.join('\n')), readFileSync(`/proc/${d.child.pid}/cmdline`), ...pages.map((h) => Buffer.from(h)), Buffer.from(runLog.body)]
  const files = allFiles(dir, [join(config, 'secrets'), join(dir, 'chrome-profile')])
  t.ok(files.some((f) => f.includes('journal')) && files.some((f) => f.includes('/data/')), `the search covers the journal and the repositories' packs (${files.length} files)`)
  const found: string[] = []
  for (const [name, secret] of [['repository password', 'correct horse battery staple'], ['dashboard token', TOKEN]]) {
    const needles = secretForms(secret)
    for (const f of files) if (needles.some((n) => readFileSync(f).includes(n))) found.push(`${name} in ${f}`)
    outputs.forEach((o, i) => { if (needles.some((n) => o.includes(n))) found.push(`${name} in output ${i}`) })
  }
  t.same(found, [], `neither the password nor the token in ${files.length} files or ${outputs.length} outputs (5 encodings each)`)
  t.ok(readFileSync(join(config, 'secrets', 'repo-password')).includes(secretForms('correct horse battery staple')[0]), 'the search finds the password in its own file')

  t.equal(await d.stop(), 0, 'the daemon stops on SIGTERM')
  t.comment(`screenshots: ${shots}`)
})
