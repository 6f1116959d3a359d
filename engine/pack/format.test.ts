import t from 'tap'
import { AesGcmSealer, PlainSealer, deriveRepoKeys, parseKeyFile, unwrapMasterKey, wrapMasterKey, TEST_KDF } from '../crypto/index.js'
import { IntegrityError, KeyError } from '../errors.js'
import { hashHex } from '../hash/index.js'
import { seededBytes, seededText } from '../testing/test-repo.js'
import { decodeIndexObject, encodeIndexObject, decodeIndexBody, encodeIndexBody } from '../index/index.js'
import { decodeTree, encodeTree, type TreeNode } from '../tree/index.js'
import { BlobEncoder, Compression, PACK_ENTRY_BYTES, PackWriter, BufferSink, decodeBlob, decodeTrailer, encodeBlob, encodeEntries, decodeEntries, trailerSize } from './index.js'

const sealers = [
  { name: 'aes-256-gcm', sealer: new AesGcmSealer(Buffer.alloc(32, 7)) },
  { name: 'none', sealer: new PlainSealer() },
]

for (const { name, sealer } of sealers) {
  t.test(`sealing (${name})`, async (t) => {
    const plain = Buffer.from('the quick brown fox')
    const sealed = sealer.seal(plain)
    t.equal(sealed.length, plain.length + sealer.overhead)
    t.same(sealer.open(sealed), plain)
    for (let i = 0; i < sealed.length; i++) {
      const bad = Buffer.from(sealed)
      bad[i] ^= 0x01
      t.throws(() => sealer.open(bad), IntegrityError, `flip at ${i} detected`)
    }
    t.throws(() => sealer.open(sealed.subarray(0, 5)), IntegrityError, 'too short')
    // Into a buffer, and in place over the plaintext (as blob workers seal in their slot).
    const out = Buffer.alloc(plain.length + sealer.overhead + 5, 0xee)
    t.equal(sealer.sealInto(plain, out), plain.length + sealer.overhead)
    t.same(sealer.open(out.subarray(0, plain.length + sealer.overhead)), plain, 'sealed into a buffer')
    t.equal(out[out.length - 1], 0xee, 'nothing written past the sealed length')
    const slot = Buffer.alloc(plain.length + sealer.overhead)
    plain.copy(slot)
    t.equal(sealer.sealInto(slot.subarray(0, plain.length), slot), slot.length)
    t.same(sealer.open(slot), plain, 'sealed in place')
    t.throws(() => sealer.sealInto(plain, Buffer.alloc(plain.length)), RangeError, 'an output too small is refused')
  })

  t.test(`blobs and packs (${name})`, async (t) => {
    const text = Buffer.from('line of compressible text\n'.repeat(2000))
    const random = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919 + (i >> 3) * 104729) & 0xff))
    const e1 = encodeBlob(text, sealer, 3)
    t.equal(e1.compression, Compression.Zstd, 'text is compressed')
    t.ok(e1.sealed.length < text.length / 4)
    const e2 = encodeBlob(random, sealer, 3)
    const e3 = encodeBlob(text, sealer, 0)
    t.equal(e3.compression, Compression.None, 'level 0 stores raw')
    // Small blobs are gathered and written in batches, large ones directly: the order must hold either way.
    const small = [seededText('small-a', 3000), seededText('small-b', 5000), Buffer.from('x')]
    const large = seededBytes('large', 200 * 1024)
    const blobs = [text, small[0], random, large, small[1], text, small[2]]
    const encoded = [e1, encodeBlob(small[0], sealer, 3), e2, encodeBlob(large, sealer, 3), encodeBlob(small[1], sealer, 3), e3, encodeBlob(small[2], sealer, 3)]
    t.ok(encoded[3].sealed.length > 64 * 1024 && encoded[1].sealed.length < 64 * 1024, 'both a small and a large blob')
    const sink = new BufferSink()
    const w = new PackWriter('data', 1 << 20, sink)
    const ids = encoded.map((_, i) => String(i + 1).padStart(2, '0').repeat(32))
    const adds = encoded.map((e, i) => w.add(ids[i], 'data', e))
    await Promise.all(adds)
    const projected = w.projectedSize(sealer)
    const pack = await w.finish(sealer)
    const bytes = sink.bytes()
    t.equal(bytes.length, projected, 'projected size is exact')
    t.equal(pack.size, bytes.length, 'size is what was written')
    t.equal(pack.id, hashHex(bytes), 'id is the hash of the bytes written')
    t.equal(bytes.length - pack.entries.at(-1)!.offset - pack.entries.at(-1)!.length, trailerSize(blobs.length, sealer))
    const entries = decodeTrailer(bytes, bytes.length, sealer, pack.id)
    t.same(entries, pack.entries, 'header round-trips')
    for (const [i, want] of blobs.entries()) {
      const e = entries[i]
      t.same(decodeBlob(bytes.subarray(e.offset, e.offset + e.length), e, sealer), want)
    }
    // encodeInto (blob workers) stores the same: in place over the plaintext, compressed or not.
    for (const [i, plain] of [text, random, small[2]].entries()) {
      const slot = Buffer.alloc(plain.length + 1024)
      plain.copy(slot)
      const r = new BlobEncoder(sealer, 3).encodeInto(slot.subarray(0, plain.length), slot)
      t.equal(r.compression, [e1, e2, encoded[6]][i].compression, `the same compression choice (${i})`)
      t.same(decodeBlob(slot.subarray(0, r.length), { ...r, id: 'x' }, sealer), plain, `encodeInto round-trips (${i})`)
    }
    const trunc = bytes.subarray(0, bytes.length - 10)
    t.throws(() => decodeTrailer(trunc, trunc.length, sealer, pack.id), IntegrityError, 'truncated pack detected')
  })

  t.test(`index objects (${name})`, async (t) => {
    const packs = [
      { packId: 'ab'.repeat(32), kind: 'data' as const, size: 1234, entries: [{ id: 'cd'.repeat(32), type: 'data' as const, compression: Compression.Zstd, offset: 0, length: 100, rawLength: 400 }] },
      { packId: 'ef'.repeat(32), kind: 'meta' as const, size: 99, entries: [] },
    ]
    t.same(decodeIndexBody(encodeIndexBody(packs)), packs)
    const obj = encodeIndexObject(packs, sealer)
    t.same(decodeIndexObject(obj, sealer, 'index/x'), packs)
  })
}

