import { compress, decompress } from 'zstd-napi'
import type { Sealer } from '../crypto/index.js'
import { FormatError, IntegrityError } from '../errors.js'
import { PACK_ENTRY_BYTES, readEntry, writeEntry, type PackEntry } from '../pack/index.js'
import type { PackKind } from '../pack/index.js'

/** What an index object says about one pack. */
export interface IndexedPack {
  packId: string
  kind: PackKind
  /** Size of the pack file in bytes. */
  size: number
  entries: PackEntry[]
}

const INDEX_VERSION = 1

/** Plaintext body of an index object (before compression and sealing). See FORMAT.md. */
export function encodeIndexBody(packs: readonly IndexedPack[]): Buffer {
  let n = 1
  for (const p of packs) n += 32 + 1 + 4 + 4 + p.entries.length * PACK_ENTRY_BYTES
  const out = Buffer.alloc(n)
  out[0] = INDEX_VERSION
  let o = 1
  for (const p of packs) {
    out.write(p.packId, o, 32, 'hex')
    out[o + 32] = p.kind === 'data' ? 0 : 1
    out.writeUInt32LE(p.size, o + 33)
    out.writeUInt32LE(p.entries.length, o + 37)
    o += 41
    for (const e of p.entries) o = writeEntry(out, o, e)
  }
  return out
}

/** Parses an index object's plaintext body. */
export function decodeIndexBody(buf: Buffer): IndexedPack[] {
  if (buf[0] !== INDEX_VERSION) throw new FormatError(`unknown index object version ${buf[0]}`)
  const out: IndexedPack[] = []
  let o = 1
  while (o < buf.length) {
    if (o + 41 > buf.length) throw new FormatError('index object is truncated')
    const packId = buf.toString('hex', o, o + 32)
    const kind: PackKind = buf[o + 32] === 0 ? 'data' : 'meta'
    const size = buf.readUInt32LE(o + 33)
    const count = buf.readUInt32LE(o + 37)
    o += 41
    if (o + count * PACK_ENTRY_BYTES > buf.length) throw new FormatError('index object is truncated')
    const entries: PackEntry[] = []
    for (let i = 0; i < count; i++, o += PACK_ENTRY_BYTES) entries.push(readEntry(buf, o))
    out.push({ packId, kind, size, entries })
  }
  return out
}

/** Stored bytes of an index object: sealed zstd-compressed body. */
export function encodeIndexObject(packs: readonly IndexedPack[], sealer: Sealer): Buffer {
  return sealer.seal(compress(encodeIndexBody(packs), { compressionLevel: 3 }))
}

/** Parses the stored bytes of an index object; throws IntegrityError or FormatError. */
export function decodeIndexObject(bytes: Uint8Array, sealer: Sealer, name: string): IndexedPack[] {
  const body = sealer.open(bytes, name)
  let plain: Buffer
  try {
    plain = decompress(body)
  } catch (err) {
    throw new IntegrityError(`${name}: damaged compressed body`, {}, { cause: err })
  }
  return decodeIndexBody(plain)
}
