/**
 * A prune that repacks while a backup runs, and the backup reuses the part of the repacked pack that no
 * snapshot needed at the mark. The repack rewrites the index without the old pack at once (the sweep
 * deletes it later, or keeps it when a snapshot made since needs it); before `reindexReusedPacks`
 * (engine/gc/written.ts), the new snapshot's blobs that only the old pack held were in no index until that
 * sweep: a cache built meanwhile (another host, a fresh restore) reported them missing. Now the writer
 * indexes such packs again before its lock ends:
 * - a fresh reader restores the new snapshot byte-identical right away, and verify --read-data passes;
 * - the sweep after the safety delay keeps the old pack (the snapshot needs it), deletes nothing the
 *   snapshot needs, and afterwards everything verifies and restores.
 * The backup is held (FaultyRemote: a delay on its snapshot object's put) while the prune marks.
 */
import t, { type Test } from 'tap'
import { existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { backup } from '../backup/index.js'
import { listPrunePlans } from '../gc/index.js'
import { LocalRemote } from '../remote/index.js'
import { FaultyRemote } from '../remote/wrappers/faulty.js'
import { Repository } from '../repo/index.js'
import { restore } from '../restore/index.js'
import { loadSnapshot } from '../snapshot/index.js'
import { SnapshotView } from '../vfs/index.js'
import { makeTestRepo, writeTree, readTree, randomData } from '../testing/test-repo.js'
import { verify } from '../verify/index.js'
import { faultyTestRepo } from '../testing/faulty-repo.js'
import { forget, prune } from './index.js'

const MiB = 1024 * 1024
const HOUR = 3_600_000
const who = { hostname: 'h', username: 'u', program: 'test', workers: 1 }
const pruner = { host: 'pruner', username: 'tester', program: 'test' }

t.test('a backup reuses the unused part of a pack a prune repacks meanwhile: readers find it at once, the sweep keeps it', async (t: Test) => {
  const { dir, faulty, open } = await faultyTestRepo(t)
  const src = join(dir, 'src')
  const big = randomData('big', 0.6 * MiB)
  writeTree(src, { 'big.bin': big, 'keep.bin': randomData('keep', 0.3 * MiB) })
  const writer = await open('writer-cache')
  const p = await open('pruner-cache')
  const base = Date.now() - 3 * HOUR
  await backup(writer, { ...who, paths: [src], now: () => new Date(base) })
  rmSync(join(src, 'big.bin'))
  await backup(writer, { ...who, paths: [src], now: () => new Date(base + 60_000) })
  const f = await forget(p, { policy: { last: 1 }, keepOldest: false, now: () => new Date() })
  t.equal(f.removed.length, 1, 'the snapshot with big.bin is forgotten: its part of the shared pack is unused')

  // The writer stores big.bin again (deduplicated against the old pack) and waits before its snapshot object.
  writeTree(src, { 'big.bin': big, 'new.txt': 'a new file' })
  const want = readTree(src)
  let reached!: () => void
  let release!: () => void
  const atSnapshot = new Promise<void>((r) => { reached = r })
  const gate = new Promise<void>((r) => { release = r })
  faulty.addFault({ method: 'put', name: /^snapshots\//, call: 1, action: () => reached(), delay: () => gate })
  const T = Date.now()
  const running = backup(writer, { ...who, paths: [src], now: () => new Date(T) })
  await atSnapshot
  const r1 = await prune(p, { ...pruner, now: () => new Date(T) })
  t.ok((r1.marked?.repacked.packs ?? 0) >= 1, `the prune repacks the shared pack (${r1.marked?.repacked.packs} repacked)`)
  const plan = (await listPrunePlans(p))[0]
  t.ok(plan && plan.doc.repacked.length >= 1, 'its plan lists the repacked pack for a later sweep')
  release()
  const b = await running
  faulty.clearFaults()
  t.ok(b.snapshot.stats.added_data_bytes! < 0.1 * MiB, `the new snapshot reused big.bin's data (${b.snapshot.stats.added_data_bytes} data bytes stored)`)

  const restoredBy = async (cache: string, target: string): Promise<{ errors: unknown[]; same: boolean }> => {
    const reader = await open(cache)
    const r = await restore(reader, { snapshot: await loadSnapshot(reader, b.id!), target })
    const root = join(target, 'src')
    const got = existsSync(root) ? readTree(root) : new Map<string, Buffer>()
    return { errors: r.errors, same: got.size === want.size && [...want].every(([k, v]) => got.get(k)?.equals(v)) }
  }
  const early = await restoredBy('reader-before-sweep', join(dir, 'out1'))
  t.same(early.errors, [], 'before the sweep, a reader with a fresh cache restores the new snapshot without errors')
  t.ok(early.same, 'byte-identical')
  const v1 = await verify(await open('verifier-before-sweep'), { readData: 1 })
  t.ok(v1.ok, 'verify --read-data passes before the sweep')
  t.same(v1.findings.filter((x) => x.severity === 'error'), [], 'no errors')

  const r2 = await prune(p, { ...pruner, now: () => new Date(T + 2 * HOUR) })
  t.equal(r2.swept.length, 1, 'the sweep carries out the plan')
  t.ok(r2.swept[0].kept >= 1, `it keeps the repacked pack the new snapshot needs (${r2.swept[0].kept} kept)`)
  const late = await restoredBy('reader-after-sweep', join(dir, 'out2'))
  t.same(late.errors, [], 'after the sweep the new snapshot restores without errors')
  t.ok(late.same, 'byte-identical')
  const v2 = await verify(await open('verifier-after-sweep'), { readData: 1 })
  t.ok(v2.ok, 'verify --read-data passes after the sweep')
  // The sweep's own mark may repack again (the old pack and the repack's copy now hold the same blobs):
  // a pack repacked and waiting for the next sweep is an unindexed pack, verify's warning, as after any repack.
  const waiting = new Set((await listPrunePlans(p)).flatMap((x) => [...x.doc.repacked, ...x.doc.delete]))
  t.same(v2.findings.filter((x) => !(x.kind === 'unindexed_pack' && waiting.has(x.object ?? ''))), [], 'no findings but packs a pending plan names')
})

t.test('a long-lived reader (the WebDAV view) keeps reading files after a prune moved their blobs and deleted the old packs', async (t: Test) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir) // 1 MiB packs
  const src = join(dir, 'src')
  const keep = randomData('keep', 0.4 * MiB)
  writeTree(src, { 'big.bin': randomData('gone', 0.6 * MiB), 'keep.bin': keep })
  await backup(tr.repo, { ...who, paths: [src], now: () => new Date(Date.now() - 2 * HOUR) })
  rmSync(join(src, 'big.bin'))
  const kept = await backup(tr.repo, { ...who, paths: [src], now: () => new Date(Date.now() - HOUR) })
  // The reader: its own cache, synced now, before the prune.
  const reader = await Repository.open(await LocalRemote.open({ path: tr.repoDir }), { password: tr.password, cacheDir: join(dir, 'reader-cache') })
  t.teardown(() => reader.close())
  await reader.syncIndex()
  const view = await SnapshotView.open(reader)
  const top = (await view.list([])).map((e) => e.name.toString())
  t.ok(top.length > 0, `the view lists ${top.join(', ')}`)
  // forget the first snapshot, prune at once: the shared pack is repacked and the old one deleted.
  await forget(tr.repo, { policy: { last: 1 }, keepOldest: false, now: () => new Date() })
  const r = await prune(tr.repo, { ...pruner, now: () => new Date(), safetyDelayMs: 0 })
  t.ok(r.freed.packs >= 1 && (r.marked?.repacked.packs ?? 0) >= 1, `the prune repacked and deleted (${r.freed.packs} packs freed)`)
  // The reader's index still names the deleted pack; reading the file finds it moved.
  const file = await view.openFile(await findFile(view, 'keep.bin'))
  const parts: Buffer[] = []
  for await (const b of file.read(0, keep.length)) parts.push(b)
  const got = Buffer.concat(parts)
  t.ok(got.equals(keep), `keep.bin reads byte-identical through the old cache (${got.length} bytes), from snapshot ${kept.id!.slice(0, 8)}`)
})

/** The path of the first file named `name` in the view (depth first). */
async function findFile(view: SnapshotView, name: string, at: Buffer[] = []): Promise<Buffer[]> {
  for (const e of await view.list(at)) {
    const p = [...at, e.name]
    if (e.type === 'file' && e.name.toString() === name) return p
    if (e.type === 'dir') {
      const found = await findFile(view, name, p).catch(() => null)
      if (found) return found
    }
  }
  throw new Error(`${name} not found`)
}
