import t from 'tap'
import { mkdirSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { backup } from './index.js'
import { TreeReader, diffTrees } from '../tree/index.js'
import { findSnapshot, listSnapshots } from '../snapshot/index.js'
import { makeTestRepo, seededBytes, writeTree } from '../testing/test-repo.js'

const base = { hostname: 'h', username: 'u', now: () => new Date(), program: 'test' }

async function paths(tr: Awaited<ReturnType<typeof makeTestRepo>>, id: string): Promise<string[]> {
  const s = await findSnapshot(tr.repo, id)
  const out: string[] = []
  for await (const [p, n] of new TreeReader(tr.repo).walk(s.tree)) out.push(p.toString() + (n.type === 'dir' ? '/' : ''))
  return out
}

t.test('excludes, exclude patterns with and without "/", and .gitignore', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'proj')
  writeTree(src, {
    'main.c': 'int main(){}',
    'main.o': 'obj',
    'build/out.bin': 'b',
    'src/build/keep.c': 'nested build dir matched only by the basename pattern',
    'data/raw/a.csv': '1,2',
    'data/clean.csv': '3,4',
    'node_modules/x/index.js': 'x',
    '.gitignore': '*.log\n/generated/\n!keep.log\n',
    'run.log': 'log',
    'keep.log': 'kept by negation',
    'generated/g.txt': 'g',
    'sub/.gitignore': 'secret.txt\n',
    'sub/secret.txt': 's',
    'sub/public.txt': 'p',
    'sub/generated/not-root.txt': 'anchored /generated/ applies to the root only',
  })
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const r1 = await backup(tr.repo, { ...base, paths: [src], excludes: ['*.o', 'node_modules', 'proj/data/raw', '/proj/build'] })
  const p1 = await paths(tr, r1.id!)
  t.notOk(p1.includes('proj/main.o'), 'basename glob')
  t.notOk(p1.some((p) => p.startsWith('proj/node_modules')), 'directory name')
  t.notOk(p1.some((p) => p.startsWith('proj/data/raw')), 'path pattern')
  t.ok(p1.includes('proj/data/clean.csv'))
  t.notOk(p1.some((p) => p.startsWith('proj/build/')), 'anchored path pattern')
  t.ok(p1.includes('proj/src/build/keep.c'), 'anchored pattern does not match deeper')
  t.ok(p1.includes('proj/run.log'), 'no gitignore unless asked')
  // The same anchored pattern written relative to the source (without its name), as users write it.
  const r1b = await backup(tr.repo, { ...base, paths: [src], excludes: ['/build', '/data/raw/'] })
  const p1b = await paths(tr, r1b.id!)
  t.notOk(p1b.some((p) => p.startsWith('proj/build/')), 'anchored to the source root: /build')
  t.notOk(p1b.some((p) => p.startsWith('proj/data/raw')), 'anchored to the source root: /data/raw/')
  t.ok(p1b.includes('proj/src/build/keep.c') && p1b.includes('proj/data/clean.csv'), 'and nothing else')

  const r2 = await backup(tr.repo, { ...base, paths: [src], gitignore: true })
  const p2 = await paths(tr, r2.id!)
  t.notOk(p2.includes('proj/run.log'), '*.log ignored')
  t.ok(p2.includes('proj/keep.log'), 'negation keeps keep.log')
  t.notOk(p2.some((p) => p.startsWith('proj/generated/')), 'anchored directory ignored')
  t.ok(p2.includes('proj/sub/generated/not-root.txt'), 'anchored rule applies at its own level only')
  t.notOk(p2.includes('proj/sub/secret.txt'), 'nested .gitignore applies below it')
  t.ok(p2.includes('proj/sub/public.txt'))
  t.ok(p2.includes('proj/.gitignore'), '.gitignore files themselves are kept')
})

