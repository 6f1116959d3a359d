import t from 'tap'
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
