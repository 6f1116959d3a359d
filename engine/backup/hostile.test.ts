/**
 * Hostile and odd input to a backup, engine level (the CLI side: cli/hostile.test.ts):
 *  - names with every control character, newlines, invalid UTF-8 of several kinds, 255-byte names (ASCII and
 *    multi-byte), a path just under PATH_MAX, and a folder nested deeper than PATH_MAX (reported, not fatal);
 *  - files that grow, shrink, are rewritten or vanish while they are read: mutated from the backup's own
 *    progress callback at the moment the file is being read (no timing, no engine hook);
 *  - FIFOs (never opened), sockets, character and block devices, symlink loops and a link to its own folder;
 *  - a hard-link farm: 10,000 links to 3 inodes, stored once, restored as hard links;
 *  - a sparse multi-GB file: stored without growing the repository, restored sparse;
 *  - a source on another device (a tmpfs mounted for the test, as root; /dev/shm otherwise), beside one on
 *    this disk: the file-change cache tells files with the same inode number apart by device.
 *
 * COLDSTORE_STRESS=1: an 8 GiB sparse file (1 GiB in the short variant) and a 50,000-link farm.
 */
import t, { type Test } from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import {
  closeSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, rmSync, statSync,
  symlinkSync, truncateSync, unlinkSync, writeFileSync, writeSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { blake3 } from '@napi-rs/blake-hash'
import { backup, type BackupWarning } from './index.js'
import { restore } from '../restore/index.js'
import { verify } from '../verify/index.js'
import { loadSnapshot } from '../snapshot/index.js'
import { TreeReader } from '../tree/index.js'
import { makeTestRepo, seededBytes, seededText, writeTree } from '../testing/test-repo.js'

const STRESS = process.env.COLDSTORE_STRESS === '1'
const isRoot = process.getuid?.() === 0
const base = { hostname: 'h', username: 'u', program: 'test', now: () => new Date('2026-06-01T00:00:00Z') }
const MB = 1024 * 1024
const GB = 1024 * MB

/** Names as raw bytes: UTF-8 text, or anything else a Linux file system takes (no '/', no NUL). */
const ODD_NAMES: Buffer[] = [
  ...Array.from({ length: 31 }, (_, i) => Buffer.from([0x63, i + 1, 0x2e, 0x74])), // c\x01.t … c\x1f.t
  Buffer.from('line\nbreak'), Buffer.from('carriage\rreturn'), Buffer.from('tab\there'), Buffer.from('del\x7f'),
  Buffer.from(' leading and trailing spaces '), Buffer.from('-dash-first'), Buffer.from('back\\slash'), Buffer.from('quote"\'`$(x)'),
  Buffer.from('%2e%2e'), Buffer.from('...'), Buffer.from('ü-nfc'), Buffer.from('u\u0308-nfd'), Buffer.from('🦀 emoji'), Buffer.from('\u202eRTL-override'),
  Buffer.from([0xff, 0xfe, 0x41]), // not UTF-8 at all
  Buffer.from([0x61, 0x80, 0x62]), // a lone continuation byte
  Buffer.from([0xc0, 0xaf, 0x78]), // an overlong encoding of '/'
  Buffer.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate encoded as UTF-8
  Buffer.from([0xe2, 0x82]), // a truncated sequence
  Buffer.alloc(255, 0x61), // 255 bytes: the longest name
  Buffer.from('é'.repeat(127) + 'x'), // 255 bytes of two-byte characters
]

/** Lists a tree as (path bytes hex → description) for exact comparison. */
function listing(root: string): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (dir: Buffer, rel: string): void => {
    let names: Buffer[]
    try {
      names = (readdirSync(dir, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENAMETOOLONG') throw err
      out.set(`${rel}/…`, 'beyond PATH_MAX')
      return
    }
    for (const n of names) {
      const p = Buffer.concat([dir, Buffer.from('/'), n])
      const r = `${rel}/${n.toString('hex')}`
      let st
      try {
        st = lstatSync(p)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENAMETOOLONG') throw err
        out.set(r, 'beyond PATH_MAX')
        continue
      }
      if (st.isDirectory()) {
        out.set(r, 'dir')
        walk(p, r)
      } else if (st.isSymbolicLink()) out.set(r, `link ${readlinkSync(p, { encoding: 'buffer' }).toString('hex')}`)
      else if (st.isFile()) out.set(r, `file ${blake3(readFileSync(p)).toString('hex')}`)
      else out.set(r, `mode ${st.mode & 0o170000} rdev ${st.rdev}`)
    }
  }
  walk(Buffer.from(root), '')
  return out
}

/**
 * A directory with a short path (tap's test dirs have ~150-byte paths, too long for the PATH_MAX cases), removed
 * with rm -rf, which also removes folders nested deeper than PATH_MAX.
 */
function shortDir(t: Test): string {
  const dir = mkdtempSync('/tmp/cs-hostile-')
  t.teardown(() => {
    spawnSync('rm', ['-rf', dir])
  })
  return dir
}

t.test('odd names, the longest name, a path just under PATH_MAX, a folder deeper than PATH_MAX', async (t) => {
  const dir = shortDir(t)
  const src = join(dir, 's')
  mkdirSync(src)
  for (const [i, n] of ODD_NAMES.entries()) writeFileSync(Buffer.concat([Buffer.from(src + '/'), n]), `content ${i}\n`)
  mkdirSync(Buffer.concat([Buffer.from(src + '/'), Buffer.from([0xff, 0x64, 0x69, 0x72])])) // a folder with a non-UTF-8 name
  writeFileSync(Buffer.concat([Buffer.from(src + '/'), Buffer.from([0xff, 0x64, 0x69, 0x72]), Buffer.from('/inside\n')]), 'nested\n')
  // A file whose restored path (<dir>/o/s/…, two bytes longer than the source's) is PATH_MAX - 1 bytes from
  // the file system root: folders of 250-byte names, then a file name to fill it.
  let long = src
  while (long.length + 251 < 4093 - 10) {
    long = join(long, 'd'.repeat(250))
    mkdirSync(long)
  }
  const longFile = join(long, 'f'.repeat(4093 - long.length - 1))
  writeFileSync(longFile, 'at the limit\n')
  t.equal(Buffer.byteLength(longFile) + 2, 4095, 'restored, it is a 4095-byte path (PATH_MAX is 4096 with its NUL)')
  // A folder nested beyond PATH_MAX (made with relative paths): it cannot be read by its path.
  const deep = join(src, 'deep')
  mkdirSync(deep)
  spawnSync('bash', ['-c', `cd '${deep}' && for i in $(seq 1 20); do mkdir ${'e'.repeat(240)} && cd ${'e'.repeat(240)} || exit 1; done && echo deep > bottom.txt`])

  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const warnings: BackupWarning[] = []
  const r = await backup(tr.repo, { ...base, paths: [src], onWarning: (w) => warnings.push(w) })
  t.ok(r.id, 'the backup completes')
  t.ok(warnings.length >= 1 && warnings.every((w) => w.kind === 'unreadable' && w.path.startsWith('s/deep/')), `only what lies beyond PATH_MAX is reported: ${warnings.map((w) => `${w.path.length} bytes: ${w.message.slice(0, 60)}`).join('; ')}`)
  const v = await verify(tr.repo, { readData: 1 })
  t.ok(v.ok && v.findings.length === 0, 'verifies')
  // Restore beside the source (same path length); the part beyond PATH_MAX was not stored.
  const out = join(dir, 'o')
  const rr = await restore(tr.repo, { snapshot: await loadSnapshot(tr.repo, r.id!), target: out })
  t.same(rr.errors, [], 'restores without errors')
  const want = listing(src)
  const got = listing(join(out, 's'))
  // The deep folder's unreadable part is absent from the snapshot: compare everything else.
  const deepHex = `/${Buffer.from('deep').toString('hex')}/`
  const kept = [...want].filter(([k]) => !k.startsWith(deepHex))
  t.same([...got].filter(([k]) => !k.startsWith(deepHex)), kept, `${kept.length} entries with odd names restored byte-identical, names exact`)
  t.ok(got.has(`/${Buffer.from('deep').toString('hex')}`), 'the deep folder itself is kept')
  t.ok(got.has(`/${Buffer.from('deep').toString('hex')}/${Buffer.from('e'.repeat(240)).toString('hex')}`), 'and the part of it within PATH_MAX')
  const reader = new TreeReader(tr.repo)
  const names: Buffer[] = []
  for await (const [p] of reader.walk(r.snapshot.tree)) names.push(p)
  t.ok(names.some((p) => p.includes(Buffer.from([0xed, 0xa0, 0x80]))), 'invalid UTF-8 is stored as raw bytes')
})

t.test('files that grow, shrink, are rewritten or vanish while being read', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  const big = (seed: string): Buffer => seededBytes(seed, 3 * MB)
  writeTree(src, {
    'grow.bin': big('grow'), 'shrink.bin': big('shrink'), 'rewrite.bin': big('rewrite'), 'unlinked.bin': big('unlinked'), 'steady.bin': big('steady'),
  })
  // A folder where one file vanishes between the listing and its turn to be read (it waits for a reader slot).
  for (let i = 0; i < 9; i++) writeFileSync(join(src, `q${i}.bin`), seededBytes(`q${i}`, 100_000))
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const done = new Set<string>()
  const once = (what: string, fn: () => void): void => {
    if (done.has(what)) return
    done.add(what)
    fn()
  }
  const warnings: BackupWarning[] = []
  const r = await backup(tr.repo, {
    ...base, paths: [src], progressIntervalMs: 0, onWarning: (w) => warnings.push(w),
    // Called after each read of a file (1 MiB at a time): the file is mutated while its reading is under way.
    onProgress: (p) => {
      if (p.current === 'src/grow.bin') once('grow', () => writeFileSync(join(src, 'grow.bin'), seededBytes('more', MB), { flag: 'a' }))
      if (p.current === 'src/shrink.bin') once('shrink', () => truncateSync(join(src, 'shrink.bin'), 512 * 1024))
      if (p.current === 'src/rewrite.bin') once('rewrite', () => writeFileSync(join(src, 'rewrite.bin'), big('rewritten')))
      if (p.current === 'src/unlinked.bin') once('unlink', () => unlinkSync(join(src, 'unlinked.bin')))
      if (/^src\/q[0-3]\.bin$/.test(p.current)) once('vanish', () => unlinkSync(join(src, 'q8.bin')))
    },
  })
  t.same([...done].sort(), ['grow', 'rewrite', 'shrink', 'unlink', 'vanish'], 'every mutation happened during the read')
  const byPath = new Map(warnings.map((w) => [w.path, w]))
  t.equal(byPath.get('src/grow.bin')?.kind, 'changed', 'a file that grew is reported as changed')
  t.equal(byPath.get('src/shrink.bin')?.kind, 'changed', 'a file that shrank is reported as changed')
  t.equal(byPath.get('src/rewrite.bin')?.kind, 'changed', 'a file rewritten while read is reported as changed')
  t.equal(byPath.get('src/q8.bin')?.kind, 'vanished', 'a file removed before its turn is reported as vanished')
  t.notOk(byPath.has('src/unlinked.bin'), 'a file unlinked while open is read whole, as it was when opened')
  t.notOk(byPath.has('src/steady.bin'))
  t.equal(warnings.length, 4)

  // What was stored is consistent: every stored file's content matches its recorded size and BLAKE3.
  const reader = new TreeReader(tr.repo)
  const nodes = new Map<string, { size?: number; blake3?: string }>()
  for await (const [p, n] of reader.walk(r.snapshot.tree)) nodes.set(p.toString(), n)
  t.notOk(nodes.has('src/q8.bin'), 'the vanished file is not in the snapshot')
  const out = join(dir, 'out')
  const rr = await restore(tr.repo, { snapshot: await loadSnapshot(tr.repo, r.id!), target: out })
  t.same(rr.errors, [])
  for (const f of ['grow.bin', 'shrink.bin', 'rewrite.bin', 'unlinked.bin', 'steady.bin']) {
    const got = readFileSync(join(out, 'src', f))
    const n = nodes.get(`src/${f}`)!
    t.ok(got.length === n.size && blake3(got).toString('hex') === n.blake3, `${f}: restored as stored (${got.length} bytes), size and BLAKE3 agree`)
  }
  t.ok(readFileSync(join(out, 'src/unlinked.bin')).equals(big('unlinked')), 'the unlinked file is its content when opened')
  t.ok(readFileSync(join(out, 'src/shrink.bin')).equals(big('shrink').subarray(0, MB)), 'the file that shrank: the first MiB, read before it shrank')
  // The changed files are not remembered as unchanged: the next backup reads them again.
  const again = await backup(tr.repo, { ...base, paths: [src] })
  t.same(again.warnings, [])
  t.equal(again.snapshot.stats.unchanged_files, 9, 'only the files read without change are taken from the cache (steady and q0–q7)')
})

t.test('FIFOs, sockets, devices, symlink loops', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  mkdirSync(join(src, 'sub'), { recursive: true })
  execFileSync('mkfifo', [join(src, 'fifo')]) // opening it for reading would block the backup forever
  await new Promise<void>((res) => {
    const s = createServer().listen(join(src, 'sock'), () => s.close(() => res()))
  })
  if (isRoot) {
    execFileSync('mknod', [join(src, 'null'), 'c', '1', '3'])
    execFileSync('mknod', [join(src, 'loopdev'), 'b', '7', '200'])
  }
  symlinkSync('b', join(src, 'a'))
  symlinkSync('a', join(src, 'b'))
  symlinkSync('self', join(src, 'self'))
  symlinkSync('..', join(src, 'sub', 'up'))
  symlinkSync('.', join(src, 'sub', 'here'))
  symlinkSync(join(src, 'sub'), join(src, 'sub', 'abs-loop'))
  writeFileSync(join(src, 'sub', 'file.txt'), 'x')
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const r = await backup(tr.repo, { ...base, paths: [src] })
  t.same(r.warnings, [], 'nothing is followed or opened: no warnings')
  t.equal(r.snapshot.stats.files, 1, 'one regular file (links are not followed into loops)')
  const out = join(dir, 'out')
  const rr = await restore(tr.repo, { snapshot: await loadSnapshot(tr.repo, r.id!), target: out })
  t.same(rr.errors, [])
  const got = listing(join(out, 'src'))
  const want = listing(src)
  want.delete(`/${Buffer.from('sock').toString('hex')}`) // a socket is recorded; it cannot be recreated without a server
  t.same(got, want, `loops, FIFO${isRoot ? ' and devices' : ''} restored as they were`)
  if (!isRoot) t.comment('not root: devices were not created (mknod needs root)')
})