t.test('dry run stores nothing and predicts the real run', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  writeTree(src, { 'a.bin': seededBytes('a', 900_000), 'b.bin': seededBytes('b', 300_000), 'c.txt': 'c' })
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const dry = await backup(tr.repo, { ...base, paths: [src], dryRun: true })
  t.equal(dry.id, null)
  t.equal((await listSnapshots(tr.repo)).length, 0, 'no snapshot written')
  const real = await backup(tr.repo, { ...base, paths: [src] })
  for (const k of ['files', 'dirs', 'bytes', 'new_files', 'changed_files', 'unchanged_files', 'new_chunks'] as const) {
    t.equal(dry.snapshot.stats[k], real.snapshot.stats[k], `dry-run ${k} equals the real run`)
  }
  const indexBytes = real.snapshot.stats.added_bytes - dry.snapshot.stats.added_bytes
  t.ok(indexBytes > 0 && indexBytes < 4096, `dry-run added_bytes counts the packs exactly; the real run adds an index object (${indexBytes} B)`)
  const again = await backup(tr.repo, { ...base, paths: [src], dryRun: true })
  t.equal(again.snapshot.stats.new_chunks, 0, 'dry run after the real one finds nothing new')
  t.equal(again.snapshot.stats.added_bytes, 0)
})

t.test('incremental: changes, renames and diff', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  const big = seededBytes('big', 2_000_000)
  writeTree(src, { 'folder/big1.bin': big, 'folder/big2.bin': seededBytes('big2', 1_500_000), 'edit.txt': 'v1', 'gone.txt': 'bye' })
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const r1 = await backup(tr.repo, { ...base, paths: [src] })
  renameSync(join(src, 'folder'), join(src, 'renamed'))
  writeFileSync(join(src, 'edit.txt'), 'version two')
  rmSync(join(src, 'gone.txt'))
  writeFileSync(join(src, 'new.txt'), 'new')
  mkdirSync(join(src, 'newdir'))
  const r2 = await backup(tr.repo, { ...base, paths: [src] })
  const s = r2.snapshot.stats
  t.equal(s.unchanged_files, 2, 'files in the renamed folder are not read again')
  t.equal(s.changed_files + s.new_files, 2, 'edited and new file read')
  t.ok(s.added_bytes < 20_000, `only metadata and small files added (${s.added_bytes} B)`)
  const a = await findSnapshot(tr.repo, r1.id!)
  const b = await findSnapshot(tr.repo, r2.id!)
  const d = await diffTrees(new TreeReader(tr.repo), a.tree, b.tree)
  const summary = d.filter((x) => x.change !== 'metadata').map((x) => `${x.change} ${x.path}`).sort()
  t.same(summary, [
    'added src/new.txt', 'added src/newdir', 'added src/renamed', 'added src/renamed/big1.bin', 'added src/renamed/big2.bin',
    'modified src/edit.txt', 'removed src/folder', 'removed src/folder/big1.bin', 'removed src/folder/big2.bin', 'removed src/gone.txt',
  ])
  // Insert bytes into the middle of a large file: only the chunks around the insertion are new.
  const edited = Buffer.concat([big.subarray(0, 1_000_000), Buffer.from('inserted bytes'), big.subarray(1_000_000)])
  writeFileSync(join(src, 'renamed/big1.bin'), edited)
  const r3 = await backup(tr.repo, { ...base, paths: [src] })
  t.ok(r3.snapshot.stats.new_chunks <= 4, `insertion changes few chunks (${r3.snapshot.stats.new_chunks} new blobs incl. trees)`)
  t.ok(r3.snapshot.stats.added_bytes < 800_000, `${r3.snapshot.stats.added_bytes} B added for a 2 MB file`)
})

t.test('a file that shrinks while it is read is reported and stored as read', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  writeTree(src, { 'shrinks.bin': seededBytes('s', 6 * 1024 * 1024), 'steady.txt': 'steady' })
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  let cut = false
  const r = await backup(tr.repo, {
    ...base,
    paths: [src],
    workers: 1,
    progressIntervalMs: 0,
    onProgress: (p) => {
      // The first progress tick inside the big file happens after its first read buffer.
      if (!cut && p.current.endsWith('shrinks.bin')) {
        truncateSync(join(src, 'shrinks.bin'), 2 * 1024 * 1024)
        cut = true
      }
    },
  })
  t.ok(cut, 'the file was truncated during the backup')
  t.match(r.warnings, [{ path: 'src/shrinks.bin', kind: 'changed' }])
  const s = await findSnapshot(tr.repo, r.id!)
  const node = await new TreeReader(tr.repo).resolve(s.tree, Buffer.from('src/shrinks.bin'))
  t.ok(node.size! >= 1024 * 1024 && node.size! <= 2 * 1024 * 1024, `stored what was read (${node.size} bytes)`)
  const again = await backup(tr.repo, { ...base, paths: [src] })
  t.equal(again.snapshot.stats.unchanged_files, 1, 'a file stored while changing is not trusted by the change cache')
  t.same(again.warnings, [])
})
