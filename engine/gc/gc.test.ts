/**
 * The pieces prune's safety rests on, one by one: plan objects round-trip and are checked against their
 * name; lock liveness by the clock and by observation; a lock that lapses notices it; `beginWrite` takes the
 * blobs of marked packs out of deduplication (only for this process) and records the plans in its lock;
 * `checkSnapshotStored` finds a snapshot whose data was deleted.
 */
import t, { type Test } from 'tap'
import { rmSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { backup } from '../backup/index.js'
import { IntegrityError } from '../errors.js'
import { packObjectName } from '../pack/index.js'
import { makeTestRepo, seededBytes, writeTree } from '../testing/test-repo.js'
import { RepoSession, beginWrite, checkSnapshotStored, isLockLive, listLocks, listPrunePlans, readPrunePlan, writePrunePlan, LOCK_STALE_MS, type PrunePlanDoc } from './index.js'

const root = t.testdir()
const owner = { operation: 'snapshot', host: 'h', username: 'u', program: 'test' }

async function repoWithSnapshot(tt: Test, name: string, o: { close?: boolean } = {}) {
  const tr = await makeTestRepo(join(root, name))
  if (o.close !== false) tt.teardown(() => tr.repo.close())
  const src = join(root, name, 'src')
  writeTree(src, { 'a.bin': seededBytes(`${name}-a`, 1_500_000), 'b.txt': 'b' })
  const r = await backup(tr.repo, { paths: [src], hostname: 'h', username: 'u', program: 'test', now: () => new Date() })
  return { ...tr, src, snap: r }
}

t.test('plans round-trip, and a damaged plan is refused', async (t) => {
  const tr = await repoWithSnapshot(t, 'plan')
  const packs = tr.repo.cache.pendingPacks() // none: all indexed
  t.same(packs, [])
  const indexed = await tr.repo.loadIndexObject(`index/${(await listNames(tr.repo, 'index/'))[0]}`)
  const doc: PrunePlanDoc = { version: 1, time: '2026-01-01T00:00:00.000Z', host: 'h', username: 'u', program: 'p', safety_delay_s: 3600, locks: ['locks/' + 'a'.repeat(64)], delete: indexed.map((p) => packObjectName(p.kind, p.packId)), repacked: [] }
  const w = await writePrunePlan(tr.repo, doc, indexed)
  const r = await readPrunePlan(tr.repo, w.name)
  t.same(r.doc, doc)
  t.same(r.packs, indexed)
  t.same((await listPrunePlans(tr.repo)).map((p) => p.id), [w.id])
  writeFileSync(join(tr.repoDir, w.name), Buffer.from('not a plan'))
  await t.rejects(readPrunePlan(tr.repo, w.name), IntegrityError)
  const errs: string[] = []
  t.same(await listPrunePlans(tr.repo, (n) => errs.push(n)), [], 'writers skip an unreadable plan (and do not count it as seen)')
  t.same(errs, [w.name])
})

async function listNames(repo: { remote: { list(p: string): AsyncIterable<{ name: string }> } }, prefix: string): Promise<string[]> {
  const out: string[] = []
  for await (const o of repo.remote.list(prefix)) out.push(o.name.slice(prefix.length))
  return out
}

t.test('locks: written, refreshed under a new name, live by the clock or by being rewritten, lapse noticed, removed at the end', async (t) => {
  const tr = await makeTestRepo(join(root, 'locks'))
  t.teardown(() => tr.repo.close())
  let clock = Date.parse('2026-01-01T00:00:00Z')
  const s = await RepoSession.start(tr.repo, { ...owner, kind: 'writer', clock: () => new Date(clock), refreshMs: 3_600_000 })
  const first = s.name!
  let locks = await listLocks(tr.repo)
  t.same(locks.map((l) => [l.name, l.doc.kind, l.doc.operation, l.doc.refreshed]), [[first, 'writer', 'snapshot', '2026-01-01T00:00:00.000Z']])
  t.ok(isLockLive(locks[0], { now: new Date(clock + LOCK_STALE_MS - 1) }), 'live by the clock within the stale time')
  t.notOk(isLockLive(locks[0], { now: new Date(clock + LOCK_STALE_MS + 1) }), 'stale after it')
  t.ok(isLockLive(locks[0], { now: new Date(clock + 10 * LOCK_STALE_MS), seenEarlier: new Set(['locks/other']) }), 'live when it was written after the plan recorded the locks, whatever the clocks')
  t.notOk(isLockLive(locks[0], { now: new Date(clock + 10 * LOCK_STALE_MS), seenEarlier: new Set([first]) }), 'stale when unchanged since the plan and old by the clock')
  clock += 60_000
  await s.setPlansSeen(['b'.repeat(64)])
  locks = await listLocks(tr.repo)
  t.equal(locks.length, 1, 'the refresh replaced the lock')
  t.not(locks[0].name, first, 'under a new name')
  t.same(locks[0].doc.plans_seen, ['b'.repeat(64)])
  t.equal(locks[0].doc.session, s.id, 'the same session')
  t.notOk(s.lapsed)
  clock += LOCK_STALE_MS // suspended for an hour
  await s.refresh()
  t.ok(s.lapsed, 'a refresh long after the previous one marks the lock as lapsed')
  await s.end()
  t.same(await listLocks(tr.repo), [], 'end removes it')
})

t.test('beginWrite: the blobs of marked packs are stored again; other blobs are reused', async (t) => {
  const tr = await repoWithSnapshot(t, 'begin', { close: false })
  const indexed = (await Promise.all((await listNames(tr.repo, 'index/')).map((n) => tr.repo.loadIndexObject(`index/${n}`)))).flat()
  const dataPack = indexed.find((p) => p.kind === 'data' && p.entries.length > 0)!
  await writePrunePlan(tr.repo, { version: 1, time: new Date().toISOString(), host: 'h', username: 'u', program: 'p', safety_delay_s: 0, locks: [], delete: [packObjectName('data', dataPack.packId)], repacked: [] }, [dataPack])
  const other = indexed.flatMap((p) => p.entries).find((e) => !dataPack.entries.some((x) => x.id === e.id))!
  t.ok(dataPack.entries.every((e) => tr.repo.cache.hasBlob(e.id)), 'before: every blob counts as stored')
  const w = await beginWrite(tr.repo, owner)
  t.equal(w.excludedPacks, 1)
  t.equal(w.plansSeen.length, 1)
  t.same((await listLocks(tr.repo))[0].doc.plans_seen, w.plansSeen, 'the lock lists the plan')
  t.ok(dataPack.entries.every((e) => !tr.repo.cache.hasBlob(e.id)), 'the marked pack\'s blobs do not count as stored')
  t.ok(tr.repo.cache.hasBlob(other.id), 'other blobs do')
  t.ok(tr.repo.lookup(dataPack.entries[0].id), 'reads still find them')
  await w.end()
  t.same(await listLocks(tr.repo), [])
  // A backup under the plan stores them again.
  const before = (await listNames(tr.repo, 'index/')).length
  const r = await backup(tr.repo, { paths: [tr.src], hostname: 'h', username: 'u', program: 'test', now: () => new Date() })
  t.ok(r.snapshot.stats.new_chunks >= dataPack.entries.length, `the backup stored ${r.snapshot.stats.new_chunks} blobs again`)
  t.ok((await listNames(tr.repo, 'index/')).length > before)
  // The exclusion is for this process only: a new cache instance counts everything again.
  await tr.repo.close()
  const again = await tr.reopen()
  t.teardown(() => again.close())
  t.ok(dataPack.entries.every((e) => again.cache.hasBlob(e.id)), 'the saved id set still holds them')
})

t.test('checkSnapshotStored finds a snapshot whose data is gone', async (t) => {
  const tr = await repoWithSnapshot(t, 'check')
  await checkSnapshotStored(tr.repo, tr.snap.snapshot.tree)
  t.pass('a complete snapshot passes')
  const indexed = (await Promise.all((await listNames(tr.repo, 'index/')).map((n) => tr.repo.loadIndexObject(`index/${n}`)))).flat()
  const p = indexed.find((x) => x.kind === 'data')!
  rmSync(join(tr.repoDir, packObjectName('data', p.packId)))
  await t.rejects(checkSnapshotStored(tr.repo, tr.snap.snapshot.tree), IntegrityError, 'a deleted pack is found')
})

t.test('a lock whose owner is gone from this machine is dead at once; others are left to the clock', async (t) => {
  const tr = await repoWithSnapshot(t, 'dead-owner')
  const s = await RepoSession.start(tr.repo, { ...owner, kind: 'prune' })
  t.teardown(() => s.end())
  const [mine] = await listLocks(tr.repo)
  t.ok(mine.doc.boot_id && mine.doc.pid_ns && mine.doc.proc_start, 'the lock says where its owner runs')
  const now = new Date()
  t.ok(isLockLive(mine, { now }), 'this process holds it: live')
  // A process that has exited (its pid is free now).
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout
  const dead = { ...mine, doc: { ...mine.doc, pid: Number(gone) } }
  t.notOk(isLockLive(dead, { now }), 'an exited owner on this machine: dead, though refreshed just now')
  t.notOk(isLockLive(dead, { now, seenEarlier: new Set(['locks/other']) }), 'also for a sweep that did not see it before')
  t.notOk(isLockLive({ ...mine, doc: { ...mine.doc, proc_start: '1' } }, { now }), 'a pid reused by a process started at another time: dead')
  t.ok(isLockLive({ ...dead, doc: { ...dead.doc, boot_id: 'another-boot' } }, { now }), 'another machine (or boot): left to the clock')
  t.ok(isLockLive({ ...dead, doc: { ...dead.doc, pid_ns: 'pid:[1]' } }, { now }), 'another pid namespace (container): left to the clock')
  const { boot_id: _b, pid_ns: _n, proc_start: _p, ...old } = dead.doc
  t.ok(isLockLive({ ...dead, doc: old }, { now }), 'a lock without these fields (older coldstore): left to the clock')
})