t.test('a hard-link farm: many links to few inodes', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  const links = STRESS ? 50_000 : 10_000
  const contents = [seededBytes('h0', 300_000), seededText('h1', 100_000), Buffer.from('tiny\n')]
  for (let i = 0; i < 3; i++) writeTree(src, { [`orig${i}`]: contents[i] })
  for (let i = 0; i < links; i++) {
    const d = join(src, `d${Math.floor(i / 1000)}`)
    if (i % 1000 === 0) mkdirSync(d)
    linkSync(join(src, `orig${i % 3}`), join(d, `l${i}`))
  }
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const t0 = performance.now()
  const r = await backup(tr.repo, { ...base, paths: [src] })
  const ms = performance.now() - t0
  t.same(r.warnings, [])
  t.equal(r.snapshot.stats.files, links + 3)
  t.ok(r.snapshot.stats.added_data_bytes! < 600_000, `each inode's data is stored once (${r.snapshot.stats.added_data_bytes} bytes of data packs)`)
  const out = join(dir, 'out')
  const t1 = performance.now()
  const rr = await restore(tr.repo, { snapshot: await loadSnapshot(tr.repo, r.id!), target: out })
  t.same(rr.errors, [])
  const inodes = new Set<number>()
  let count = 0
  for (const d of readdirSync(join(out, 'src'))) {
    const p = join(out, 'src', d)
    if (lstatSync(p).isDirectory()) for (const f of readdirSync(p)) { inodes.add(statSync(join(p, f)).ino); count++ }
    else { inodes.add(statSync(p).ino); count++ }
  }
  t.equal(count, links + 3)
  t.equal(inodes.size, 3, `restored as hard links: ${count} names, 3 inodes`)
  t.equal(statSync(join(out, 'src', 'orig0')).nlink, Math.ceil(links / 3) + 1)
  t.ok(readFileSync(join(out, 'src', 'd0', 'l3')).equals(contents[0]))
  t.comment(`figures: hardlink-farm ${JSON.stringify({ links, backup_ms: Math.round(ms), restore_ms: Math.round(performance.now() - t1) })}`)
})

