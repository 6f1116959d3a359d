/**
 * The cold workflow in the engine, over ArchiveSimRemote (engine/testing/archive-remote.ts: a test double
 * that makes data packs behave like S3 Deep Archive in front of a real LocalRemote; the S3 gateway test
 * does the same against a real S3 server): listing and browsing never read a data pack, the plan names
 * exactly the packs a restore reads, retrieval requests are idempotent, and the restore works once they
 * are done.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { backup } from '../backup/index.js'
import { retrievalOptions } from '../cost/index.js'
import { LocalRemote } from '../remote/index.js'
import { Repository } from '../repo/index.js'
import { planRestore, restore } from '../restore/index.js'
import { listSnapshots } from '../snapshot/index.js'
import { ArchiveSimRemote } from '../testing/archive-remote.js'
import { makeTestRepo, seededBytes, writeTree } from '../testing/test-repo.js'
import { TreeReader } from '../tree/index.js'
import { checkRetrieval, mayNeedRetrieval, requestRetrieval } from './retrieval.js'

t.test('plan, request, wait, restore', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir)
  const src = join(dir, 'proj')
  writeTree(src, { 'a.bin': seededBytes('a', 3 << 20), 'b/c.bin': seededBytes('c', 2 << 20), 'b/d.txt': 'small' })
  await backup(tr.repo, { paths: [src], hostname: 'h', username: 'u', now: () => new Date(), program: 'test' })
  await tr.repo.close()

  const sim = new ArchiveSimRemote(await LocalRemote.open({ path: tr.repoDir }))
  const repo = await Repository.open(sim, { password: tr.password, cacheDir: tr.cacheDir })
  t.teardown(() => repo.close())
  await repo.syncIndex()
  t.ok(await mayNeedRetrieval(repo), 'Deep Archive data needs planning')

  const [snap] = await listSnapshots(repo)
  const trees = new TreeReader(repo)
  const top = await trees.load(snap.tree)
  await trees.load(top[0].subtree!)
  t.same(sim.dataGets, [], 'listing snapshots and browsing trees read no data pack')

  // One file: only its packs.
  const one = await planRestore(repo, { snapshot: snap, path: Buffer.from('proj/b/c.bin'), target: join(dir, 'x') })
  const all = await planRestore(repo, { snapshot: snap, target: join(dir, 'x') })
  t.equal(one.files, 1)
  t.equal(all.files, 3)
  t.equal(all.bytes, (3 << 20) + (2 << 20) + 5)
  // Exactly the packs holding that file's chunks (packs mix files written at the same time, so count them).
  const cNode = (await trees.load((await trees.load(top[0].subtree!)).find((n) => n.name.toString() === 'b')!.subtree!)).find((n) => n.name.toString() === 'c.bin')!
  const cPacks = new Set((cNode.chunks ?? []).map((id) => repo.lookup(id)!.packId))
  t.same([...one.dataPacks.keys()].sort(), [...cPacks].sort(), `one file reads exactly its ${cPacks.size} packs (of ${all.dataPacks.size})`)

  let check = await checkRetrieval(repo, all.dataPacks)
  t.equal(check.archived.objects, all.dataPacks.size, 'every pack is archived')
  t.equal(check.ready.objects, 0)
  t.equal(check.archivedByClass.DEEP_ARCHIVE?.objects, all.dataPacks.size)
  t.equal(check.total.bytes, [...all.dataPacks.values()].reduce((a, b) => a + b, 0), 'bytes are the packs\' sizes')

  // Without retrieval the restore reports every file as unreadable (what the CLI's plan step prevents).
  const early = await restore(repo, { snapshot: snap, path: Buffer.from('proj/b/d.txt'), target: join(dir, 'early') })
  t.equal(early.errors.length, 1, 'an archived pack is an error of that file, not a crash')
  t.match(early.errors[0].message, /DEEP_ARCHIVE/)

  await requestRetrieval(repo, check.archivedNames.slice(0, 1), { tier: 'Bulk', days: 3 })
  check = await checkRetrieval(repo, all.dataPacks)
  t.equal(check.pending.objects, 1, 'one in progress')
  t.equal(check.archived.objects, all.dataPacks.size - 1)
  await requestRetrieval(repo, [...check.pendingNames, ...check.archivedNames], { tier: 'Bulk', days: 3 })
  t.equal(sim.requests.length, all.dataPacks.size, 'a pack in progress is not requested twice')
  t.same(new Set(sim.requests.map((r) => `${r.tier}/${r.days}`)), new Set(['Bulk/3']))

  sim.completeRestores()
  check = await checkRetrieval(repo, all.dataPacks)
  t.equal(check.ready.objects, all.dataPacks.size, 'all readable once the provider is done')
  t.ok(check.restoredUntil, 'the expiry of the retrieved copies is reported')
  const r = await restore(repo, { snapshot: snap, target: join(dir, 'out') })
  t.same(r.errors, [])
  t.ok(readFileSync(join(dir, 'out/proj/a.bin')).equals(seededBytes('a', 3 << 20)), 'byte-identical after retrieval')
  await t.rejects(sim.get('data/00/none'), {}, 'a missing object stays missing')
})

t.test('remotes without archive classes need no plan', async (t) => {
  const tr = await makeTestRepo(t.testdir())
  t.teardown(() => tr.repo.close())
  t.equal(await mayNeedRetrieval(tr.repo), false)
  const c = await checkRetrieval(tr.repo, new Map([['ab'.repeat(32), 100]]))
  t.equal(c.archive, false)
  t.equal(c.ready.objects, 1)
})

t.test('retrieval cost estimates', async (t) => {
  // 100 GB in 6,400 packs from Deep Archive, kept 7 days (AWS list prices of the built-in table).
  const o = retrievalOptions({ provider: 'aws-s3', storageClass: 'DEEP_ARCHIVE', objects: 6400, bytes: 100e9, days: 7 })
  t.same(o.map((x) => x.tier), ['Standard', 'Bulk'], 'Deep Archive has no Expedited tier')
  const std = o[0]
  t.equal(std.breakdown.retrieval, 2, '$0.02/GB')
  t.equal(std.breakdown.requests, 0.64, '$0.10 per 1,000 requests')
  t.equal(std.breakdown.egress, 9, '$0.09/GB download')
  t.equal(std.breakdown.restoredCopy, 0.54, 'Standard storage for 7 days')
  t.equal(std.costUSD, Math.round((2 + 0.64 + 9 + 0.54 + std.breakdown.reads) * 100) / 100)
  t.ok(o[1].costUSD < std.costUSD, 'Bulk is cheaper')
  t.same(o[1].hours, [24, 48])
  const g = retrievalOptions({ provider: 'gcs', storageClass: 'ARCHIVE', objects: 10, bytes: 10e9, days: 7 })
  t.same(g.map((x) => x.tier), ['instant'], 'GCS Archive reads at once')
  t.equal(g[0].breakdown.retrieval, 0.5, '$0.05/GB retrieval')
  t.throws(() => retrievalOptions({ provider: 'nope', storageClass: 'X', objects: 1, bytes: 1, days: 1 }), { name: 'ConfigError' })
})
