/**
 * The cost report over a real repository on a LocalRemote: seen through ArchiveSimRemote (the test double
 * of engine/testing/archive-remote.ts: data packs in DEEP_ARCHIVE, listing reports classes) and directly
 * (no classes). Expected numbers are computed here from the price table and from facts gathered
 * independently: object sizes on disk, and each snapshot's packs from freeze/'s packsOfSnapshot.
 */
import { readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { backup } from '../backup/index.js'
import { parseConfigFile } from '../config/config.js'
import { parsePrices } from '../config/prices.js'
import { DEFAULT_PRICES, GB, formatUSD, retrievalOptions } from '../cost/index.js'
import { ConfigError, NotFoundError } from '../errors.js'
import { packsOfSnapshot } from '../freeze/index.js'
import { LocalRemote } from '../remote/index.js'
import { Repository } from '../repo/index.js'
import { listSnapshots } from '../snapshot/index.js'
import { ArchiveSimRemote } from '../testing/archive-remote.js'
import { makeTestRepo, seededBytes, writeTree } from '../testing/test-repo.js'
import { estimateRepositoryCost } from './repository-cost.js'

const S3 = DEFAULT_PRICES['aws-s3'].classes
const DAY = 86_400_000

/** Every object file under `dir` (relative name → size). */
function objects(dir: string, sub = ''): Map<string, number> {
  const out = new Map<string, number>()
  for (const e of readdirSync(join(dir, sub), { withFileTypes: true })) {
    const rel = sub ? `${sub}/${e.name}` : e.name
    if (e.isDirectory()) for (const [k, v] of objects(dir, rel)) out.set(k, v)
    else if (!e.name.startsWith('.tmp-')) out.set(rel, statSync(join(dir, rel)).size)
  }
  return out
}

const sum = (m: Map<string, number>, names: Iterable<string>): number => [...names].reduce((s, n) => s + (m.get(n) ?? 0), 0)
const near = (t: Test, actual: number, expected: number, msg: string): void => {
  t.ok(Math.abs(actual - expected) < 1e-8, `${msg}: ${actual} vs ${expected}`)
}

t.test('cost of a repository with data packs in Deep Archive', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir)
  const media = join(dir, 'media')
  const photos = join(dir, 'photos')
  writeTree(media, { 'a.bin': seededBytes('a', 3 << 20) })
  writeTree(photos, { 'p.jpg': seededBytes('p', 1 << 20), 'db/dump.sql': 'create table x;' })
  const snap = (paths: string[], job: string, iso: string) => backup(tr.repo, { paths, job, hostname: 'thinkcentre', username: 'u', now: () => new Date(iso), program: 'test' })
  await snap([media], 'media', '2026-01-01T00:00:00Z')
  rmSync(join(media, 'a.bin'))
  writeTree(media, { 'c.bin': seededBytes('c', 2 << 20) })
  await snap([media], 'media', '2026-03-01T00:00:00Z')
  await snap([photos], 'photos', '2026-03-10T00:00:00Z')
  await tr.repo.close()
  // A pack no snapshot references (an interrupted run's): what prune would delete.
  const orphan = `data/ee/ee${'0'.repeat(62)}`
  mkdirSync(join(tr.repoDir, 'data/ee'), { recursive: true })
  writeFileSync(join(tr.repoDir, orphan), Buffer.alloc(1000, 1))

  const sim = new ArchiveSimRemote(await LocalRemote.open({ path: tr.repoDir }))
  const repo = await Repository.open(sim, { password: tr.password, cacheDir: tr.cacheDir })
  t.teardown(() => repo.close())
  await repo.syncIndex()
  const snaps = await listSnapshots(repo)
  snaps.sort((a, b) => a.time.localeCompare(b.time))
  const [s1, s2, s3] = snaps
  const packs = await Promise.all(snaps.map((s) => packsOfSnapshot(repo, s)))
  const sizes = objects(tr.repoDir)
  const isData = (n: string): boolean => n.startsWith('data/')
  const now = new Date('2026-04-01T00:00:00Z')

  const r = await estimateRepositoryCost(repo, { prices: DEFAULT_PRICES, now, remove: [s1.id] })
  t.equal(r.provider, 'aws-s3')
  t.equal(r.storageClasses, true)
  t.equal(r.priceLabel, 'AWS S3 us-east-1, list prices 2025')

  // Stored: every object, data packs in DEEP_ARCHIVE, the rest in STANDARD.
  const data = [...sizes.keys()].filter(isData)
  const hot = [...sizes.keys()].filter((n) => !isData(n))
  t.same(r.stored.byClass.map((c) => [c.storageClass, c.objects, c.bytes, c.pricePerGBMonth]), [
    ['DEEP_ARCHIVE', data.length, sum(sizes, data), 0.00099],
    ['STANDARD', hot.length, sum(sizes, hot), 0.023],
  ])
  t.equal(r.stored.objects, sizes.size)
  t.equal(r.stored.bytes, sum(sizes, sizes.keys()))
  near(t, r.stored.monthlyUSD, (sum(sizes, data) / GB) * 0.00099 + (sum(sizes, hot) / GB) * 0.023, 'monthly cost of everything')

  // Per job.
  t.same(r.jobs.map((j) => [j.job, j.snapshots, j.latestTime]), [['media', 2, s2.time], ['photos', 1, s3.time]])
  const [mj, pj] = r.jobs
  const mediaPacks = new Set([...packs[0], ...packs[1]])
  t.equal(mj.referenced.objects, mediaPacks.size, 'media references the packs of both its snapshots')
  t.equal(mj.referenced.bytes, sum(sizes, mediaPacks))
  const mediaData = [...mediaPacks].filter(isData)
  const mediaMeta = [...mediaPacks].filter((n) => !isData(n))
  near(t, mj.referenced.monthlyUSD, (sum(sizes, mediaData) / GB) * 0.00099 + (sum(sizes, mediaMeta) / GB) * 0.023, 'media monthly')

  // Full restore of media = its latest snapshot's data packs.
  const restoreData = [...packs[1]].filter(isData)
  t.same(mj.restore.snapshots, [{ id: s2.id, time: s2.time, host: 'thinkcentre' }])
  t.equal(mj.restore.files, 1)
  t.equal(mj.restore.bytes, 2 << 20)
  t.same(mj.restore.packs, { objects: restoreData.length, bytes: sum(sizes, restoreData) })
  t.same(Object.keys(mj.restore.byClass), ['DEEP_ARCHIVE'])
  const expected = retrievalOptions({ provider: 'aws-s3', storageClass: 'DEEP_ARCHIVE', objects: restoreData.length, bytes: sum(sizes, restoreData), days: 7 })
  t.same(mj.restore.tiers.map((x) => [x.tier, x.hours]), [['Standard', [9, 12]], ['Bulk', [24, 48]]], 'Deep Archive: Standard and Bulk, no Expedited')
  t.same(mj.restore.tiers.map((x) => x.costUSD), expected.map((x) => x.costUSD))
  t.equal(pj.restore.files, 2)

  // Prune now: the orphan, age unknown, charged the whole 180 days of Deep Archive.
  t.equal(r.unreferenced.objects, 1)
  t.equal(r.unreferenced.bytes, 1000)
  t.match(r.unreferenced.earlyDeletion, { packs: 1, bytes: 1000, ageKnown: false })
  near(t, r.unreferenced.earlyDeletion.feeUSD, (1000 / GB) * 0.00099 * (180 / 30), 'orphan fee')
  t.ok(r.notes.some((n) => /ages of unreferenced packs are unknown/.test(n)))

  // Retention: removing s1 frees the packs only it references (a.bin's data, its trees).
  const freed = [...packs[0]].filter((n) => !packs[1].has(n) && !packs[2].has(n))
  const shared = [...packs[0]].filter((n) => packs[1].has(n) || packs[2].has(n))
  t.ok(freed.some(isData), 'some data packs are freed')
  const ret = r.retention!
  t.same(ret.remove, [s1.id])
  t.equal(ret.freed.objects, freed.length)
  t.equal(ret.freed.bytes, sum(sizes, freed))
  t.same(ret.shared, { objects: shared.length, bytes: sum(sizes, shared) })
  const freedData = freed.filter(isData)
  near(t, ret.freed.monthlyUSD, (sum(sizes, freedData) / GB) * 0.00099 + (sum(sizes, freed.filter((n) => !isData(n))) / GB) * 0.023, 'monthly saving')
  // s1 is 90 days old; Deep Archive's minimum is 180: 90 days of storage are charged for its data packs.
  t.same(ret.earlyDeletion.byClass.map((c) => [c.storageClass, c.packs, c.bytes, c.minDays]), [['DEEP_ARCHIVE', freedData.length, sum(sizes, freedData), 180]])
  near(t, ret.earlyDeletion.feeUSD, (sum(sizes, freedData) / GB) * S3.DEEP_ARCHIVE.storagePerGBMonth * (90 / 30), 'early deletion fee')
  t.equal(ret.earlyDeletion.ageKnown, true)

  // Removing the newest media snapshot instead: its packs are younger (31 days).
  const r2 = await estimateRepositoryCost(repo, { prices: DEFAULT_PRICES, now, remove: [s2.id] })
  const freed2 = [...packs[1]].filter((n) => !packs[0].has(n) && !packs[2].has(n)).filter(isData)
  near(t, r2.retention!.earlyDeletion.feeUSD, (sum(sizes, freed2) / GB) * 0.00099 * ((180 - 31) / 30), 'fee of 31-day-old packs')
  t.equal(r2.retention!.earlyDeletion.packs, freed2.length)

  // Past the minimum: no fee.
  const late = await estimateRepositoryCost(repo, { prices: DEFAULT_PRICES, now: new Date(Date.parse(s1.time) + 200 * DAY), remove: [s1.id] })
  t.equal(late.retention!.earlyDeletion.feeUSD, 0)
  t.equal(late.retention!.earlyDeletion.packs, 0)

  await t.rejects(estimateRepositoryCost(repo, { prices: DEFAULT_PRICES, now, remove: ['ab'.repeat(32)] }), NotFoundError, 'an unknown id')
  t.same(sim.dataGets, [], 'the estimate read no data pack')

  // Prices overridden in coldstore.yaml (large, so that a few MiB cost cents): the restore follows them.
  const prices = parsePrices(parseConfigFile(`prices:
  aws-s3:
    egress_per_gb: 10
    classes:
      DEEP_ARCHIVE:
        storage_per_gb_month: 50
        tiers: { Bulk: { per_gb: 100, hours: [30, 40] } }
`, '/c/coldstore.yaml'))
  t.equal(prices['aws-s3'].classes.DEEP_ARCHIVE.tiers!.Bulk!.per1000Requests, 0.025, 'unchanged fields keep the built-in value')
  t.equal(DEFAULT_PRICES['aws-s3'].classes.DEEP_ARCHIVE.storagePerGBMonth, 0.00099, 'the built-in table is not changed')
  t.equal(prices['aws-s3'].label, 'AWS S3 us-east-1, list prices 2025, with overrides from coldstore.yaml')
  const o = await estimateRepositoryCost(repo, { prices, now })
  const gb = sum(sizes, restoreData) / GB
  const bulk = o.jobs[0].restore.tiers.find((x) => x.tier === 'Bulk')!
  t.same(bulk.hours, [30, 40])
  const r2c = (x: number): number => Math.round(x * 100) / 100
  t.equal(bulk.breakdown.retrieval, r2c(gb * 100))
  t.equal(bulk.breakdown.egress, r2c(gb * 10))
  t.equal(bulk.costUSD, r2c(r2c(gb * 100) + r2c((restoreData.length / 1000) * 0.025) + r2c((restoreData.length / 1000) * 0.0004) + r2c(gb * 10) + r2c(gb * 0.023 * (7 / 30))))
  near(t, o.stored.byClass[0].monthlyUSD, (sum(sizes, data) / GB) * 50, 'overridden storage price')
  t.equal(o.retention, null, 'no retention estimate without a removal list')
})

