import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { backup } from '../backup/index.js'
import { NotFoundError, UsageError } from '../errors.js'
import { makeTestRepo, seededBytes, seededRandom, writeTree } from '../testing/test-repo.js'
import { SnapshotView, TreeCache } from './index.js'

const b = (s: string): Buffer[] => s.split('/').filter(Boolean).map((p) => Buffer.from(p))

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const p of it) parts.push(Buffer.from(p))
  return Buffer.concat(parts)
}

t.test('layout, reads by range, path checks, refresh', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  const big = seededBytes('big', 3 * 1024 * 1024 + 5)
  writeTree(src, { 'big.bin': big, 'docs/a.txt': 'hello\n', 'empty': '', 'weird\\name..x': 'w' })
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  let clock = Date.parse('2026-02-01T10:00:00Z')
  const at = (iso: string) => () => new Date(iso)
  const base = { hostname: 'box', username: 'u', program: 'test', paths: [src] }
  const s1 = await backup(tr.repo, { ...base, job: 'photos', now: at('2026-01-02T03:04:05.678Z') })
  const s2 = await backup(tr.repo, { ...base, job: 'photos', now: at('2026-01-03T00:00:00Z') })
  const s3 = await backup(tr.repo, { ...base, now: at('2026-01-04T00:00:00Z') })
  const f1 = await backup(tr.repo, { ...base, kind: 'freeze', meta: { milestone: 'nature/2026' }, now: at('2026-01-05T06:07:08Z') })

  const warnings: string[] = []
  const view = await SnapshotView.open(tr.repo, { now: () => clock, refreshMs: 5000, onWarning: (m) => warnings.push(m) })
  t.same((await view.list([])).map((e) => e.name.toString()), ['box', 'photos', 'freezes'])
  t.same((await view.list(b('photos'))).map((e) => e.name.toString()), [
    `2026-01-02T03-04-05_${s1.id!.slice(0, 8)}`, `2026-01-03T00-00-00_${s2.id!.slice(0, 8)}`, 'latest',
  ])
  t.same((await view.list(b('box'))).map((e) => e.name.toString()), [`2026-01-04T00-00-00_${s3.id!.slice(0, 8)}`, 'latest'])
  t.same((await view.list(b('freezes'))).map((e) => e.name.toString()), ['nature_2026_2026-01-05T06-07-08'])
  t.equal((await view.stat(b('photos/latest'))).snapshot?.id, s2.id)
  t.equal((await view.stat(b('freezes/nature_2026_2026-01-05T06-07-08'))).snapshot?.id, f1.id)
  t.equal((await view.stat(b('photos'))).mtime.toISOString(), '2026-01-03T00:00:00.000Z')

  // The snapshot's tree exactly: one entry per source path, then the files.
  t.same((await view.list(b('photos/latest'))).map((e) => e.name.toString()), ['src'])
  const inner = await view.list(b('photos/latest/src'))
  t.same(inner.map((e) => [e.name.toString(), e.type, e.size]), [
    ['big.bin', 'file', big.length], ['docs', 'dir', 0], ['empty', 'file', 0], ['weird\\name..x', 'file', 1],
  ])
  t.equal((await view.stat(b('photos/latest/src/weird\\name..x'))).size, 1, 'backslashes are name bytes')

  // Opening reads nothing; a range reads only the chunks that cover it.
  const loads0 = view.cache.stats.loads
  const f = await view.openFile(b('photos/latest/src/big.bin'))
  t.equal(view.cache.stats.loads, loads0, 'open reads no data')
  t.equal(f.size, big.length)
  t.ok(f.chunksCovering(0, f.size) > 10, 'test file spans many chunks')
  const rnd = seededRandom(7)
  for (let i = 0; i < 40; i++) {
    const start = Math.floor(rnd() * big.length)
    const end = Math.min(big.length, start + 1 + Math.floor(rnd() * 300_000))
    const before = view.cache.stats.loads + view.cache.stats.hits
    const got = await collect(f.read(start, end))
    t.ok(got.equals(big.subarray(start, end)), `range ${start}-${end}`)
    t.equal(view.cache.stats.loads + view.cache.stats.hits - before, f.chunksCovering(start, end), 'only covering chunks')
  }
  t.ok((await collect(f.read())).equals(big), 'whole file')
  t.equal((await collect(f.read(big.length - 1))).length, 1, 'last byte')
  t.equal((await collect(f.read(big.length))).length, 0, 'start at size: nothing')
  t.equal((await collect((await view.openFile(b('photos/latest/src/empty'))).read())).length, 0)
  t.equal((await view.stat(b('photos/latest/src/big.bin'))).tag, (await view.stat(b('box/latest/src/big.bin'))).tag)

  // Paths that could leave the view, or are not names, are refused.
  for (const bad of [['..'], ['photos', '..', 'box'], ['.'], ['photos', 'a\0b'], ['photos', ''], ['a/b']]) {
    await t.rejects(view.stat(bad.map((p) => Buffer.from(p))), UsageError, JSON.stringify(bad))
  }
  await t.rejects(view.stat(b('nope')), NotFoundError)
  await t.rejects(view.stat(b('photos/latest/src/big.bin/x')), NotFoundError)
  await t.rejects(view.list(b('photos/latest/src/big.bin')), UsageError)
  await t.rejects(view.openFile(b('photos/latest/src/docs')), UsageError)

  // Walk: every entry once, paths relative to the folder.
  const walked: string[] = []
  for await (const [p, e] of view.walk(b('photos/latest'))) walked.push(p.map((x) => x.toString()).join('/') + (e.type === 'dir' ? '/' : ''))
  t.same(walked, ['src/', 'src/big.bin', 'src/docs/', 'src/docs/a.txt', 'src/empty', 'src/weird\\name..x'])

  // A new snapshot shows up once the list is older than refreshMs, not before.
  writeTree(src, { 'new.txt': readFileSync(join(src, 'docs/a.txt')) })
  const s4 = await backup(tr.repo, { ...base, job: 'photos', now: at('2026-01-06T00:00:00Z') })
  t.equal((await view.stat(b('photos/latest'))).snapshot?.id, s2.id, 'cached list within refreshMs')
  clock += 6000
  t.equal((await view.stat(b('photos/latest'))).snapshot?.id, s4.id, 'refreshed')
  t.equal((await collect((await view.openFile(b('photos/latest/src/new.txt'))).read())).toString(), 'hello\n')
  t.same(warnings, [])
})