t.test('pack header entries are 46 bytes, in the documented layout', async (t) => {
  const e = { id: '0f'.repeat(32), type: 'tree' as const, compression: Compression.Zstd, offset: 0x01020304, length: 0x0a0b0c0d, rawLength: 5 }
  const b = encodeEntries([e])
  t.equal(b.length, 1 + PACK_ENTRY_BYTES)
  t.equal(b.toString('hex'), '01' + '01' + '01' + '0f'.repeat(32) + '04030201' + '0d0c0b0a' + '05000000')
  t.same(decodeEntries(b), [e])
})

t.test('key files: wrap, unwrap, wrong password, damage', async (t) => {
  const master = Buffer.alloc(32, 9)
  const kf = await wrapMasterKey(master, 'pw', TEST_KDF, { hostname: 'h', username: 'u', created: '2026-01-01T00:00:00Z' })
  const bytes = Buffer.from(JSON.stringify(kf))
  const parsed = parseKeyFile(bytes, 'keys/x')
  t.same(await unwrapMasterKey(parsed, 'pw'), master)
  t.equal(await unwrapMasterKey(parsed, 'wrong'), null)
  t.throws(() => parseKeyFile(Buffer.from('{not json'), 'keys/x'), KeyError)
  t.throws(() => parseKeyFile(Buffer.from(JSON.stringify({ ...kf, N: 3 })), 'keys/x'), KeyError)
  const k = deriveRepoKeys(master)
  t.not(k.encKey.toString('hex'), k.idKey.toString('hex'))
  t.equal(k.gearSeed.length, 32)
})

t.test('trees: raw names, symlink targets, big times', async (t) => {
  const nodes: TreeNode[] = [
    { name: Buffer.from([0x66, 0xff]), type: 'file', mode: 0o644, uid: 1, gid: 2, mtimeNs: 1600000000123456789n, size: 3, chunks: ['aa'.repeat(32)], blake3: 'bb'.repeat(32), links: 2, inode: '77', dev: '5' },
    { name: Buffer.from('a dir'), type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeNs: -5n, subtree: 'cc'.repeat(32) },
    { name: Buffer.from('ln'), type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtimeNs: 0n, target: Buffer.from([0x2e, 0x2e, 0xfe]) },
  ]
  const enc = encodeTree(nodes)
  const doc = JSON.parse(enc.toString())
  t.equal(doc.nodes[0].name, 'a dir', 'sorted by name bytes')
  t.equal(doc.nodes[1].name_b64, Buffer.from([0x66, 0xff]).toString('base64'), 'invalid UTF-8 name stored as base64')
  const dec = decodeTree(enc)
  t.same(dec.map((n) => n.name.toString('hex')), ['a dir', 'f\xff', 'ln'].map((s) => Buffer.from(s, 'latin1').toString('hex')))
  t.same(dec[1].mtimeNs, 1600000000123456789n)
  t.same(dec[2].target, Buffer.from([0x2e, 0x2e, 0xfe]))
})
