import t from 'tap'
import { readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { backup } from './index.js'
import { restore } from '../restore/index.js'
import { verify } from '../verify/index.js'
import { findSnapshot } from '../snapshot/index.js'
import { DEFAULT_CHUNKER_PARAMS } from '../chunker/index.js'
import { makeTestRepo, seededBytes, seededText, writeTree } from '../testing/test-repo.js'

const base = { hostname: 'h', username: 'u', now: () => new Date(), program: 'test' }

t.test('snapshot, restore, verify round trip', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  writeTree(src, {
    'a.txt': 'hello\n',
    'big.bin': seededBytes('big', 3 * 1024 * 1024 + 17),
    'text/log.txt': seededText('log', 2 * 1024 * 1024),
    'empty': '',
  })
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const r = await backup(tr.repo, { ...base, paths: [src] })
  t.ok(r.id)
  t.equal(r.snapshot.stats.files, 4)
  t.equal(r.warnings.length, 0)
  const snap = await findSnapshot(tr.repo, r.id!.slice(0, 8))
  const out = join(dir, 'out')
  const rr = await restore(tr.repo, { snapshot: snap, target: out })
  t.same(rr.errors, [])
  for (const f of ['a.txt', 'big.bin', 'text/log.txt', 'empty']) {
    t.ok(readFileSync(join(out, 'src', f)).equals(readFileSync(join(src, f))), f)
  }
  // The same with blobs decoded in a worker thread.
  const out2 = join(dir, 'out-worker')
  const rw = await restore(tr.repo, { snapshot: snap, target: out2, decodeWorkers: 1 })
  t.same(rw.errors, [])
  for (const f of ['a.txt', 'big.bin', 'text/log.txt', 'empty']) {
    t.ok(readFileSync(join(out2, 'src', f)).equals(readFileSync(join(src, f))), `${f} (worker)`)
  }
  const v = await verify(tr.repo, { readData: 1 })
  t.ok(v.ok, JSON.stringify(v.findings))
  const r2 = await backup(tr.repo, { ...base, paths: [src] })
  t.equal(r2.snapshot.stats.unchanged_files, 4)
  t.equal(r2.snapshot.stats.new_chunks, 0)
  t.ok(statSync(join(out, 'src', 'big.bin')).size > 0)
})

t.test('restore with decode workers: chunks too big for a worker slot are decoded on the main thread', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  // With the first chunker (gear32-fastcdc, whose gear[0] is not 0) zeros never reach a cut point:
  // 8 MiB chunks (the default maximum), bigger than a restore slot's 4 MiB.
  const zeros = Buffer.alloc(20 * 1024 * 1024)
  const mixed = Buffer.concat([seededBytes('mixed', 6 * 1024 * 1024), Buffer.alloc(9 * 1024 * 1024, 7), seededText('tail', 3 * 1024 * 1024)])
  writeTree(src, { 'zeros.bin': zeros, 'mixed.bin': mixed, 'small.txt': 'small\n' })
  const tr = await makeTestRepo(dir, { chunker: DEFAULT_CHUNKER_PARAMS, chunkerAlgorithm: 'gear32-fastcdc', packSizeBytes: 16 * 1024 * 1024 })
  t.teardown(() => tr.repo.close())
  const r = await backup(tr.repo, { ...base, paths: [src] })
  const big = [...(await tr.repo.cache.allBlobs())].filter(([, l]) => l.type === 'data' && l.rawLength > 4 * 1024 * 1024)
  t.ok(big.length >= 2, `${big.length} chunks bigger than a restore slot`)
  const snap = await findSnapshot(tr.repo, r.id!.slice(0, 8))
  for (const workers of [undefined, 1, 2]) {
    const out = join(dir, `out-${workers ?? 'auto'}`)
    const rr = await restore(tr.repo, { snapshot: snap, target: out, decodeWorkers: workers })
    t.same(rr.errors, [], `decodeWorkers=${workers}: no errors`)
    t.ok(readFileSync(join(out, 'src', 'zeros.bin')).equals(zeros), `decodeWorkers=${workers}: zeros.bin`)
    t.ok(readFileSync(join(out, 'src', 'mixed.bin')).equals(mixed), `decodeWorkers=${workers}: mixed.bin`)
    t.equal(readFileSync(join(out, 'src', 'small.txt'), 'utf8'), 'small\n')
  }
})

