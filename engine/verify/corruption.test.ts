/**
 * Damage to a repository on disk, one object at a time: verify must name what
 * is damaged and which files it affects, restore must restore everything
 * else byte-identical, repair must rebuild what can be rebuilt.
 *
 * One repository is built once (two snapshots of a few MB, 1 MiB packs); every
 * case damages a fresh copy of it, opened with its own cache directory.
 * The source data and the damaged positions (fractions of each pack's blob
 * area) are seeded; the pack layout itself differs between runs, because a
 * new repository gets a random master key (blob ids, chunker gear table).
 */
import t, { type Test } from 'tap'
import {
  closeSync, cpSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, readlinkSync,
  renameSync, statSync, symlinkSync, truncateSync, unlinkSync, utimesSync, writeFileSync, writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { KeyError, PasswordError, IntegrityError } from '../errors.js'
import { backup } from '../backup/index.js'
import { restore, type RestoreError } from '../restore/index.js'
import { verify, repairIndex, type Finding } from './index.js'
import { listSnapshots, type Snapshot } from '../snapshot/index.js'
import { TreeReader } from '../tree/index.js'
import { LocalRemote } from '../remote/index.js'
import { Repository } from '../repo/index.js'
import { BufferSink, encodeBlob, packObjectName, PackWriter, type PackKind } from '../pack/index.js'
import { hashHex } from '../hash/index.js'
import { makeTestRepo, seededBytes, seededText, writeTree, seededRandom } from '../testing/test-repo.js'

/** Seeded PRNG: the same choices on every run. */
const rng = seededRandom

function flipByte(file: string, pos: number): void {
  const fd = openSync(file, 'r+')
  try {
    const b = Buffer.alloc(1)
    readSync(fd, b, 0, 1, pos)
    b[0] ^= 0xff
    writeSync(fd, b, 0, 1, pos)
  } finally {
    closeSync(fd)
  }
}

const root = t.testdir()
const src = join(root, 'src')
const baseRepoDir = join(root, 'base', 'repo')
const password = 'correct horse'
let clock = Date.parse('2026-02-01T00:00:00Z')
const opts = { hostname: 'h', username: 'u', program: 'test', now: () => new Date((clock += 60_000)) }

// --- The source: random and text files, a file and a directory stored twice (shared blobs and a shared subtree), a symlink, empty things.
const twin = seededBytes('twin', 300 * 1024)
const files1: Record<string, Buffer> = {
  'a.bin': seededBytes('a', 1536 * 1024),
  'b.bin': seededBytes('b', 1200 * 1024),
  'copy-of-b.bin': seededBytes('b', 1200 * 1024),
  'sub/c.txt': seededText('c', 1024 * 1024),
  'sub/d.bin': seededBytes('d', 1024 * 1024),
  'deep/e/f.bin': seededBytes('f', 700 * 1024),
  'twin-1/x.bin': twin,
  'twin-2/x.bin': twin,
  'small.txt': Buffer.from('hello\n'),
  'empty': Buffer.alloc(0),
}
writeTree(src, files1)
mkdirSync(join(src, 'emptydir'))
symlinkSync('a.bin', join(src, 'link'))
// Identical directories (same names, contents and times) are one subtree blob.
const fixed = new Date('2025-06-01T12:00:00Z')
for (const d of ['twin-1', 'twin-2']) {
  utimesSync(join(src, d, 'x.bin'), fixed, fixed)
  utimesSync(join(src, d), fixed, fixed)
}

const tr = await makeTestRepo(join(root, 'base'))
const s1 = await backup(tr.repo, { ...opts, paths: [src] })
const files2: Record<string, Buffer> = { ...files1, 'new.bin': seededBytes('new', 400 * 1024) }
writeFileSync(join(src, 'new.bin'), files2['new.bin'])
const s2 = await backup(tr.repo, { ...opts, paths: [src] })
const snaps = await listSnapshots(tr.repo)
const snapById = new Map(snaps.map((s) => [s.id, s]))
const contentsBySnap = new Map<string, Record<string, Buffer>>([[s1.id!, files1], [s2.id!, files2]])

/** Every file of every snapshot, with its chunks; and the trees of each snapshot. Walked without de-duplicating shared subtrees. */
const reader = new TreeReader(tr.repo)
const fileChunks: { snap: string; path: string; chunks: string[] }[] = []
const treesOf = new Map<string, Set<string>>()
for (const s of snaps) {
  const trees = new Set<string>([s.tree])
  for await (const [p, n] of reader.walk(s.tree)) {
    if (n.type === 'file') fileChunks.push({ snap: s.id, path: p.toString(), chunks: n.chunks ?? [] })
    if (n.type === 'dir' && n.subtree) trees.add(n.subtree)
  }
  treesOf.set(s.id, trees)
}
/** `<snap8>:<path>` of every file using blob `id`, sorted. */
function filesUsing(id: string): string[] {
  return fileChunks.filter((f) => f.chunks.includes(id)).map((f) => `${f.snap.slice(0, 8)}:${f.path}`).sort()
}

/** Every pack of the base repository, with its header. */
const packs: { id: string; kind: PackKind; size: number; dataEnd: number; entries: Awaited<ReturnType<Repository['readPackHeader']>> }[] = []
for (const kind of ['data', 'meta'] as const) {
  for await (const o of tr.repo.remote.list(`${kind}/`)) {
    const id = o.name.slice(o.name.lastIndexOf('/') + 1)
    const bytes = readFileSync(join(baseRepoDir, o.name))
    const hlen = bytes.readUInt32LE(bytes.length - 4)
    packs.push({ id, kind, size: o.size, dataEnd: bytes.length - 4 - hlen, entries: await tr.repo.readPackHeader(kind, id, o.size) })
  }
}
packs.sort((a, b) => (a.kind === b.kind ? (a.id < b.id ? -1 : 1) : a.kind === 'data' ? -1 : 1))
await tr.repo.close()
let copies = 0

t.test('the base repository', async (t) => {
  t.equal(snaps.length, 2)
  t.ok(packs.filter((p) => p.kind === 'data').length >= 4, `≥ 4 data packs (${packs.filter((p) => p.kind === 'data').length})`)
  t.ok(packs.filter((p) => p.kind === 'meta').length >= 1, '≥ 1 meta pack')
  // The two twin directories share one subtree blob, so the walk below must not de-duplicate by tree id.
  t.equal(filesUsing(fileChunks.find((f) => f.path === 'src/twin-1/x.bin')!.chunks[0]).length, 4, 'twin file listed in both dirs of both snapshots')
  const { repo } = await openCopy(t, 'pristine')
  const v = await verify(repo, { readData: 1 })
  t.ok(v.ok, JSON.stringify(v.findings))
  t.same(v.findings, [])
})

/** A fresh copy of the base repository, opened (index loaded) with a cache of its own. */
async function openCopy(t: Test, name: string, o: { sync?: boolean } = {}): Promise<{ repo: Repository; dir: string; repoDir: string }> {
  const dir = join(root, 'copies', `${++copies}-${name.replace(/[^a-z0-9]+/gi, '-')}`)
  const repoDir = join(dir, 'repo')
  cpSync(baseRepoDir, repoDir, { recursive: true })
  const repo = await Repository.open(await LocalRemote.open({ path: repoDir }), { password, cacheDir: join(dir, 'cache') })
  t.teardown(() => repo.close())
  if (o.sync !== false) await repo.syncIndex()
  return { repo, dir, repoDir }
}

function kinds(findings: Finding[], severity: 'error' | 'warning' = 'error'): string[] {
  return [...new Set(findings.filter((f) => f.severity === severity).map((f) => f.kind))].sort()
}

/**
 * Restores snapshot `s` into `target`: files in `failing` must be reported
 * (with `blobIds`/`packId` when given) and absent; everything else must be
 * byte-identical to the source.
 */
async function checkRestore(
  t: Test, repo: Repository, s: Snapshot, target: string,
  failing: Map<string, { blobIds?: Set<string>; packId?: string }>,
): Promise<void> {
  // Blobs decoded on the main thread and in a worker thread: both must find the same damage.
  await checkRestoreWith(t, repo, s, target, failing, 0)
  await checkRestoreWith(t, repo, s, `${target}-worker`, failing, 1)
}

async function checkRestoreWith(
  t: Test, repo: Repository, s: Snapshot, target: string,
  failing: Map<string, { blobIds?: Set<string>; packId?: string }>, decodeWorkers: number,
): Promise<void> {
  const r = await restore(repo, { snapshot: s, target, decodeWorkers })
  const byPath = new Map<string, RestoreError>(r.errors.map((e) => [e.path, e]))
  t.same([...byPath.keys()].sort(), [...failing.keys()].sort(), `snapshot ${s.id.slice(0, 8)}: the affected files are reported`)
  for (const [path, want] of failing) {
    const e = byPath.get(path)
    if (!e) continue
    if (want.blobIds) t.ok(e.blobId && want.blobIds.has(e.blobId), `${path}: names the damaged blob (${e.blobId})`)
    if (want.packId) t.equal(e.packId, want.packId, `${path}: names the pack`)
    t.throws(() => lstatSync(join(target, path)), { code: 'ENOENT' }, `${path} is not left behind`)
  }
  const contents = contentsBySnap.get(s.id)!
  let same = 0
  for (const [rel, want] of Object.entries(contents)) {
    const path = `src/${rel}`
    if (failing.has(path)) continue
    if (readFileSync(join(target, path)).equals(want)) same++
    else t.fail(`${path} differs`)
  }
  t.equal(same, Object.keys(contents).length - failing.size, `snapshot ${s.id.slice(0, 8)}: every other file is byte-identical`)
  t.equal(readlinkSync(join(target, 'src/link')), 'a.bin', 'symlink restored')
  t.ok(statSync(join(target, 'src/emptydir')).isDirectory(), 'empty dir restored')
}

t.test('one flipped byte in each pack', async (t) => {
  const rand = rng(20260201)
  for (const p of packs) {
    // A seeded position inside the blob area (not the header), so exactly one blob is damaged.
    const pos = Math.floor(rand() * p.dataEnd)
    const blob = p.entries.find((e) => e.offset <= pos && pos < e.offset + e.length)!
    await t.test(`${p.kind} pack ${p.id.slice(0, 12)}, byte ${pos} (blob ${blob.id.slice(0, 12)})`, async (t) => {
      const { repo, dir, repoDir } = await openCopy(t, `flip-${p.id.slice(0, 8)}`)
      flipByte(join(repoDir, packObjectName(p.kind, p.id)), pos)

      const v = await verify(repo, { readData: 1 })
      t.equal(v.ok, false)
      const dp = v.findings.filter((f) => f.kind === 'damaged_pack')
      t.same(dp.map((f) => f.packId), [p.id], 'damaged_pack names the pack')
      const db = v.findings.filter((f) => f.kind === 'damaged_blob')
      t.same(db.map((f) => [f.blobId, f.packId]), [[blob.id, p.id]], 'damaged_blob names the blob and its pack')
      t.equal(v.stats.packs_read, packs.length)

      const structure = await verify(repo)
      if (p.kind === 'data') {
        t.same(kinds(v.findings), ['damaged_blob', 'damaged_pack'])
        t.same(db[0].files?.slice().sort(), filesUsing(blob.id), 'damaged_blob lists every affected file of every snapshot')
        t.ok(db[0].files!.length > 0)
        // Structure-only verify reads index objects, pack sizes, snapshots and trees, never data packs' bytes: damage there is invisible to it.
        t.ok(structure.ok, 'structure-only verify passes when only data bytes are damaged')
        t.same(structure.findings, [])
        for (const s of snaps) {
          const failing = new Map<string, { blobIds?: Set<string>; packId?: string }>()
          for (const f of fileChunks) if (f.snap === s.id && f.chunks.includes(blob.id)) failing.set(f.path, { blobIds: new Set([blob.id]), packId: p.id })
          await checkRestore(t, repo, s, join(dir, `out-${s.id.slice(0, 8)}`), failing)
        }
      } else {
        // A damaged tree: reading it fails in the tree walk too, so structure-only verify sees it.
        t.same(kinds(v.findings), ['damaged_blob', 'damaged_pack', 'damaged_tree'])
        t.same(v.findings.filter((f) => f.kind === 'damaged_tree').map((f) => f.blobId), [blob.id], 'damaged_tree names the tree')
        t.equal(structure.ok, false)
        t.same(structure.findings.filter((f) => f.kind === 'damaged_tree').map((f) => [f.blobId, f.packId]), [[blob.id, p.id]])
        for (const s of snaps) {
          const target = join(dir, `out-${s.id.slice(0, 8)}`)
          if (treesOf.get(s.id)!.has(blob.id)) {
            // A damaged directory listing: restore cannot know what was in it, reports it, and restores the rest.
            const r = await restore(repo, { snapshot: s, target })
            t.ok(r.errors.some((e) => e.blobId === blob.id && /folder listing/.test(e.message)), `snapshot ${s.id.slice(0, 8)}: the damaged tree is reported`)
          } else {
            await checkRestore(t, repo, s, target, new Map())
          }
        }
      }
    })
  }
})

/** The data pack holding the first chunk of src/a.bin. */
function packOfA(): (typeof packs)[number] {
  const first = fileChunks.find((f) => f.path === 'src/a.bin')!.chunks[0]
  return packs.find((p) => p.entries.some((e) => e.id === first))!
}

t.test('a damaged blob shared by identical directories lists the files in both', async (t) => {
  const id = fileChunks.find((f) => f.path === 'src/twin-1/x.bin')!.chunks[0]
  const p = packs.find((x) => x.entries.some((e) => e.id === id))!
  const e = p.entries.find((x) => x.id === id)!
  const { repo, dir, repoDir } = await openCopy(t, 'twin')
  flipByte(join(repoDir, packObjectName(p.kind, p.id)), e.offset + Math.floor(e.length / 2))
  const v = await verify(repo, { readData: 1 })
  const db = v.findings.filter((f) => f.kind === 'damaged_blob')
  t.same(db.map((f) => f.blobId), [id])
  t.same(db[0]?.files?.slice().sort(), filesUsing(id), 'twin-1 and twin-2 of both snapshots')
  for (const s of snaps) {
    const failing = new Map([['src/twin-1/x.bin', { blobIds: new Set([id]), packId: p.id }], ['src/twin-2/x.bin', { blobIds: new Set([id]), packId: p.id }]])
    await checkRestore(t, repo, s, join(dir, `out-${s.id.slice(0, 8)}`), failing)
  }
})

t.test('a flipped byte in a data pack\'s header', async (t) => {
  const p = packOfA()
  const { repo, dir, repoDir } = await openCopy(t, 'header')
  // Inside the sealed header (between the blobs and the 4-byte length).
  const pos = p.dataEnd + Math.floor(rng(5)() * (p.size - 4 - p.dataEnd))
  flipByte(join(repoDir, packObjectName(p.kind, p.id)), pos)
  const v = await verify(repo, { readData: 1 })
  t.equal(v.ok, false)
  t.same(v.findings.map((f) => [f.kind, f.severity, f.packId]), [['damaged_pack', 'error', p.id], ['damaged_pack_header', 'warning', p.id]],
    'the pack is damaged (error); its header too (a warning: the error covers it); every blob still reads')
  // Restore reads blobs by the index, not the pack header: nothing is lost.
  for (const s of snaps) await checkRestore(t, repo, s, join(dir, `out-${s.id.slice(0, 8)}`), new Map())
  // repair index keeps the pack: its header is unreadable, but the old index object still describes it.
  const rep = await repairIndex(repo)
  t.equal(rep.salvaged, 1, 'the pack with the damaged header is salvaged from the old index')
  t.same(rep.unreadable, [])
  const after = await verify(repo, { readData: 1 })
  t.notOk(after.findings.some((f) => f.kind === 'missing_blob' || f.kind === 'unindexed_pack'), 'no blob lost by the repair')
  for (const s of snaps) await checkRestore(t, repo, s, join(dir, `again-${s.id.slice(0, 8)}`), new Map())
})

t.test('truncated pack: pack_size_mismatch', async (t) => {
  const p = packOfA()
  const { repo, dir, repoDir } = await openCopy(t, 'truncated')
  // Cut in the middle of a.bin's first chunk (pack layouts vary with the random key, so no fixed fraction).
  const firstOfA = p.entries.find((e) => e.id === fileChunks.find((f) => f.path === 'src/a.bin')!.chunks[0])!
  const half = firstOfA.offset + Math.floor(firstOfA.length / 2)
  truncateSync(join(repoDir, packObjectName(p.kind, p.id)), half)
  for (const readData of [0, 1]) {
    const v = await verify(repo, { readData })
    t.equal(v.ok, false)
    t.same(kinds(v.findings), ['missing_blob', 'pack_size_mismatch'], `readData=${readData}`)
    const m = v.findings.find((f) => f.kind === 'pack_size_mismatch')!
    t.equal(m.packId, p.id)
    t.match(m.message, new RegExp(`${half} bytes, the index says ${p.size}`))
    const missing = v.findings.filter((f) => f.kind === 'missing_blob')
    t.same(missing.map((f) => f.blobId).sort(), p.entries.map((e) => e.id).sort(), 'every blob of the pack is reported')
    for (const f of missing) {
      t.equal(f.packId, p.id)
      t.same(f.files?.slice().sort(), filesUsing(f.blobId!), `files of blob ${f.blobId!.slice(0, 12)}`)
    }
    if (readData) t.equal(v.stats.packs_read, packs.length - 1, 'the truncated pack is not read')
  }
  // Restore: blobs in the surviving first half still restore (each is checked); files with blobs past the cut are reported.
  const cutBlobs = new Set(p.entries.filter((e) => e.offset + e.length > half).map((e) => e.id))
  for (const s of snaps) {
    const failing = new Map<string, { blobIds?: Set<string>; packId?: string }>()
    for (const f of fileChunks) if (f.snap === s.id && f.chunks.some((c) => cutBlobs.has(c))) failing.set(f.path, { blobIds: cutBlobs, packId: p.id })
    t.ok(failing.has('src/a.bin'))
    await checkRestore(t, repo, s, join(dir, `out-${s.id.slice(0, 8)}`), failing)
  }
})

t.test('deleted pack: missing_pack and missing_blob naming files', async (t) => {
  const p = packOfA()
  const { repo, dir, repoDir } = await openCopy(t, 'deleted-pack')
  unlinkSync(join(repoDir, packObjectName(p.kind, p.id)))
  const v = await verify(repo, { readData: 1 })
  t.equal(v.ok, false)
  t.same(kinds(v.findings), ['missing_blob', 'missing_pack'])
  t.same(v.findings.filter((f) => f.kind === 'missing_pack').map((f) => f.packId), [p.id])
  const missing = v.findings.filter((f) => f.kind === 'missing_blob')
  t.same(missing.map((f) => f.blobId).sort(), p.entries.map((e) => e.id).sort())
  for (const f of missing) t.same(f.files?.slice().sort(), filesUsing(f.blobId!), `files of blob ${f.blobId!.slice(0, 12)}`)
  t.ok(missing.some((f) => f.files!.includes(`${s1.id!.slice(0, 8)}:src/a.bin`)))
  const blobs = new Set(p.entries.map((e) => e.id))
  for (const s of snaps) {
    const failing = new Map<string, { blobIds?: Set<string>; packId?: string }>()
    for (const f of fileChunks) if (f.snap === s.id && f.chunks.some((c) => blobs.has(c))) failing.set(f.path, { blobIds: blobs, packId: p.id })
    await checkRestore(t, repo, s, join(dir, `out-${s.id.slice(0, 8)}`), failing)
  }
})

t.test('deleted data pack and a damaged tree together: each problem reported once', async (t) => {
  const p = packOfA()
  const meta = packs.find((x) => x.kind === 'meta' && x.entries.some((e) => e.id === s1.snapshot.tree))!
  const tree = meta.entries.find((e) => e.id !== s1.snapshot.tree && treesOf.get(s1.id!)!.has(e.id))!
  const { repo, repoDir } = await openCopy(t, 'pack-and-tree')
  unlinkSync(join(repoDir, packObjectName(p.kind, p.id)))
  flipByte(join(repoDir, packObjectName('meta', meta.id)), tree.offset + 1)
  for (const readData of [0, 1]) {
    const v = await verify(repo, { readData })
    const dt = v.findings.filter((f) => f.kind === 'damaged_tree')
    t.same(dt.map((f) => f.blobId), [tree.id], `readData=${readData}: one damaged_tree finding`)
    t.equal(v.findings.filter((f) => f.kind === 'missing_pack').length, 1)
    const ids = v.findings.filter((f) => f.kind === 'missing_blob').map((f) => f.blobId)
    t.equal(new Set(ids).size, ids.length, 'no blob reported twice')
  }
})

t.test('deleted index objects: verify reports missing blobs, repair index rebuilds', async (t) => {
  const { repo, dir, repoDir } = await openCopy(t, 'deleted-index')
  const names = readdirSync(join(repoDir, 'index'))
  t.equal(names.length, 2, 'one index object per backup')
  for (const n of names) unlinkSync(join(repoDir, 'index', n))
  const v = await verify(repo, { readData: 1 })
  t.equal(v.ok, false)
  t.same(kinds(v.findings), ['missing_blob'])
  t.same(v.findings.filter((f) => f.kind === 'missing_blob').map((f) => f.blobId).sort(), snaps.map((s) => s.tree).sort(), 'the root trees are missing')
  t.same(v.findings.filter((f) => f.kind === 'unindexed_pack').map((f) => f.packId).sort(), packs.map((p) => p.id).sort(), 'every pack is unindexed')
  t.equal(v.stats.blobs, 0)

  const r = await repairIndex(repo)
  t.equal(r.packs, packs.length)
  t.equal(r.blobs, packs.reduce((n, p) => n + p.entries.length, 0))
  t.same(r.unreadable, [])
  t.equal(r.written.length, 1)
  const after = await verify(repo, { readData: 1 })
  t.ok(after.ok, JSON.stringify(after.findings))
  t.same(after.findings, [])
  for (const s of snaps) await checkRestore(t, repo, s, join(dir, `out-${s.id.slice(0, 8)}`), new Map())
  // A second client with an empty cache loads the rebuilt index.
  const other = await Repository.open(await LocalRemote.open({ path: repoDir }), { password, cacheDir: join(dir, 'cache2') })
  t.teardown(() => other.close())
  await other.syncIndex()
  t.equal(other.cache.blobCount(), r.blobs)
})

t.test('damaged snapshot object: damaged_snapshot, the others still listed', async (t) => {
  const { repo, repoDir } = await openCopy(t, 'damaged-snapshot')
  const file = join(repoDir, 'snapshots', s1.id!)
  flipByte(file, Math.floor(rng(7)() * statSync(file).size))
  const v = await verify(repo, { readData: 1 })
  t.equal(v.ok, false)
  t.same(kinds(v.findings), ['damaged_snapshot'])
  const f = v.findings.find((x) => x.kind === 'damaged_snapshot')!
  t.equal(f.snapshotId, s1.id)
  t.equal(f.object, `snapshots/${s1.id}`)
  t.equal(v.stats.snapshots, 1)
  const errs: string[] = []
  const listed = await listSnapshots(repo, (id) => errs.push(id))
  t.same(listed.map((s) => s.id), [s2.id], 'the other snapshot is still listed')
  t.same(errs, [s1.id])
  await t.rejects(listSnapshots(repo), IntegrityError, 'without onError, listing rejects')
})

t.test('damaged index object: damaged_index; repair index recovers', async (t) => {
  const { repo, repoDir } = await openCopy(t, 'damaged-index', { sync: false })
  const names = readdirSync(join(repoDir, 'index')).sort()
  const file = join(repoDir, 'index', names[0])
  flipByte(file, Math.floor(rng(11)() * statSync(file).size))
  // Loading the index on an empty cache fails on the damaged object.
  await t.rejects(repo.syncIndex(), IntegrityError, 'syncIndex rejects a damaged index object')
  const v = await verify(repo, { readData: 1 })
  t.equal(v.ok, false)
  const di = v.findings.filter((x) => x.kind === 'damaged_index')
  t.same(di.map((x) => x.object), [`index/${names[0]}`])
  const r = await repairIndex(repo)
  t.same(r.unreadable, [])
  t.equal(r.packs, packs.length)
  t.ok(r.removed.includes(`index/${names[0]}`), 'the damaged index object is removed')
  const after = await verify(repo, { readData: 1 })
  t.ok(after.ok, JSON.stringify(after.findings))
  t.same(after.findings, [])
})

t.test('unindexed pack: a warning, not an error', async (t) => {
  const { repo, repoDir } = await openCopy(t, 'unindexed')
  // A pack as a run killed before writing its index leaves it: uploaded, named by no index object.
  const sink = new BufferSink()
  const w = new PackWriter('data', repo.config.pack_size_bytes, sink)
  const plain = seededBytes('orphan', 100 * 1024)
  await w.add(repo.ids.idHex(plain), 'data', encodeBlob(plain, repo.sealer, repo.config.compression.level))
  const pack = await w.finish(repo.sealer)
  await repo.remote.put(packObjectName('data', pack.id), sink.bytes())
  t.equal(hashHex(readFileSync(join(repoDir, packObjectName('data', pack.id)))), pack.id)
  for (const readData of [0, 1]) {
    const v = await verify(repo, { readData })
    t.ok(v.ok, `readData=${readData}: ok`)
    t.same(v.findings.map((f) => [f.kind, f.severity, f.packId]), [['unindexed_pack', 'warning', pack.id]])
  }
})

t.test('wrong password', async (t) => {
  await t.rejects(Repository.open(await LocalRemote.open({ path: baseRepoDir }), { password: 'wrong horse', cacheDir: join(root, 'cache-wrong') }), PasswordError)
  await t.rejects(Repository.open(await LocalRemote.open({ path: baseRepoDir }), { password: null, cacheDir: join(root, 'cache-wrong') }), PasswordError)
})

t.test('damaged key file', async (t) => {
  // unlock() checks each key file against its name (BLAKE3): a damaged file is known to be damaged, not a wrong password.
  // When every key file is damaged it throws KeyError.
  await t.test('flipped byte, only key: KeyError', async (t) => {
    const { repoDir } = await openCopy(t, 'key-flip', { sync: false })
    const [k] = readdirSync(join(repoDir, 'keys'))
    const file = join(repoDir, 'keys', k)
    flipByte(file, Math.floor(rng(13)() * statSync(file).size))
    await t.rejects(Repository.open(await LocalRemote.open({ path: repoDir }), { password, cacheDir: join(repoDir, '..', 'c2') }), KeyError)
    await t.rejects(Repository.open(await LocalRemote.open({ path: repoDir }), { password, cacheDir: join(repoDir, '..', 'c2') }), { message: /every key file is damaged/ })
  })
  await t.test('not JSON but named by its hash: KeyError', async (t) => {
    const { repoDir } = await openCopy(t, 'key-garbage', { sync: false })
    const [k] = readdirSync(join(repoDir, 'keys'))
    unlinkSync(join(repoDir, 'keys', k))
    const junk = Buffer.from('{"version": 1, "kdf": "scr')
    writeFileSync(join(repoDir, 'keys', hashHex(junk)), junk)
    await t.rejects(Repository.open(await LocalRemote.open({ path: repoDir }), { password, cacheDir: join(repoDir, '..', 'c2') }), KeyError)
  })
  await t.test('a second key file damaged: the repository opens with the first, verify names the damaged one', async (t) => {
    const { repoDir } = await openCopy(t, 'key-second', { sync: false })
    const [k] = readdirSync(join(repoDir, 'keys'))
    const bytes = readFileSync(join(repoDir, 'keys', k))
    const other = Buffer.from(bytes)
    other[Math.floor(rng(17)() * other.length)] ^= 0x20
    const name = hashHex(Buffer.concat([other, Buffer.from('x')])) // a name its content does not hash to
    writeFileSync(join(repoDir, 'keys', name), other)
    const repo = await Repository.open(await LocalRemote.open({ path: repoDir }), { password, cacheDir: join(repoDir, '..', 'c2') })
    t.teardown(() => repo.close())
    const v = await verify(repo)
    t.equal(v.ok, false)
    t.same(v.findings.map((f) => [f.kind, f.severity, f.object]), [['damaged_key', 'error', `keys/${name}`]], 'damaged_key names the key file, nothing else is wrong')
  })
  await t.test('wrapped key altered and renamed to match: indistinguishable from a wrong password', async (t) => {
    const { repoDir } = await openCopy(t, 'key-altered', { sync: false })
    const [k] = readdirSync(join(repoDir, 'keys'))
    const kf = JSON.parse(readFileSync(join(repoDir, 'keys', k), 'utf8')) as { data: string }
    const data = Buffer.from(kf.data, 'base64')
    data[5] ^= 1
    kf.data = data.toString('base64')
    const bytes = Buffer.from(JSON.stringify(kf, null, 2) + '\n')
    renameSync(join(repoDir, 'keys', k), join(repoDir, 'keys', hashHex(bytes)))
    writeFileSync(join(repoDir, 'keys', hashHex(bytes)), bytes)
    await t.rejects(Repository.open(await LocalRemote.open({ path: repoDir }), { password, cacheDir: join(repoDir, '..', 'c2') }), PasswordError)
  })
})