t.test('a sparse multi-GB file: stored in a few blobs, restored sparse and identical', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  mkdirSync(src)
  const size = STRESS ? 8 * GB : 1 * GB
  const file = join(src, 'disk.img')
  const fd = openSync(file, 'w')
  const marks = [0, 123_456_789, Math.floor(size / 2) + 7, size - 4096]
  for (const [i, at] of marks.entries()) writeSync(fd, seededBytes(`mark${i}`, 4096), 0, 4096, at)
  closeSync(fd)
  t.ok(statSync(file).blocks * 512 < 1 * MB, 'the source is sparse')
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const t0 = performance.now()
  const r = await backup(tr.repo, { ...base, paths: [src] })
  const backupMs = performance.now() - t0
  t.same(r.warnings, [])
  t.ok(r.snapshot.stats.added_bytes < 2 * MB, `the repository grows by ${r.snapshot.stats.added_bytes} bytes for ${size} bytes of file`)
  const out = join(dir, 'out')
  const t1 = performance.now()
  const rr = await restore(tr.repo, { snapshot: await loadSnapshot(tr.repo, r.id!), target: out })
  const restoreMs = performance.now() - t1
  t.same(rr.errors, [])
  const st = statSync(join(out, 'src', 'disk.img'))
  t.equal(st.size, size)
  t.ok(st.blocks * 512 < 4 * MB, `restored sparse: ${st.blocks * 512} bytes allocated`)
  const rfd = openSync(join(out, 'src', 'disk.img'), 'r')
  const b = Buffer.alloc(4096)
  for (const [i, at] of marks.entries()) {
    readSyncAt(rfd, b, at)
    t.ok(b.equals(seededBytes(`mark${i}`, 4096)), `data at ${at} restored`)
  }
  readSyncAt(rfd, b, 200_000_000)
  t.ok(b.equals(Buffer.alloc(4096)), 'holes read as zeros')
  closeSync(rfd)
  t.comment(`figures: sparse ${JSON.stringify({ bytes: size, backup_ms: Math.round(backupMs), restore_ms: Math.round(restoreMs), added_bytes: r.snapshot.stats.added_bytes })}`)
})