t.test('the chunk cache stays within its byte budget', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  const data = seededBytes('c', 2 * 1024 * 1024)
  writeTree(src, { 'f.bin': data })
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  await backup(tr.repo, { hostname: 'h', username: 'u', program: 'test', paths: [src], now: () => new Date() })
  const view = await SnapshotView.open(tr.repo, { cache: { maxBytes: 300 * 1024, maxLoads: 2 } })
  const f = await view.openFile(b('h/latest/src/f.bin'))
  // 8 readers at once over the same file.
  const all = await Promise.all(Array.from({ length: 8 }, () => collect(f.read())))
  for (const got of all) t.ok(got.equals(data))
  t.ok(view.cache.sizeBytes <= 300 * 1024, `cache holds ${view.cache.sizeBytes} bytes`)
})

t.test('decoded trees are bounded by their entries, and listings stay right after eviction', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  const files: Record<string, string> = {}
  for (const d of ['a', 'b', 'c']) for (let i = 0; i < 4; i++) files[`${d}/f${i}.txt`] = `${d}${i}`
  writeTree(src, files)
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  await backup(tr.repo, { hostname: 'h', username: 'u', program: 'test', paths: [src], now: () => new Date() })
  const view = await SnapshotView.open(tr.repo, { maxTreeNodes: 6 })
  const cache = new TreeCache(tr.repo, 6)
  for (let round = 0; round < 2; round++) {
    for (const d of ['a', 'b', 'c']) {
      t.same((await view.list(b(`h/latest/src/${d}`))).map((e) => e.name.toString()), ['f0.txt', 'f1.txt', 'f2.txt', 'f3.txt'], `${d}, round ${round}`)
      const subtree = (await view.stat(b(`h/latest/src/${d}`))).node!.subtree!
      t.equal((await cache.load(subtree)).length, 4)
      t.ok(cache.sizeNodes <= 6, `tree cache holds ${cache.sizeNodes} entries`)
    }
  }
})
