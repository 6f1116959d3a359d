/**
 * The benchmark dataset generator is deterministic: same seed → same bytes,
 * another seed → other bytes, and each milestone round changes the tree in
 * the same way every time. Small (10 MB) so it runs in a second or two.
 * Never asserts on timings.
 */
import t from 'tap'
import { existsSync, lstatSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import {
  SINGLE_FILE, fileDigest, generateDataset, mutateDataset, parseSize, planBudget, treeDigest, walkFiles,
} from './dataset.js'

const SIZE = 10_000_000

t.test('parseSize', async (t) => {
  t.equal(parseSize('100MB'), 100e6)
  t.equal(parseSize('1GB'), 1e9)
  t.equal(parseSize('10GiB'), 10 * 2 ** 30)
  t.equal(parseSize('512MiB'), 512 * 2 ** 20)
  t.equal(parseSize('1.5G'), 1.5e9)
  t.equal(parseSize('4096'), 4096)
  t.throws(() => parseSize('ten'))
  t.throws(() => parseSize('1 XB'))
})

t.test('budget adds up to the size', async (t) => {
  for (const size of [SIZE, 100e6, 1e9, 10 * 2 ** 30, 100e9]) {
    const b = planBudget(size)
    const sum = Object.values(b).reduce((s, x) => s + x, 0)
    t.equal(sum, size, `budget of ${size}`)
    for (const [k, v] of Object.entries(b)) t.ok(v >= 0, `${k} >= 0 at ${size}`)
  }
})

t.test('same seed, same tree; other seed, other tree', async (t) => {
  const dir = t.testdir()
  const a = generateDataset({ dir: join(dir, 'a'), size: SIZE, seed: 's1' })
  generateDataset({ dir: join(dir, 'b'), size: SIZE, seed: 's1' })
  generateDataset({ dir: join(dir, 'c'), size: SIZE, seed: 's2' })
  t.equal(a.bytes, SIZE, 'exactly --size bytes of file content')
  const da = treeDigest(join(dir, 'a'))
  const db = treeDigest(join(dir, 'b'))
  const dc = treeDigest(join(dir, 'c'))
  t.equal(da.bytes, SIZE)
  t.equal(da.digest, db.digest, 'same seed → identical tree and bytes')
  t.not(da.digest, dc.digest, 'different seed → different tree')
  t.ok(da.files > 100, `many files (${da.files})`)
  t.ok(da.symlinks >= 1, 'has a symlink')
  t.ok(existsSync(join(dir, 'a', SINGLE_FILE)), 'has the single-file restore target')
  // The vendored project is an exact copy of the first source project.
  const vendored = readdirSync(join(dir, 'a', 'vendor'))[0]
  t.equal(fileDigest(join(dir, 'a', 'vendor', vendored, 'README.md')), fileDigest(join(dir, 'a', 'src', vendored, 'README.md')), 'duplicates are byte-identical')
  // Every category is present.
  for (const top of ['src', 'logs', 'data/db', 'data/tables', 'data/sim', 'build', 'media', 'archives']) {
    t.ok(existsSync(join(dir, 'a', top)), `${top} exists`)
  }
})

t.test('rounds: deterministic, and change what they should', async (t) => {
  const dir = t.testdir()
  const x = join(dir, 'x')
  const y = join(dir, 'y')
  generateDataset({ dir: x, size: SIZE, seed: 's1' })
  generateDataset({ dir: y, size: SIZE, seed: 's1' })
  const before = treeDigest(x)
  const sizeOf = (root: string, rel: string): number => statSync(join(root, rel)).size
  const logsBefore = readdirSync(join(x, 'logs')).map((n) => sizeOf(x, `logs/${n}`))
  const dbBefore = fileDigest(join(x, 'data/db/lab.sqlite'))
  const dbSizeBefore = sizeOf(x, 'data/db/lab.sqlite')

  const m1 = mutateDataset(x, { seed: 's1', round: 1 })
  const after1 = treeDigest(x)
  t.not(after1.digest, before.digest, 'round 1 changes the tree')
  t.ok(m1.editedFiles > 0 && m1.addedFiles > 0 && m1.deletedFiles > 0, 'edits, additions and deletions')
  t.ok(m1.renamed && !existsSync(join(x, m1.renamed.from)) && lstatSync(join(x, m1.renamed.to)).isDirectory(), 'a folder was renamed')
  t.ok(m1.inserted && m1.inserted.bytes > 0, 'bytes inserted into a large file')
  t.ok(readdirSync(join(x, 'logs')).every((n, i) => sizeOf(x, `logs/${n}`) > logsBefore[i]), 'every log grew')
  t.not(fileDigest(join(x, 'data/db/lab.sqlite')), dbBefore, 'database pages changed')
  t.equal(sizeOf(x, 'data/db/lab.sqlite'), dbSizeBefore + m1.dbPagesAppended * 4096, 'database grew by whole pages')
  t.ok(after1.bytes !== before.bytes && Math.abs(after1.bytes - before.bytes) < before.bytes * 0.6, 'the size changed, by a milestone-sized amount')

  mutateDataset(y, { seed: 's1', round: 1 })
  t.equal(treeDigest(y).digest, after1.digest, 'round 1 is deterministic')

  mutateDataset(x, { seed: 's1', round: 2 })
  mutateDataset(y, { seed: 's1', round: 2 })
  const after2 = treeDigest(x)
  t.not(after2.digest, after1.digest, 'round 2 changes the tree again')
  t.equal(treeDigest(y).digest, after2.digest, 'round 2 is deterministic')

  const z = join(dir, 'z')
  generateDataset({ dir: z, size: SIZE, seed: 's1' })
  mutateDataset(z, { seed: 's2', round: 1 })
  t.not(treeDigest(z).digest, after1.digest, 'another seed mutates differently')

  // The walk is sorted and stable.
  const names = [...walkFiles(x)].map((e) => e.rel)
  t.same(names, [...walkFiles(x)].map((e) => e.rel))
})