function readSyncAt(fd: number, b: Buffer, at: number): void {
  readSync(fd, b, 0, b.length, at)
}

t.test('a source on another device beside one on this disk', async (t) => {
  const dir = t.testdir()
  const local = join(dir, 'local')
  writeTree(local, { 'a.txt': 'on disk\n', 'b.bin': seededBytes('disk-b', 50_000) })
  // A tmpfs of our own (as root); otherwise /dev/shm, which is one too. Mounted outside the test dir, which tap removes first.
  let other = mkdtempSync('/tmp/cs-mnt-')
  let mounted = false
  if (isRoot && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'coldstore-test', other]).status === 0) {
    mounted = true
    const mnt = other
    t.teardown(() => {
      spawnSync('umount', [mnt])
      rmSync(mnt, { recursive: true, force: true })
    })
  } else {
    rmSync(other, { recursive: true, force: true })
    other = join('/dev/shm', `coldstore-test-${process.pid}`)
    mkdirSync(other, { recursive: true })
    t.teardown(() => rmSync(other, { recursive: true, force: true }))
    t.comment('could not mount a tmpfs (not root, or no permission): using /dev/shm')
  }
  const src2 = join(other, 'tmpfs-src')
  writeTree(src2, { 'a.txt': 'on tmpfs\n', 'c.bin': seededBytes('tmpfs-c', 50_000) })
  linkSync(join(src2, 'a.txt'), join(src2, 'a-link.txt'))
  t.not(statSync(src2).dev, statSync(local).dev, `the sources are on different devices (${mounted ? 'a tmpfs mounted for the test' : '/dev/shm'})`)
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const r = await backup(tr.repo, { ...base, paths: [local, src2] })
  t.same(r.warnings, [])
  const out = join(dir, 'out')
  const rr = await restore(tr.repo, { snapshot: await loadSnapshot(tr.repo, r.id!), target: out })
  t.same(rr.errors, [])
  t.same(listing(join(out, 'tmpfs-src')), listing(src2), 'the tmpfs source restores identical')
  t.same(listing(join(out, 'local')), listing(local), 'the disk source restores identical')
  t.equal(statSync(join(out, 'tmpfs-src', 'a.txt')).ino, statSync(join(out, 'tmpfs-src', 'a-link.txt')).ino, 'hard links on the other device restored')
  // The change cache is keyed by device and inode: a change on one device is seen, nothing else is re-read.
  writeFileSync(join(src2, 'c.bin'), seededBytes('tmpfs-c2', 50_000))
  const again = await backup(tr.repo, { ...base, paths: [local, src2] })
  t.equal(again.snapshot.stats.changed_files, 1, 'the changed file on the tmpfs is read again')
  t.equal(again.snapshot.stats.unchanged_files, 4, 'the others come from the cache')
})
