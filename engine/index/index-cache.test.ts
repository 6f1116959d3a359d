import t from 'tap'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { open } from 'lmdb'
import { writeEntry } from '../pack/index.js'
import { BlobTable } from './blob-table.js'
import { IndexCache, type FileCacheEntry } from './index-cache.js'

const hex = (c: string): string => c.repeat(64)

t.test('file-change cache: entries round-trip, keyed by device and inode', async (t) => {
  const dir = t.testdir()
  const c = IndexCache.open(dir, 'repo')
  t.teardown(() => c.close())
  const e1: FileCacheEntry = { size: 5n, mtimeNs: 1700000000123456789n, ctimeNs: -1n, blake3: hex('a'), chunks: [hex('b')] }
  const e2: FileCacheEntry = { size: 3n * 2n ** 40n, mtimeNs: 1n, ctimeNs: 2n, blake3: hex('c'), chunks: [hex('d'), hex('e'), hex('f')] }
  const e3: FileCacheEntry = { size: 0n, mtimeNs: 0n, ctimeNs: 0n, blake3: hex('0'), chunks: [] }
  // Inodes that differ only in the byte a little-endian key would sort last, and devices past 2^63.
  c.putFiles([
    { dev: 1n, ino: 256n, entry: e1 },
    { dev: 1n, ino: 1n, entry: e2 },
    { dev: 2n ** 64n - 1n, ino: 2n ** 63n + 7n, entry: e3 },
  ])
  t.same(c.getFile(1n, 256n), e1)
  t.same(c.getFile(1n, 1n), e2)
  t.same(c.getFile(2n ** 64n - 1n, 2n ** 63n + 7n), e3)
  t.equal(c.getFile(2n, 256n), undefined, 'same inode on another device is another file')
  t.equal(c.getFile(1n, 257n), undefined)
  // Replacing an entry keeps one.
  c.putFiles([{ dev: 1n, ino: 256n, entry: e2 }])
  t.same(c.getFile(1n, 256n), e2)
})

const pack = (n: number, seed: string) => {
  const entries = Array.from({ length: n }, (_, i) => ({
    id: createHash('sha256').update(`${seed}:${i}`).digest('hex'),
    type: 'data' as const, compression: 1 as const, offset: i * 10, length: 10, rawLength: 20,
  }))
  return { packId: createHash('sha256').update(`pack:${seed}`).digest('hex'), kind: 'data' as const, size: n * 10, entries }
}

t.test('caches made before the slot files: LMDB blob and file tables are moved into them, old tables dropped', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'repo', 'index.lmdb')
  mkdirSync(join(dir, 'repo'), { recursive: true })
  const p = pack(300, 'old')
  {
    // What coldstore 0.1.0 wrote: 46-byte locations in "blobs", big-endian file keys in "files-v2", little-endian "files".
    const root = open({ path, maxDbs: 16 })
    const blobs = root.openDB({ name: 'blobs', encoding: 'binary', keyEncoding: 'binary' })
    const files = root.openDB({ name: 'files-v2', encoding: 'binary', keyEncoding: 'binary' })
    const oldest = root.openDB({ name: 'files', encoding: 'binary' })
    const indexes = root.openDB({ name: 'indexes', encoding: 'string' })
    root.transactionSync(() => {
      for (const e of p.entries) {
        const v = Buffer.alloc(46)
        v.write(p.packId, 0, 32, 'hex')
        v[32] = 0
        v[33] = e.compression
        v.writeUInt32LE(e.offset, 34)
        v.writeUInt32LE(e.length, 38)
        v.writeUInt32LE(e.rawLength, 42)
        blobs.putSync(Buffer.from(e.id, 'hex'), v)
      }
      const k = Buffer.alloc(16)
      k.writeBigUInt64BE(7n, 0)
      k.writeBigUInt64BE(42n, 8)
      const v = Buffer.alloc(56 + 64)
      v.writeBigUInt64LE(123n, 0)
      v.writeBigInt64LE(456n, 8)
      v.writeBigInt64LE(789n, 16)
      v.write(hex('a'), 24, 32, 'hex')
      v.write(hex('b'), 56, 32, 'hex')
      v.write(hex('c'), 88, 32, 'hex')
      files.putSync(k, v)
      oldest.putSync(Buffer.alloc(16, 1), Buffer.alloc(56))
      indexes.putSync('index/' + hex('9'), '1')
    })
    await root.close()
  }
  const c = IndexCache.open(dir, 'repo')
  t.same(c.getBlob(p.entries[7].id), { packId: p.packId, type: 'data', compression: 1, offset: 70, length: 10, rawLength: 20 }, 'a blob location moved')
  t.equal(c.blobCount(), 300)
  t.ok(p.entries.every((e) => c.hasBlob(e.id)))
  t.same(c.getFile(7n, 42n), { size: 123n, mtimeNs: 456n, ctimeNs: 789n, blake3: hex('a'), chunks: [hex('b'), hex('c')] }, 'a file entry moved')
  t.ok(c.loadedIndexes().has('index/' + hex('9')), 'what was loaded stays loaded')
  await c.close()
  const root = open({ path, maxDbs: 16, readOnly: true })
  const names = [...root.getKeys()].map(String)
  t.notOk(names.includes('blobs') || names.includes('files-v2') || names.includes('files'), `old tables gone (${names.join(', ')})`)
  await root.close()
  const again = IndexCache.open(dir, 'repo')
  t.equal(again.blobCount(), 300, 'nothing moved twice')
  await again.close()
})