t.test('local and instant-access remotes', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir)
  const src = join(dir, 'src')
  writeTree(src, { 'f.bin': seededBytes('f', 1 << 20) })
  await backup(tr.repo, { paths: [src], hostname: 'nas', username: 'u', now: () => new Date('2026-02-01T00:00:00Z'), program: 'test' })
  const local = await estimateRepositoryCost(tr.repo, { prices: DEFAULT_PRICES, now: new Date('2026-02-02T00:00:00Z') })
  const sizes = objects(tr.repoDir)
  t.equal(local.provider, 'local')
  t.equal(local.storageClasses, false)
  t.same(local.stored.byClass.map((c) => [c.storageClass, c.objects, c.bytes, c.monthlyUSD]), [['STANDARD', sizes.size, sum(sizes, sizes.keys()), 0]])
  t.match(local.notes[0], /no storage classes .* priced as provider local/)
  t.same(local.jobs.map((j) => [j.job, j.host, j.paths]), [[null, 'nas', [src]]], 'snapshots without a job: by host and paths')
  t.same(local.jobs[0].restore.tiers.map((x) => [x.tier, x.costUSD]), [['instant', 0]])
  t.equal(local.unreferenced.objects, 0)
  // Own hardware priced by the user.
  const own = parsePrices(parseConfigFile('prices: { local: { classes: { STANDARD: { storage_per_gb_month: 1000 } } } }', '/c.yaml'))
  const priced = await estimateRepositoryCost(tr.repo, { prices: own, now: new Date('2026-02-02T00:00:00Z') })
  near(t, priced.stored.monthlyUSD, (sum(sizes, sizes.keys()) / GB) * 1000, 'local priced at $1000/GB-month')
  await tr.repo.close()

  // GCS Archive: read at once, billed per GB read.
  const sim = new ArchiveSimRemote(await LocalRemote.open({ path: tr.repoDir }), { provider: 'gcs', dataClass: 'ARCHIVE' })
  const repo = await Repository.open(sim, { password: tr.password, cacheDir: tr.cacheDir })
  t.teardown(() => repo.close())
  await repo.syncIndex()
  const g = await estimateRepositoryCost(repo, { prices: DEFAULT_PRICES, now: new Date('2026-02-02T00:00:00Z') })
  t.equal(g.provider, 'gcs')
  t.same(g.stored.byClass.map((c) => [c.storageClass, c.pricePerGBMonth]), [['ARCHIVE', 0.0012], ['STANDARD', 0.02]])
  t.same(g.jobs[0].restore.tiers.map((x) => [x.tier, x.hours]), [['instant', [0, 0]]])
  // Unknown classes are counted as 0 with a note, not an error.
  const odd = new ArchiveSimRemote(await LocalRemote.open({ path: tr.repoDir }), { provider: 'gcs', dataClass: 'MULTI_REGIONAL' })
  const repo2 = await Repository.open(odd, { password: tr.password, cacheDir: join(dir, 'cache2') })
  t.teardown(() => repo2.close())
  await repo2.syncIndex()
  const u = await estimateRepositoryCost(repo2, { prices: DEFAULT_PRICES, now: new Date('2026-02-02T00:00:00Z') })
  t.ok(u.notes.some((n) => /no price for storage class MULTI_REGIONAL of gcs/.test(n)), 'a note names the class')
  t.equal(u.stored.byClass.find((c) => c.storageClass === 'MULTI_REGIONAL')?.pricePerGBMonth, null)
})

