/**
 * What an encrypted repository shows to whoever holds its bytes (a storage provider, a thief), and what it
 * refuses:
 *  - no file or folder name, no symlink target, no file content appears in any object, raw or encoded
 *    (base64, hex, UTF-16), compressible text included (it would survive compression in part);
 *  - no object's size gives away the size of a single file: small files share packs, and no object is within
 *    a sealing overhead of any file's size;
 *  - what is in clear is only what FORMAT.md says: `config` (parameters) and `keys/*` (the wrapped key with its
 *    KDF parameters, host and user names), object sizes, and per pack the length of its sealed header;
 *  - a wrong password is refused; a blob altered on disk, or replaced by another one sealed with the right
 *    key (an insider), is refused by restore and verify, never returned.
 */
import t from 'tap'
import { closeSync, openSync, readFileSync, readdirSync, statSync, symlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { PasswordError } from '../errors.js'
import { backup } from '../backup/index.js'
import { restore } from '../restore/index.js'
import { verify } from '../verify/index.js'
import { loadSnapshot } from '../snapshot/index.js'
import { TreeReader } from '../tree/index.js'
import { LocalRemote } from '../remote/index.js'
import { Repository } from '../repo/index.js'
import { encodeBlob, packObjectName } from '../pack/index.js'
import { makeTestRepo, seededBytes, seededText, writeTree } from '../testing/test-repo.js'

const root = t.testdir()
const src = join(root, 'Distinctive-Project-Folder')
const NAMES = ['Quarterly-Revenue-Forecast-Zq7.xlsx', 'patient-records-Kx93.csv', 'Geheime-Überweisung-ÄÖÜ.pdf', 'résumé-final-v3.docx', 'sub-Folder-Wq2']
/** Distinctive sizes, none of them a multiple of anything. */
const SIZES = [17, 4099, 31_337, 77_777, 123_457, 198_765, 250_001]
const files: Record<string, Buffer> = {}
const phrases: Buffer[] = []
for (const [i, size] of SIZES.entries()) {
  // Text that compresses (a phrase repeated) and random data.
  const phrase = `Confidential-Phrase-${i}-Marker-Vx${i * 7} `
  phrases.push(Buffer.from(phrase))
  files[`text-${NAMES[i % 4]}-${i}.txt`] = i % 2 === 0 ? Buffer.from(phrase.repeat(Math.ceil(size / phrase.length)).slice(0, size)) : seededText(`t${i}`, size)
}
files[`${NAMES[4]}/${NAMES[0]}`] = seededBytes('x', 50_000)
for (let i = 0; i < 30; i++) files[`small/s${i}.txt`] = seededText(`small${i}`, 500 + i * 61)
writeTree(src, files)
symlinkSync('Secret-Symlink-Target-Jj4', join(src, 'link'))

const tr = await makeTestRepo(join(root, 'repo-dir'), { password: 'claims', packSizeBytes: 1024 * 1024 })
const result = await backup(tr.repo, { hostname: 'host-Distinctive-H8', username: 'user-Distinctive-U9', program: 'test', now: () => new Date('2026-07-01T00:00:00Z'), paths: [src] })
await tr.repo.close()

/** Every object of the repository: name → bytes. */
function objects(dir: string, rel = ''): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  for (const n of readdirSync(join(dir, rel))) {
    const r = rel ? `${rel}/${n}` : n
    if (statSync(join(dir, r)).isDirectory()) for (const [k, v] of objects(dir, r)) out.set(k, v)
    else out.set(r, readFileSync(join(dir, r)))
  }
  return out
}

const forms = (s: string | Buffer): Buffer[] => {
  const b = Buffer.from(s)
  return [b, Buffer.from(b.toString('base64').replace(/=+$/, '')), Buffer.from(b.toString('hex')), Buffer.from(b.toString('utf8'), 'utf16le')]
}

t.test('no names, link targets or contents in any object', async (t) => {
  const objs = objects(tr.repoDir)
  const needles: [string, Buffer[]][] = [
    ...[...NAMES, 'Distinctive-Project-Folder', 'Secret-Symlink-Target-Jj4', 'small'].filter((n) => n.length > 4).map((n): [string, Buffer[]] => [`name ${n}`, forms(n)]),
    ...phrases.map((p): [string, Buffer[]] => [`content phrase ${p.toString().trim()}`, forms(p)]),
    ...Object.entries(files).filter(([, c]) => c.length >= 64).slice(0, 8).map(([n, c]): [string, Buffer[]] => [`32 bytes of ${n}`, [c.subarray(16, 48)]]),
    ['host name', forms('host-Distinctive-H8')], ['user name', forms('user-Distinctive-U9')],
  ]
  let bytes = 0
  for (const b of objs.values()) bytes += b.length
  for (const [what, ns] of needles) {
    const hits = [...objs].filter(([, b]) => ns.some((n) => b.includes(n))).map(([k]) => k)
    // The host and user name of whoever created the key are in the key file, as FORMAT.md says; nowhere else.
    const allowed = what === 'host name' || what === 'user name' ? hits.filter((k) => !k.startsWith('keys/')) : hits
    t.same(allowed, [], `${what}: in no object${hits.length ? ` (only in ${hits.join(', ')})` : ''}`)
  }
  t.comment(`figures: encryption ${JSON.stringify({ objects: objs.size, bytes, needles: needles.length, forms: 4 })}`)
  // Only config and key files are readable as text.
  const clear = [...objs].filter(([, b]) => b.length > 0 && b.every((c) => c === 0x0a || (c >= 0x20 && c < 0x7f))).map(([k]) => k.split('/')[0])
  t.same([...new Set(clear)].sort(), ['config', 'keys'], 'only config and key files are plain text')
})

