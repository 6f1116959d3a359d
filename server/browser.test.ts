/**
 * The HTML view in headless Chromium (Debian's, driven by playwright-core):
 * listing with breadcrumbs, navigation, a file download and folder downloads
 * as .tar and .zip checked file by file.
 */
import t from 'tap'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { seededBytes } from '../engine/testing/test-repo.js'
import { ensureBuilt, haveTool, run, serveFiles, readAll } from './testing/fixture.js'

ensureBuilt(t)

const CHROMIUM = '/usr/bin/chromium'


t.test('browse and download in Chromium', async (t) => {
  if (!haveTool(t, CHROMIUM, 'chromium') || !haveTool(t, 'tar') || !haveTool(t, 'unzip')) return
  const { chromium } = await import('playwright-core')
  const files = {
    'report.pdf': seededBytes('pdf', 300_000),
    'data/results.csv': 'a,b\n1,2\n',
    'data/raw/big.bin': seededBytes('raw', 2 * 1024 * 1024 + 9),
    'notes <b>bold.txt': 'not html\n',
  }
  const s = await serveFiles(t, files)
  // A fresh profile per run (playwright takes it as launchPersistentContext's userDataDir, not as --user-data-dir).
  const context = await chromium.launchPersistentContext(join(s.dir, 'chrome-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(() => context.close())
  const page = await context.newPage()

  await page.goto(s.url)
  t.equal(await page.title(), 'coldstore · coldstore')
  await page.click('text=data/')
  await page.click('text=latest/')
  t.match(page.url(), /\/data\/latest\/$/)
  await page.click('text=src/')
  t.match(page.url(), /\/data\/latest\/src\/$/)
  const crumbs = await page.locator('nav.crumbs').innerText()
  t.equal(crumbs.replace(/\s+/g, ' ').trim(), 'coldstore / data / latest / src', 'breadcrumbs')
  const rows = await page.locator('tbody tr').allInnerTexts()
  t.equal(rows.length, 4, 'parent link + 3 entries')
  t.match(rows.join('\n'), /report\.pdf\s*download\s*293 KiB/, 'name, download link, size')
  t.match(rows.join('\n'), /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/, 'modified time')
  t.equal(await page.getByText('notes <b>bold.txt', { exact: true }).count(), 1, 'names are text, never markup')
  t.equal(await page.locator('b').count(), 0)

  // One file via its download link.
  const [fileDl] = await Promise.all([page.waitForEvent('download'), page.click('tr:has-text("report.pdf") a.dl')])
  t.equal(fileDl.suggestedFilename(), 'report.pdf')
  const savedFile = join(s.dir, 'report.pdf')
  await fileDl.saveAs(savedFile)
  t.ok(readFileSync(savedFile).equals(files['report.pdf']), 'downloaded file is byte-identical')

  // Navigate by breadcrumb, then download the data folder as .tar and .zip.
  await page.click('nav.crumbs >> text=latest')
  t.match(page.url(), /\/data\/latest\/$/)
  await page.goto(`${s.url}data/latest/src/data/`)
  for (const kind of ['tar', 'zip'] as const) {
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`text=data.${kind}`)])
    t.equal(dl.suggestedFilename(), `data.${kind}`)
    const archive = join(s.dir, `data.${kind}`)
    await dl.saveAs(archive)
    const out = join(s.dir, `x-${kind}`)
    mkdirSync(out)
    const r = kind === 'tar' ? await run('tar', ['-xf', archive, '-C', out]) : await run('unzip', ['-q', archive, '-d', out])
    t.equal(r.code, 0, r.stderr)
    const got = readAll(join(out, 'data'))
    t.same([...got.keys()].sort(), ['raw/big.bin', 'results.csv'], `${kind}: the folder's files`)
    t.ok(got.get('raw/big.bin')?.equals(files['data/raw/big.bin']), `${kind}: big.bin identical`)
    t.equal(got.get('results.csv')?.toString(), files['data/results.csv'], `${kind}: results.csv identical`)
  }
})
