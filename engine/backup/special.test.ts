import t from 'tap'
import { execFileSync } from 'node:child_process'
import { closeSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, symlinkSync, utimesSync, chmodSync, linkSync, writeFileSync, writeSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { backup } from './index.js'
import { restore } from '../restore/index.js'
import { verify } from '../verify/index.js'
import { findSnapshot } from '../snapshot/index.js'
import { makeTestRepo, seededBytes } from '../testing/test-repo.js'

const base = { hostname: 'h', username: 'u', now: () => new Date(), program: 'test' }
const isRoot = process.getuid?.() === 0

/** Lists a tree as comparable records (names as hex so invalid UTF-8 compares exactly). */
function listing(root: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  const walk = (dir: Buffer, rel: string): void => {
    const names = (readdirSync(dir, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare)
    for (const n of names) {
      const p = Buffer.concat([dir, Buffer.from('/'), n])
      const st = lstatSync(p, { bigint: true })
      const r: Record<string, unknown> = {
        path: `${rel}/${n.toString('hex')}`, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid),
        // utimes takes a double, so sub-microsecond digits are not restorable: compare at µs.
        mtime_us: st.isSymbolicLink() || st.isDirectory() ? Number(st.mtimeNs / 1000n) : Number(st.mtimeNs / 1000n),
        nlink: st.isDirectory() ? 0 : Number(st.nlink),
      }
      if (st.isFile()) r.content = readFileSync(p).toString('base64').slice(0, 64) + readFileSync(p).length
      if (st.isSymbolicLink()) r.target = readlinkSync(p, { encoding: 'buffer' }).toString('hex')
      if (st.isCharacterDevice()) r.rdev = Number(st.rdev)
      out.push(r)
      if (st.isDirectory()) walk(p, `${rel}/${n.toString('hex')}`)
    }
  }
  walk(Buffer.from(root), '')
  return out
}

t.test('every kind of entry round-trips', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  mkdirSync(join(src, 'sub/deeper'), { recursive: true })
  mkdirSync(join(src, 'empty-dir'))
  writeFileSync(join(src, 'plain.txt'), 'plain\n')
  writeFileSync(join(src, 'exec.sh'), '#!/bin/sh\necho hi\n')
  chmodSync(join(src, 'exec.sh'), 0o755)
  writeFileSync(join(src, 'private'), 'secret-ish')
  chmodSync(join(src, 'private'), 0o600)
  writeFileSync(join(src, 'setuid'), 'x')
  chmodSync(join(src, 'setuid'), 0o4755)
  writeFileSync(join(src, 'sub/deeper/data.bin'), seededBytes('d', 700_000))
  writeFileSync(join(src, 'name with\nnewline'), 'nl')
  writeFileSync(join(src, 'ünïcödé ✓'), 'utf8')
  // A name that is not valid UTF-8.
  writeFileSync(Buffer.from([...Buffer.from(src), 0x2f, 0x66, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e]), 'latin1 name')
  writeFileSync(join(src, 'a'.repeat(255)), 'long name')
  symlinkSync('plain.txt', join(src, 'link-rel'))
  symlinkSync('/nonexistent/target', join(src, 'link-dangling'))
  symlinkSync('sub', join(src, 'link-dir'))
  writeFileSync(join(src, 'hard1'), 'hardlinked content')
  linkSync(join(src, 'hard1'), join(src, 'hard2'))
  linkSync(join(src, 'hard1'), join(src, 'sub/hard3'))
  execFileSync('mkfifo', [join(src, 'fifo')])
  if (isRoot) execFileSync('mknod', [join(src, 'null-dev'), 'c', '1', '3'])
  await new Promise<void>((res) => {
    const s = createServer().listen(join(src, 'sock'), () => s.close(() => res()))
  })
  // Sparse: 64 MiB with data only at both ends.
  const sparse = openSync(join(src, 'sparse.img'), 'w')
  writeSync(sparse, Buffer.from('start'), 0, 5, 0)
  writeSync(sparse, Buffer.from('end'), 0, 3, 64 * 1024 * 1024 - 3)
  closeSync(sparse)
  // Times with sub-second parts; directories last so their times stick.
  const t0 = 1_600_000_000.123456
  for (const f of ['plain.txt', 'exec.sh', 'private', 'hard1', 'sparse.img', 'sub/deeper/data.bin']) utimesSync(join(src, f), t0, t0 + 1)
  for (const d of ['sub/deeper', 'sub', 'empty-dir']) utimesSync(join(src, d), t0, t0 + 2)

  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const r = await backup(tr.repo, { ...base, paths: [src] })
  t.same(r.warnings, [], 'no warnings')
  const out = join(dir, 'out')
  const snap = await findSnapshot(tr.repo, r.id!)
  const rr = await restore(tr.repo, { snapshot: snap, target: out })
  t.same(rr.errors, [], 'restore without errors')
  const want = listing(src).filter((e) => !String(e.path).endsWith(Buffer.from('sock').toString('hex')))
  const got = listing(join(out, 'src'))
  t.same(got, want, 'restored tree equals the source: names, modes, owners, times, links, targets, contents')
  const h1 = statSync(join(out, 'src/hard1'))
  t.equal(statSync(join(out, 'src/sub/hard3')).ino, h1.ino, 'hard links restored as hard links')
  t.equal(h1.nlink, 3)
  const sp = statSync(join(out, 'src/sparse.img'))
  t.equal(sp.size, 64 * 1024 * 1024)
  t.ok(sp.blocks * 512 < 1024 * 1024, `sparse file restored sparse (${sp.blocks * 512} bytes allocated)`)
  t.ok(lstatSync(join(out, 'src/fifo')).isFIFO(), 'fifo recreated')
  // In batches of two entries (restores go 20,000 at a time): hard links span batches, directories get their
  // times after everything below them, and the result is the same.
  const outB = join(dir, 'out-batched')
  const rb = await restore(tr.repo, { snapshot: snap, target: outB, batchEntries: 2 })
  t.same(rb.errors, [], 'batched restore without errors')
  t.same(listing(join(outB, 'src')), want, 'batched restore equals the source')
  t.equal(statSync(join(outB, 'src/sub/hard3')).ino, statSync(join(outB, 'src/hard1')).ino, 'hard links across batches')
  t.same({ files: rb.files, dirs: rb.dirs, others: rb.others }, { files: rr.files, dirs: rr.dirs, others: rr.others }, 'same counts')
  const v = await verify(tr.repo, { readData: 1 })
  t.ok(v.ok, JSON.stringify(v.findings))
})