t.test('object sizes do not give away single file sizes', async (t) => {
  const objs = objects(tr.repoDir)
  const fileCount = Object.keys(files).length + 1
  const packs = [...objs.keys()].filter((k) => /^(data|meta)\//.test(k))
  t.ok(packs.length < fileCount / 3, `${fileCount} entries in ${packs.length} packs: small files share packs`)
  // Within the overhead of storing one file alone: its bytes, per-chunk sealing (28 bytes each), a pack header.
  const near: string[] = []
  for (const [k, b] of objs) {
    for (const size of SIZES) {
      const slack = 28 * Math.ceil(size / 16_384 + 1) + 46 * Math.ceil(size / 16_384 + 1) + 64
      if (b.length >= size && b.length <= size + slack) near.push(`${k} (${b.length} bytes) ~ a file of ${size}`)
    }
  }
  t.same(near, [], 'no object is the size of one file plus sealing overhead')
})

t.test('a wrong password is refused', async (t) => {
  for (const pw of ['claims ', 'Claims', '', 'x'.repeat(1000)]) {
    await t.rejects(Repository.open(await LocalRemote.open({ path: tr.repoDir }), { password: pw, cacheDir: join(root, 'c-wrong') }), PasswordError, `password ${JSON.stringify(pw.slice(0, 10))}: refused`)
  }
})

t.test('an altered blob, or one replaced by another sealed with the right key, is refused', async (t) => {
  const repo = await tr.reopen()
  t.teardown(() => repo.close())
  const reader = new TreeReader(repo)
  let target: { path: string; chunk: string } | null = null
  for await (const [p, n] of reader.walk(result.snapshot.tree)) if (!target && n.type === 'file' && (n.size ?? 0) > 40_000) target = { path: p.toString(), chunk: n.chunks![0] }
  const loc = repo.lookup(target!.chunk)!
  const file = join(tr.repoDir, packObjectName('data', loc.packId))
  const original = readFileSync(file)
  const write = (bytes: Buffer): void => {
    const fd = openSync(file, 'r+')
    writeSync(fd, bytes, 0, bytes.length, loc.offset)
    closeSync(fd)
  }
  const check = async (what: string): Promise<void> => {
    const out = join(root, `out-${what.replace(/\W+/g, '-')}`)
    const r = await restore(repo, { snapshot: await loadSnapshot(repo, result.id!), target: out })
    t.ok(r.errors.some((e) => e.path === target!.path && e.blobId === target!.chunk), `${what}: restore refuses ${target!.path} and names the blob`)
    t.throws(() => statSync(join(out, target!.path)), { code: 'ENOENT' }, `${what}: no wrong bytes are left behind`)
    const v = await verify(repo, { readData: 1 })
    t.ok(v.findings.some((f) => f.kind === 'damaged_blob' && f.blobId === target!.chunk), `${what}: verify reports the blob`)
    await t.rejects(repo.loadBlob(target!.chunk), { code: 'EINTEGRITY' }, `${what}: reading it is refused`)
  }
  // 1. One byte altered: authentication fails.
  const flipped = Buffer.from(original.subarray(loc.offset, loc.offset + loc.length))
  flipped[loc.length >> 1] ^= 0x01
  write(flipped)
  await check('one bit flipped')
  // 2. Another plaintext sealed with the repository's own key, of the same stored length: it authenticates, and
  //    is refused because its content does not hash to the blob's id.
  let forged = encodeBlob(seededBytes('forged', loc.rawLength), repo.sealer, 0)
  for (let i = 1; forged.sealed.length !== loc.length && i < 50; i++) forged = encodeBlob(seededBytes(`forged${i}`, loc.rawLength), repo.sealer, loc.compression === 0 ? 0 : 3)
  if (forged.sealed.length === loc.length) {
    write(forged.sealed)
    await check('a blob sealed with the right key')
  } else {
    t.fail(`could not forge a blob of ${loc.length} bytes`)
  }
  write(original.subarray(loc.offset, loc.offset + loc.length))
  t.ok((await repo.loadBlob(target!.chunk)).length > 0, 'restored bytes read again')
})
