/**
 * repairSnapshots on a real repository in a temp dir, damaged on disk: a missing data pack, a flipped byte
 * in one file's chunk, a damaged folder listing. The repaired snapshot leaves out exactly the files and
 * folders that cannot be read, names them, restores without errors, and the snapshot it repairs is left
 * byte for byte as it was; a dry run writes nothing; a second run finds the repair already made.
 */
import t from 'tap'
import { closeSync, cpSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { backup } from '../backup/index.js'
import { restore } from '../restore/index.js'
import { listSnapshots, loadSnapshot, type Snapshot } from '../snapshot/index.js'
import { TreeReader } from '../tree/index.js'
import { packObjectName } from '../pack/index.js'
import { LocalRemote } from '../remote/index.js'
import { Repository } from '../repo/index.js'
import { makeTestRepo, seededBytes, seededText, writeTree } from '../testing/test-repo.js'
import { REPAIRED_TAG, repairSnapshots, verify } from './index.js'

const root = t.testdir()
const src = join(root, 'src')
const files: Record<string, Buffer> = {
  'keep/a.txt': seededText('a', 40_000),
  'keep/b.bin': seededBytes('b', 300_000),
  'lost-pack/c.bin': seededBytes('c', 1_500_000),
  'damaged/d.bin': seededBytes('d', 200_000),
  'listing/e.txt': seededText('e', 5000),
  'listing/sub/f.txt': seededText('f', 5000),
  'top.txt': Buffer.from('top\n'),
}
writeTree(src, files)
const opts = { hostname: 'h', username: 'u', program: 'test' }
const base = await makeTestRepo(join(root, 'base'), { packSizeBytes: 1024 * 1024 })
// d.bin first, on its own (that snapshot object is then removed): its chunks land in packs of their own, so
// the pack removed below (one of c.bin's) holds none of them.
const s0 = await backup(base.repo, { ...opts, paths: [join(src, 'damaged')], now: () => new Date('2026-03-31T00:00:00Z') })
rmSync(join(base.repoDir, 'snapshots', s0.id!))
const s1 = await backup(base.repo, { ...opts, paths: [src], tags: ['nightly'], now: () => new Date('2026-04-01T00:00:00Z') })
await base.repo.close()

function flip(file: string, pos: number): void {
  const fd = openSync(file, 'r+')
  const b = Buffer.alloc(1)
  readSync(fd, b, 0, 1, pos)
  b[0] ^= 0xff
  writeSync(fd, b, 0, 1, pos)
  closeSync(fd)
}

/** A copy of the base repository with the three kinds of damage, opened with its own cache. */
async function damaged(name: string): Promise<{ repo: Repository; repoDir: string; damage: { lostPack: string; flipped: string; listing: string }; lostFiles: Set<string> }> {
  const dir = join(root, name)
  const repoDir = join(dir, 'repo')
  cpSync(base.repoDir, repoDir, { recursive: true })
  const repo = await Repository.open(await LocalRemote.open({ path: repoDir }), { password: base.password, cacheDir: join(dir, 'cache') })
  await repo.syncIndex()
  const reader = new TreeReader(repo)
  const nodes = new Map<string, { chunks?: string[]; subtree?: string }>()
  for await (const [p, n] of reader.walk(s1.snapshot.tree)) nodes.set(p.toString(), n)
  // A pack holding part of c.bin (and none of d.bin) goes missing; a byte of a chunk of d.bin in another pack is flipped.
  const dChunks = nodes.get('src/damaged/d.bin')!.chunks!
  const dPacks = new Set(dChunks.map((c) => repo.lookup(c)!.packId))
  const lostPack = nodes.get('src/lost-pack/c.bin')!.chunks!.map((c) => repo.lookup(c)!.packId).find((p) => !dPacks.has(p))!
  const dLast = dChunks.findLast((c) => repo.lookup(c)!.packId !== lostPack)!
  const dl = repo.lookup(dLast)!
  // The listing of src/listing is damaged.
  const listing = nodes.get('src/listing')!.subtree!
  const ll = repo.lookup(listing)!
  rmSync(join(repoDir, packObjectName('data', lostPack)))
  flip(join(repoDir, packObjectName('data', dl.packId)), dl.offset + Math.floor(dl.length / 2))
  flip(join(repoDir, packObjectName('meta', ll.packId)), ll.offset + 3)
  t.teardown(() => repo.close())
  // Every file with a chunk in the lost pack (small files may share it).
  const lostFiles = new Set([...nodes].filter(([, n]) => n.chunks?.some((c) => repo.lookup(c)?.packId === lostPack)).map(([p]) => p))
  return { repo, repoDir, damage: { lostPack, flipped: dLast, listing }, lostFiles }
}

/** The snapshot objects of a repository, by id. */
function snapshotFiles(repoDir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  for (const d of ['snapshots']) for (const n of readdirSync(join(repoDir, d))) out.set(n, readFileSync(join(repoDir, d, n)))
  return out
}

t.test('a snapshot with lost data is repaired into a new one without the unreadable entries', async (t) => {
  const { repo, repoDir, damage, lostFiles } = await damaged('repair')
  const before = snapshotFiles(repoDir)
  t.ok(lostFiles.has('src/lost-pack/c.bin'))

  const dry = await repairSnapshots(repo, { ...opts, now: () => new Date('2026-05-01T00:00:00Z'), dryRun: true })
  t.equal(dry.snapshots[0].state, 'repaired', 'the dry run reports what it would do')
  t.same(snapshotFiles(repoDir), before, 'a dry run writes no snapshot')
  t.equal(dry.treesWritten, 0)

  const r = await repairSnapshots(repo, { ...opts, now: () => new Date('2026-05-01T00:00:00Z') })
  const rep = r.snapshots[0]
  t.equal(rep.state, 'repaired')
  t.ok(rep.repairedId && rep.repairedId !== s1.id, 'a new snapshot')
  const byPath = new Map(rep.excluded.map((e) => [e.path, e]))
  // Files below the folder whose listing is damaged are left out with it (not listed one by one).
  const expected = new Set([...[...lostFiles].filter((f) => !f.startsWith('src/listing/')), 'src/damaged/d.bin', 'src/listing'])
  t.same([...byPath.keys()].sort(), [...expected].sort(), 'exactly the unreadable files and the folder with the damaged listing are left out')
  t.equal(byPath.get('src/damaged/d.bin')?.reason, 'damaged_blob')
  t.equal(byPath.get('src/damaged/d.bin')?.blob, damage.flipped)
  t.equal(byPath.get('src/listing')?.reason, 'unreadable_tree')
  t.equal(byPath.get('src/listing')?.type, 'dir')
  t.equal(byPath.get('src/lost-pack/c.bin')?.reason, 'missing_blob')
  t.equal(rep.excludedCount, expected.size)

  // The original is untouched; the new one says what it replaces.
  const after = snapshotFiles(repoDir)
  t.ok(after.get(s1.id!)?.equals(before.get(s1.id!)!), 'the original snapshot object is byte for byte as it was')
  t.equal(after.size, before.size + 1, 'one snapshot object was added, none removed')
  const fixed: Snapshot = await loadSnapshot(repo, rep.repairedId!)
  t.same(fixed.tags, ['nightly', REPAIRED_TAG], 'tagged repaired, beside its own tags')
  t.equal(fixed.time, s1.snapshot.time, 'the time of the data it holds')
  t.same(fixed.paths, s1.snapshot.paths)
  t.equal(fixed.repaired?.original, s1.id, 'names the snapshot it replaces')
  t.equal(fixed.repaired?.time, '2026-05-01T00:00:00.000Z')
  t.equal(fixed.repaired?.excluded_count, expected.size)
  t.same(fixed.repaired?.excluded.map((e) => e.path).sort(), [...expected].sort(), 'and what it left out')
  const keptFiles = Object.keys(files).filter((f) => ![...expected].some((x) => `src/${f}` === x || `src/${f}`.startsWith(`${x}/`)))
  t.equal(fixed.stats.files, keptFiles.length, 'its stats count the files it keeps')

  // Restoring it: no errors, every kept file byte-identical.
  const out = join(root, 'out')
  const rr = await restore(repo, { snapshot: fixed, target: out })
  t.same(rr.errors, [], 'the repaired snapshot restores without errors')
  for (const f of keptFiles) t.ok(readFileSync(join(out, 'src', f)).equals(files[f]), `${f} restored byte-identical`)
  // Its structure is sound even though the original's is not.
  // (The repository still lacks the pack, which verify reports whichever snapshots it checks.)
  const snapshotLevel = (f: { kind: string }): boolean => ['missing_blob', 'damaged_tree', 'damaged_snapshot'].includes(f.kind)
  const v = await verify(repo, { snapshots: [fixed] })
  t.same(v.findings.filter(snapshotLevel), [], 'verify of the repaired snapshot: every blob and tree it names is there')
  t.same(v.findings.filter((f) => f.severity === 'error').map((f) => [f.kind, f.packId]), [['missing_pack', damage.lostPack]], 'only the lost pack itself')
  const vOld = await verify(repo, { snapshots: [await loadSnapshot(repo, s1.id!)] })
  t.ok(vOld.findings.some(snapshotLevel), 'the original still reports its damage')

  // Twice: the repair exists already.
  const again = await repairSnapshots(repo, { ...opts, now: () => new Date('2026-05-02T00:00:00Z') })
  const states = new Map(again.snapshots.map((s) => [s.id, s]))
  t.equal(states.get(s1.id!)?.state, 'already_repaired')
  t.equal(states.get(s1.id!)?.repairedId, rep.repairedId)
  t.equal(states.get(rep.repairedId!)?.state, 'intact', 'the repaired snapshot itself is intact')
  t.equal((await listSnapshots(repo)).length, 2, 'nothing new written')
})

t.test('an intact snapshot is left alone; one whose root listing is lost cannot be repaired', async (t) => {
  const dir = join(root, 'intact')
  const repoDir = join(dir, 'repo')
  cpSync(base.repoDir, repoDir, { recursive: true })
  const repo = await Repository.open(await LocalRemote.open({ path: repoDir }), { password: base.password, cacheDir: join(dir, 'cache') })
  t.teardown(() => repo.close())
  await repo.syncIndex()
  const r = await repairSnapshots(repo, { ...opts, now: () => new Date() })
  t.same(r.snapshots.map((s) => [s.id, s.state, s.excludedCount]), [[s1.id, 'intact', 0]])
  t.equal(r.blobsChecked > 5, true, `every blob was read (${r.blobsChecked})`)
  const loc = repo.lookup(s1.snapshot.tree)!
  flip(join(repoDir, packObjectName('meta', loc.packId)), loc.offset + 1)
  const r2 = await repairSnapshots(repo, { ...opts, now: () => new Date() })
  t.equal(r2.snapshots[0].state, 'unrepairable')
  t.equal(r2.snapshots[0].excluded[0]?.blob, s1.snapshot.tree)
  t.equal((await listSnapshots(repo)).length, 1, 'nothing written')
  t.same(r2.damagedObjects, [])
  flip(join(repoDir, 'snapshots', s1.id!), 40)
  const r3 = await repairSnapshots(repo, { ...opts, now: () => new Date() })
  t.same(r3.snapshots, [], 'a snapshot object that cannot be read is not checked')
  t.same(r3.damagedObjects, [s1.id], 'it is named')
})
