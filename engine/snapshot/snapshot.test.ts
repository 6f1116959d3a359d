/**
 * Snapshot listing and its local cache of snapshot objects: a warm listing reads no snapshot object from the
 * remote, a damaged cache file is refetched, forgotten snapshots leave the cache, and verify reads the remote.
 */
import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { LocalRemote } from '../remote/index.js'
import { FaultyRemote } from '../remote/wrappers/faulty.js'
import { Repository } from '../repo/index.js'
import { makeTestRepo } from '../testing/test-repo.js'
import { verify } from '../verify/index.js'
import { listSnapshots, loadSnapshot, saveSnapshot, type SnapshotDoc } from './snapshot.js'

function doc(i: number, tree: string): SnapshotDoc {
  return {
    version: 1, kind: 'snapshot', time: new Date(Date.UTC(2026, 0, 1) + i * 3600_000).toISOString(), host: 'h', username: 'u', paths: ['/p'],
    tree, job: null, tags: [], parent: null, program: 'test',
    stats: { files: 0, dirs: 0, bytes: 0, new_files: 0, changed_files: 0, unchanged_files: 0, new_chunks: 0, added_bytes: 0, duration_s: 0 },
  }
}

t.test('listing is served from the local cache once warm', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir)
  const tree = await tr.repo.putJsonObject('snapshots', { unused: true }) // any id-shaped string serves as tree for listing
  await tr.repo.remote.delete(`snapshots/${tree}`)
  const ids: string[] = []
  for (let i = 0; i < 60; i++) ids.push(await saveSnapshot(tr.repo, doc(i, tree)))
  await tr.repo.close()

  const faulty = new FaultyRemote(await LocalRemote.open({ path: tr.repoDir }))
  const repo = await Repository.open(faulty, { password: tr.password, cacheDir: tr.cacheDir })
  t.teardown(() => repo.close())
  const cold = await listSnapshots(repo)
  t.equal(cold.length, 60)
  t.same(cold.map((s) => s.id), [...ids], 'oldest first')
  const getsCold = faulty.callCount('get')
  t.ok(getsCold >= 60, `a cold listing reads every snapshot object (${getsCold} gets)`)
  const warm = await listSnapshots(repo)
  t.same(warm, cold, 'the warm listing returns the same snapshots')
  t.equal(faulty.callCount('get'), getsCold, 'a warm listing reads no snapshot object from the remote')

  // A damaged cache file is not trusted: it is fetched again.
  const cacheDir = join(repo.cachePath, 'objects', 'snapshots')
  writeFileSync(join(cacheDir, ids[3]), 'garbage')
  const again = await loadSnapshot(repo, ids[3])
  t.equal(again.time, cold[3].time, 'the damaged cache file was replaced by the stored object')
  t.equal(faulty.callCount('get'), getsCold + 1, 'one get for the damaged one')

  // Forgotten snapshots leave the cache at the next listing.
  await faulty.delete(`snapshots/${ids[0]}`)
  const after = await listSnapshots(repo)
  t.equal(after.length, 59)
  t.notOk(readdirSync(cacheDir).includes(ids[0]), 'the forgotten snapshot left the cache')
})

t.test('verify reads snapshot objects from the remote, not the cache', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir, { password: 'pw' })
  const { backup } = await import('../backup/index.js')
  const src = join(dir, 'src')
  const { writeTree } = await import('../testing/test-repo.js')
  writeTree(src, { 'a.txt': 'hello' })
  const r = await backup(tr.repo, { paths: [src], hostname: 'h', username: 'u', now: () => new Date(), program: 'test' })
  await listSnapshots(tr.repo) // warm the cache
  writeFileSync(join(tr.repoDir, "snapshots", r.id!), "damaged on the remote")
  t.equal((await listSnapshots(tr.repo, () => {})).length, 1, 'listing still sees the cached copy')
  const report = await verify(tr.repo, {})
  t.ok(report.findings.some((f) => f.kind === 'damaged_snapshot' && f.snapshotId === r.id), 'verify finds the damaged object on the remote')
  await tr.repo.close()
})