t.test('long backups write index objects as they go', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  writeTree(src, { 'a.bin': seededBytes('a', 3_000_000), 'b.bin': seededBytes('b', 3_000_000) })
  const tr = await makeTestRepo(dir) // 1 MiB packs
  t.teardown(() => tr.repo.close())
  const r = await backup(tr.repo, { ...base, paths: [src], indexEveryPacks: 2 })
  const names = readdirSync(join(tr.repoDir, 'index'))
  t.ok(names.length >= 2, `${names.length} index objects for ${readdirSync(join(tr.repoDir, 'data')).length} data pack folders`)
  t.same(tr.repo.cache.pendingPacks(), [], 'nothing left pending')
  const indexBytes = names.reduce((n, f) => n + statSync(join(tr.repoDir, 'index', f)).size, 0)
  let packBytes = 0
  for (const kind of ['data', 'meta']) for (const d of readdirSync(join(tr.repoDir, kind))) for (const f of readdirSync(join(tr.repoDir, kind, d))) packBytes += statSync(join(tr.repoDir, kind, d, f)).size
  t.equal(r.snapshot.stats.added_bytes, packBytes + indexBytes, 'added_bytes counts every pack and index object written')
  const kindBytes = (kind: string): number => readdirSync(join(tr.repoDir, kind)).reduce((n, d) => n + readdirSync(join(tr.repoDir, kind, d)).reduce((m, f) => m + statSync(join(tr.repoDir, kind, d, f)).size, 0), 0)
  t.equal(r.snapshot.stats.added_data_bytes, kindBytes('data'), 'added_data_bytes: the data packs')
  t.equal(r.snapshot.stats.added_meta_bytes, kindBytes('meta'), 'added_meta_bytes: the tree packs')
  const v = await verify(tr.repo, { readData: 1 })
  t.ok(v.ok, JSON.stringify(v.findings))
})

t.test('a backup after one that did not finish takes up the packs it renamed into place but never recorded', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  writeTree(src, { 'a.bin': seededBytes('adopt-a', 2 * 1024 * 1024), 'b.txt': seededText('adopt-b', 300 * 1024) })
  const tr = await makeTestRepo(dir)
  const first = await backup(tr.repo, { ...base, paths: [src] })
  t.same(first.adopted, { packs: 0, bytes: 0 }, 'a first run finds nothing to take up')
  await tr.repo.close()
  // As if the run had died between renaming its packs and recording them: packs nobody indexed, a cache
  // that never saw them, and the dead run's token left in that cache.
  for (const n of readdirSync(join(tr.repoDir, 'index'))) rmSync(join(tr.repoDir, 'index', n))
  rmSync(join(tr.repoDir, 'snapshots'), { recursive: true })
  rmSync(tr.cacheDir, { recursive: true })
  const repo = await tr.reopen()
  t.teardown(() => repo.close())
  const packBytes = first.snapshot.stats.added_data_bytes! + first.snapshot.stats.added_meta_bytes!
  repo.cache.beginRun(new Date().toISOString())
  const again = await backup(repo, { ...base, paths: [src] })
  t.equal(again.adopted.bytes, packBytes, 'every pack the dead run left is taken up')
  t.equal(again.snapshot.stats.new_chunks, 0, 'nothing is stored again')
  t.same(repo.cache.unfinishedRuns(), [], 'no run is left marked unfinished')
  const third = await backup(repo, { ...base, paths: [src] })
  t.same(third.adopted, { packs: 0, bytes: 0 }, 'after a finished run nothing is looked for')
  const v = await verify(repo, { readData: 1 })
  t.ok(v.ok && v.findings.length === 0, 'the taken-up packs are indexed')
})
