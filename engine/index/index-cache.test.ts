import t from 'tap'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { open } from 'lmdb'
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

t.test('the little-endian file table of older caches is dropped on open', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'repo', 'index.lmdb')
  {
    const c = IndexCache.open(dir, 'repo') // creates the directory and the current tables
    await c.close()
    const root = open({ path, maxDbs: 16 })
    const old = root.openDB({ name: 'files', encoding: 'binary' })
    old.putSync(Buffer.alloc(16, 1), Buffer.alloc(56))
    t.ok([...root.getKeys()].includes('files'), 'old table written')
    await root.close()
  }
  const c = IndexCache.open(dir, 'repo')
  await c.close()
  const root = open({ path, maxDbs: 16, readOnly: true })
  const names = [...root.getKeys()]
  t.notOk(names.includes('files'), 'old table gone')
  t.ok(names.includes('files-v2'), 'current table present')
  await root.close()
})

const pack = (n: number, seed: string) => {
  const entries = Array.from({ length: n }, (_, i) => ({
    id: createHash('sha256').update(`${seed}:${i}`).digest('hex'),
    type: 'data' as const, compression: 1 as const, offset: i * 10, length: 10, rawLength: 20,
  }))
  return { packId: createHash('sha256').update(`pack:${seed}`).digest('hex'), kind: 'data' as const, size: n * 10, entries }
}

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
  t.equal(statSync(idsFile).size, 48 + 500 * 16, 'the id set was saved beside the map')
  {
    const c = IndexCache.open(dir, 'repo')
    t.ok(p1.entries.every((e) => c.hasBlob(e.id)), 'known after reopening')
    // Another process adds blobs behind this one's back: the saved count no longer matches, so it is rebuilt.
    await c.close()
  }
  {
    const root = open({ path: join(dir, 'repo', 'index.lmdb'), maxDbs: 16 })
    const blobs = root.openDB({ name: 'blobs', encoding: 'binary', keyEncoding: 'binary' })
    blobs.putSync(Buffer.alloc(32, 0x5a), Buffer.alloc(46))
    await root.close()
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

t.test('trim: reopening the map keeps the data and bounds the resident part of the map', async (t) => {
  const dir = t.testdir()
  const c = IndexCache.open(dir, 'repo')
  t.teardown(() => c.close())
  const packs = Array.from({ length: 100 }, (_, i) => pack(2000, `p${i}`)) // 200,000 blobs: a ~25 MB map
  for (const p of packs) c.addPacks([p], { pending: false })
  const all = packs.flatMap((p) => p.entries.map((e) => e.id))
  c.trim()
  const resident = (): number => {
    let cur = false
    let kb = 0
    for (const l of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
      if (/^[0-9a-f]+-[0-9a-f]+ /.test(l)) cur = l.trimEnd().endsWith('index.lmdb')
      else if (cur && l.startsWith('Rss:')) kb += Number(l.split(/\s+/)[1])
    }
    return kb * 1024
  }
  const fileBytes = statSync(join(dir, 'repo', 'index.lmdb')).size
  // Random lookups without trims: the map's pages pile up.
  for (let i = 0; i < 20000; i++) c.getBlob(all[(i * 7919) % all.length])
  const without = resident()
  c.trim()
  t.ok(resident() < 1024 * 1024, `a trim unmaps it (${resident()} bytes left)`)
  // The same lookups through Repository's path (trimIfWanted before each).
  let peak = 0
  let found = 0
  for (let i = 0; i < 20000; i++) {
    c.trimIfWanted()
    if (c.getBlob(all[(i * 7919) % all.length])?.length === 10) found++
    if (i % 500 === 0) peak = Math.max(peak, resident())
  }
  t.equal(found, 20000, 'every lookup still finds its blob')
  t.ok(c.trims > 2, `trimmed ${c.trims} times`)
  t.ok(without > fileBytes / 3, `control: without trims ${without} of ${fileBytes} bytes became resident`)
  t.ok(peak < without / 2, `with trims at most ${peak} bytes were resident (without: ${without})`)
})