t.test('stored ids: answered from memory, saved at close, trusted only while the blob table is unchanged', async (t) => {
  const dir = t.testdir()
  const idsFile = join(dir, 'repo', 'index.lmdb.ids')
  const p1 = pack(500, 'a')
  {
    const c = IndexCache.open(dir, 'repo')
    c.addPacks([p1], { pending: false })
    t.ok(p1.entries.every((e) => c.hasBlob(e.id)), 'added blobs are known')
    t.notOk(c.hasBlob('ab'.repeat(32)))
    t.equal(c.storedIds().size, 500)
    await c.close()
  }
  t.equal(statSync(idsFile).size, 48 + 500 * 16, 'the id set was saved beside the tables')
  {
    const c = IndexCache.open(dir, 'repo')
    t.ok(p1.entries.every((e) => c.hasBlob(e.id)), 'known after reopening')
    // Another process adds blobs behind this one's back: the saved count no longer matches, so it is rebuilt.
    await c.close()
  }
  {
    const blobs = BlobTable.open(join(dir, 'repo', 'blobs.table'))
    blobs.beginWrite()
    blobs.add(Buffer.alloc(32, 0x5a), { packId: hex('1'), type: 'data', compression: 0, offset: 0, length: 1, rawLength: 1 })
    blobs.endWrite()
    blobs.close()
    const c = IndexCache.open(dir, 'repo')
    t.ok(c.hasBlob('5a'.repeat(32)), 'a stale saved set is rebuilt from the blob table')
    t.equal(c.storedIds().size, 501)
    await c.close()
  }
  {
    // A forged or damaged saved set naming a blob the table does not have is not believed.
    const data = readFileSync(idsFile)
    const forged = data.subarray(48).indexOf(Buffer.from(p1.entries[0].id, 'hex').subarray(0, 16))
    t.ok(forged >= 0 && forged % 16 === 0)
    data.fill(0x77, 48 + forged, 48 + forged + 16) // the first blob's entry now names a blob that is not stored
    writeFileSync(idsFile, data)
    const c = IndexCache.open(dir, 'repo')
    t.notOk(c.hasBlob('77'.repeat(16) + '00'.repeat(16)), 'a damaged saved set is not believed')
    t.ok(c.hasBlob(p1.entries[0].id), 'it is rebuilt from the blob table')
    await c.close()
  }
  {
    const c = IndexCache.open(dir, 'repo')
    const pending = pack(20, 'pending')
    c.addPacks([pending], { pending: true })
    c.clearIndex()
    t.notOk(c.hasBlob(p1.entries[0].id), 'cleared blobs are forgotten at once')
    t.ok(pending.entries.every((e) => c.hasBlob(e.id) && c.getBlob(e.id)?.packId === pending.packId), 'pending packs keep their blobs')
    await c.close()
    t.notOk(existsSync(idsFile) && IndexCache.open(dir, 'repo').hasBlob(p1.entries[0].id), 'and after reopening')
  }
})

t.test('the large tables are read and written without a memory map: their size never counts in memory', async (t) => {
  const dir = t.testdir()
  const c = IndexCache.open(dir, 'repo')
  t.teardown(() => c.close())
  const packs = Array.from({ length: 50 }, (_, i) => pack(2000, `p${i}`)) // 100,000 blobs: an ~8 MB blob table
  for (const p of packs) c.addPacks([p], { pending: false })
  const files = Array.from({ length: 20000 }, (_, i) => ({ dev: 1n, ino: BigInt(i * 13), entry: { size: 1n, mtimeNs: 2n, ctimeNs: 3n, blake3: hex('d'), chunks: [hex('e'), hex('f')] } }))
  for (let i = 0; i < files.length; i += 1000) c.putFiles(files.slice(i, i + 1000))
  const all = packs.flatMap((p) => p.entries.map((e) => e.id))
  let found = 0
  for (let i = 0; i < 50000; i++) if (c.getBlob(all[(i * 7919) % all.length])?.length === 10) found++
  let filesFound = 0
  for (let i = 0; i < files.length; i += 7) if (c.getFile(1n, files[i].ino)?.chunks.length === 2) filesFound++
  t.equal(found, 50000, 'every lookup finds its blob')
  t.equal(filesFound, Math.ceil(files.length / 7), 'and every file')
  const mapped: Record<string, number> = {}
  let cur = ''
  for (const l of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(l)
    if (m) cur = m[1].startsWith(join(dir, 'repo')) ? m[1].slice(join(dir, 'repo').length + 1) : ''
    else if (cur && l.startsWith('Rss:')) mapped[cur] = (mapped[cur] ?? 0) + Number(l.split(/\s+/)[1]) * 1024
  }
  t.same(Object.keys(mapped).filter((n) => !n.startsWith('index.lmdb')), [], 'no slot file is mapped')
  t.ok((mapped['index.lmdb'] ?? 0) < 512 * 1024, `the LMDB map (packs, loaded index objects) stays small: ${mapped['index.lmdb'] ?? 0} bytes resident`)
  t.ok(statSync(join(dir, 'repo', 'blobs.table')).size > 8e6, 'while the blob table is large')
})