t.test('hard links: later paths of an inode take the first one\'s result, so the counts do not depend on timing (a dry run predicts them)', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  for (const d of ['a', 'b', 'c', 'd']) mkdirSync(join(src, d), { recursive: true })
  // 1,100 small files (more than one file-cache batch of 1,024) and 6 of 1 MiB, each linked from b/, c/ and d/:
  // the links in b/ are reached after a/'s file-cache entries were written.
  for (let i = 0; i < 1100; i++) writeFileSync(join(src, 'a', `s${i}`), `small file ${i}\n`)
  for (let i = 0; i < 6; i++) writeFileSync(join(src, 'a', `big${i}`), seededBytes(`big${i}`, 1024 * 1024))
  for (const n of readdirSync(join(src, 'a'))) for (const d of ['b', 'c', 'd']) linkSync(join(src, 'a', n), join(src, d, n))
  const files = 4 * 1106
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const dry = await backup(tr.repo, { ...base, paths: [src], dryRun: true })
  const real = await backup(tr.repo, { ...base, paths: [src] })
  const pick = (s: typeof real.snapshot.stats) => ({ files: s.files, bytes: s.bytes, new_files: s.new_files, changed_files: s.changed_files, unchanged_files: s.unchanged_files, new_chunks: s.new_chunks })
  t.same(pick(real.snapshot.stats), pick(dry.snapshot.stats), 'the dry run predicted the counts')
  t.equal(real.snapshot.stats.new_files, files, 'every path of a first snapshot is new (no link counted as unchanged)')
  const again = await backup(tr.repo, { ...base, paths: [src] })
  t.equal(again.snapshot.stats.unchanged_files, files, 'a second snapshot: every path unchanged')
  const out = join(dir, 'out')
  const rr = await restore(tr.repo, { snapshot: await findSnapshot(tr.repo, real.id!), target: out })
  t.same(rr.errors, [], 'restore without errors')
  t.same(listing(join(out, 'src')), listing(src), 'restored: contents and links equal the source')
  t.equal(statSync(join(out, 'src/d/big3')).ino, statSync(join(out, 'src/a/big3')).ino, 'links restored as links')
})