t.test('prices: validation names the key', async (t) => {
  const cases: [string, RegExp][] = [
    ['prices: [1]', /prices: expected a mapping of provider ids/],
    ['prices: { aws-s3: { egress: 1 } }', /prices\.aws-s3\.egress: unknown key/],
    ['prices: { aws-s3: { classes: { DEEP_ARCHIVE: { storage_per_gb: 1 } } } }', /prices\.aws-s3\.classes\.DEEP_ARCHIVE\.storage_per_gb: unknown key/],
    ['prices: { aws-s3: { classes: { DEEP_ARCHIVE: { storage_per_gb_month: -1 } } } }', /prices\.aws-s3\.classes\.DEEP_ARCHIVE\.storage_per_gb_month: expected an amount/],
    ['prices: { aws-s3: { classes: { NEW_CLASS: { storage_per_gb_month: 1 } } } }', /prices\.aws-s3\.classes\.NEW_CLASS: a class the built-in table lacks needs every price: missing per_1000_writes/],
    ['prices: { aws-s3: { classes: { deep: {} } } }', /prices\.aws-s3\.classes\.deep: a storage class is written .* in capitals/],
    ['prices: { aws-s3: { classes: { DEEP_ARCHIVE: { tiers: { Fast: {} } } } } }', /prices\.aws-s3\.classes\.DEEP_ARCHIVE\.tiers\.Fast: unknown tier/],
    ['prices: { aws-s3: { classes: { DEEP_ARCHIVE: { tiers: { Expedited: { per_gb: 1 } } } } } }', /tiers\.Expedited: a tier the built-in table lacks needs per_gb, per_1000_requests and hours/],
    ['prices: { aws-s3: { classes: { GLACIER: { tiers: { Bulk: { hours: [5, 1] } } } } } }', /tiers\.Bulk\.hours: expected \[fastest, slowest\]/],
    ['prices: { aws-s3: { classes: { GLACIER: { min_days: 1.5 } } } }', /GLACIER\.min_days: expected a whole number of days/],
    ['prices: { wasabi: { classes: { STANDARD: { storage_per_gb_month: 0.007 } } } }', /prices\.wasabi\.egress_per_gb: required for a provider the built-in table lacks/],
    ['prices: { aws-s3: { restored_copy_class: NOPE } }', /prices\.aws-s3\.restored_copy_class: expected one of this provider's classes/],
  ]
  for (const [yaml, match] of cases) {
    t.throws(() => parsePrices(parseConfigFile(yaml, '/c/coldstore.yaml')), ConfigError)
    try {
      parsePrices(parseConfigFile(yaml, '/c/coldstore.yaml'))
    } catch (err) {
      t.match((err as Error).message, match, yaml)
    }
  }
  const w = parsePrices(parseConfigFile('prices: { wasabi: { label: Wasabi, egress_per_gb: 0, classes: { STANDARD: { storage_per_gb_month: 0.0069, per_1000_writes: 0, per_1000_reads: 0, read_per_gb: 0, min_days: 90 } } } }', '/c.yaml'))
  t.same(w.wasabi, { label: 'Wasabi', egressPerGB: 0, classes: { STANDARD: { storagePerGBMonth: 0.0069, per1000Writes: 0, per1000Reads: 0, readPerGB: 0, minDays: 90 } } })
  t.equal(parsePrices(null), DEFAULT_PRICES, 'no file: the built-in table')
})

t.test('formatUSD: cents, or two significant digits written out below a cent, never an exponent', async (t) => {
  const cases: [number, string][] = [[0, '$0.00'], [12.345, '$12.35'], [0.01, '$0.01'], [0.0099, '$0.0099'], [0.0000084, '$0.0000084'], [2.7e-8, '$0.000000027'], [1234.5, '$1234.50']]
  t.same(cases.map(([x]) => formatUSD(x)), cases.map(([, s]) => s))
  t.notOk(cases.some(([x]) => /e/.test(formatUSD(x))), 'no exponent form')
})