t.test('a pending pack recorded without its blobs (a crash in between) gets them back', async (t) => {
  const dir = t.testdir()
  const p = pack(40, 'crashed')
  {
    const c = IndexCache.open(dir, 'repo')
    await c.close()
    // The LMDB half of addPacks, as a run that died before adding the blobs left it.
    const root = open({ path: join(dir, 'repo', 'index.lmdb'), maxDbs: 16 })
    const pending = root.openDB({ name: 'pending', encoding: 'binary', keyEncoding: 'binary' })
    const b = Buffer.alloc(5 + 46 * p.entries.length)
    b.writeUInt32LE(p.size, 1)
    let o = 5
    for (const e of p.entries) o = writeEntry(b, o, e)
    pending.putSync(Buffer.from(p.packId, 'hex'), b)
    await root.close()
  }
  const c = IndexCache.open(dir, 'repo')
  t.equal(c.pendingPacks().length, 1)
  t.ok(p.entries.every((e) => c.hasBlob(e.id) && c.getBlob(e.id)?.packId === p.packId), 'its blobs are added on first use: the pack is on the remote and will be indexed')
  c.markIndexed('index/' + hex('8'), [p.packId])
  t.ok(p.entries.every((e) => c.getBlob(e.id)?.packId === p.packId && c.hasBlob(e.id)), 'indexed, its blobs are known and found')
  t.equal(c.pendingPacks().length, 0)
  await c.close()
  // Indexed by a process that never asked for the id set: markIndexed adds them too.
  const q = pack(30, 'crashed-2')
  {
    const root = open({ path: join(dir, 'repo', 'index.lmdb'), maxDbs: 16 })
    const pending = root.openDB({ name: 'pending', encoding: 'binary', keyEncoding: 'binary' })
    const b = Buffer.alloc(5 + 46 * q.entries.length)
    b.writeUInt32LE(q.size, 1)
    let o = 5
    for (const e of q.entries) o = writeEntry(b, o, e)
    pending.putSync(Buffer.from(q.packId, 'hex'), b)
    await root.close()
  }
  const d = IndexCache.open(dir, 'repo')
  t.equal(d.getBlob(q.entries[0].id), undefined, 'not in the blob table yet')
  d.markIndexed('index/' + hex('6'), [q.packId])
  t.ok(q.entries.every((e) => d.getBlob(e.id)?.packId === q.packId), 'marking it indexed adds its blobs')
  await d.close()
})

t.test('a blob table whose count is off (a run killed mid-write) is recounted when the id set is rebuilt', async (t) => {
  const dir = t.testdir()
  const p = pack(50, 'count')
  {
    const c = IndexCache.open(dir, 'repo')
    c.addPacks([p], { pending: false })
    await c.close()
  }
  // The header says 7 (what a writer killed before its endWrite could leave).
  const path = join(dir, 'repo', 'blobs.table')
  const data = readFileSync(path)
  data.writeUInt32LE(7, 20)
  let h = 0x811c9dc5
  for (let i = 0; i < 60; i++) h = Math.imul(h ^ data[i], 0x01000193)
  data.writeUInt32LE(h >>> 0 || 1, 60)
  writeFileSync(path, data)
  {
    const c = IndexCache.open(dir, 'repo')
    t.equal(c.blobCount(), 7, 'the damaged count is what the header says')
    t.ok(p.entries.every((e) => c.hasBlob(e.id)), 'the id set is rebuilt from the table itself')
    t.equal(c.blobCount(), 50, 'and the count is fixed')
    await c.close()
  }
  const c = IndexCache.open(dir, 'repo')
  t.equal(c.blobCount(), 50)
  t.equal(c.storedIds().size, 50, 'and after reopening')
  await c.close()
})

t.test('a lost blob table makes the cache forget what it had loaded (so it is loaded again)', async (t) => {
  const dir = t.testdir()
  const p = pack(10, 'lost')
  const kept = pack(5, 'pending')
  {
    const c = IndexCache.open(dir, 'repo')
    c.addIndexObject('index/' + hex('7'), [p])
    c.addPacks([kept], { pending: true })
    await c.close()
  }
  rmSync(join(dir, 'repo', 'blobs.table'))
  const c = IndexCache.open(dir, 'repo')
  t.equal(c.loadedIndexes().size, 0, 'no index object counts as loaded')
  t.equal(c.getBlob(p.entries[0].id), undefined)
  t.ok(kept.entries.every((e) => c.getBlob(e.id)?.packId === kept.packId), 'pending packs keep their blobs')
  await c.close()
})
