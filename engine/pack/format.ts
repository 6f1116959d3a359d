import { decompress } from 'zstd-napi'
import { createRequire } from 'node:module'
import type { Sealer } from '../crypto/index.js'
import { FormatError, IntegrityError } from '../errors.js'

// The low-level binding (its exports are assigned at run time, which ESM named imports cannot see).
const zstd = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js')
import type { BlobType } from '../types.js'

/** Compression of one stored blob. */
export const Compression = { None: 0, Zstd: 1 } as const
export type Compression = (typeof Compression)[keyof typeof Compression]

/** One entry of a pack header: where a blob lives inside its pack. */
export interface PackEntry {
  /** Blob id, 32 bytes as hex. */
  id: string
  type: BlobType
  compression: Compression
  /** Offset of the sealed blob inside the pack. */
  offset: number
  /** Length of the sealed blob inside the pack. */
  length: number
  /** Length of the blob's plaintext (after decompression). */
  rawLength: number
}

export const PACK_HEADER_VERSION = 1
export const PACK_ENTRY_BYTES = 46
/** Compressed output is kept only if it is at most this fraction of the input. */
const KEEP_COMPRESSED_RATIO = 0.97

/** A blob as it will be stored: sealed bytes plus the facts its header entry records. */
export interface EncodedBlob {
  sealed: Buffer
  compression: Compression
  rawLength: number
}

/**
 * Compresses (when it pays) and seals a blob's plaintext.
 * `level` 0 disables compression. Hot paths keep a BlobEncoder instead.
 */
export function encodeBlob(plain: Uint8Array, sealer: Sealer, level: number): EncodedBlob {
  return new BlobEncoder(sealer, level).encode(plain)
}

/**
 * Compresses (when it pays: to at most 97 % of the input) and seals blobs,
 * reusing one zstd context and one scratch buffer, so that encoding a blob
 * allocates only the sealed output.
 */
export class BlobEncoder {
  private readonly sealer: Sealer
  private readonly level: number
  private readonly cctx = new zstd.CCtx()
  private scratch = Buffer.alloc(0)
  constructor(sealer: Sealer, level: number) {
    this.sealer = sealer
    this.level = level
  }
  encode(plain: Uint8Array): EncodedBlob {
    if (this.level > 0 && plain.length >= 64) {
      const bound = zstd.compressBound(plain.length)
      if (this.scratch.length < bound) this.scratch = Buffer.allocUnsafeSlow(bound)
      const n = this.cctx.compress(this.scratch, plain, this.level)
      if (n <= plain.length * KEEP_COMPRESSED_RATIO) {
        return { sealed: this.sealer.seal(this.scratch.subarray(0, n)), compression: Compression.Zstd, rawLength: plain.length }
      }
    }
    return { sealed: this.sealer.seal(plain), compression: Compression.None, rawLength: plain.length }
  }

  /**
   * Like `encode`, but seals into `out` (which `plain` may be the start of)
   * and returns the sealed length: nothing is allocated for the result.
   */
  encodeInto(plain: Uint8Array, out: Uint8Array): { length: number; compression: Compression; rawLength: number } {
    const rawLength = plain.length
    if (this.level > 0 && plain.length >= 64) {
      const bound = zstd.compressBound(plain.length)
      if (this.scratch.length < bound) this.scratch = Buffer.allocUnsafeSlow(bound)
      const n = this.cctx.compress(this.scratch, plain, this.level)
      if (n <= plain.length * KEEP_COMPRESSED_RATIO) {
        return { length: this.sealer.sealInto(this.scratch.subarray(0, n), out), compression: Compression.Zstd, rawLength }
      }
    }
    return { length: this.sealer.sealInto(plain, out), compression: Compression.None, rawLength }
  }
}

/** Opens and decompresses a sealed blob; throws IntegrityError on damage. Does not check the id. */
export function decodeBlob(sealed: Uint8Array, e: Pick<PackEntry, 'compression' | 'rawLength' | 'id'>, sealer: Sealer): Buffer {
  const body = sealer.open(sealed, `blob ${e.id.slice(0, 12)}`)
  if (e.compression === Compression.None) {
    if (body.length !== e.rawLength) throw new IntegrityError(`blob ${e.id}: length ${body.length}, expected ${e.rawLength}`, { blobId: e.id })
    return body
  }
  let out: Buffer
  try {
    out = decompress(body)
  } catch (err) {
    throw new IntegrityError(`blob ${e.id}: zstd frame is damaged`, { blobId: e.id }, { cause: err })
  }
  if (out.length !== e.rawLength) throw new IntegrityError(`blob ${e.id}: length ${out.length}, expected ${e.rawLength}`, { blobId: e.id })
  return out
}

/**
 * Like `decodeBlob`, but decompresses straight into `out` (exactly
 * `e.rawLength` bytes), with a reused decompression context: no allocation
 * per blob besides the decryption's. Used by the restore workers.
 */
export function decodeBlobInto(sealed: Uint8Array, e: Pick<PackEntry, 'compression' | 'rawLength' | 'id'>, sealer: Sealer, dctx: InstanceType<typeof zstd.DCtx>, out: Uint8Array): void {
  if (out.length !== e.rawLength) throw new TypeError('output must be rawLength bytes')
  const body = sealer.open(sealed, `blob ${e.id.slice(0, 12)}`)
  if (e.compression === Compression.None) {
    if (body.length !== e.rawLength) throw new IntegrityError(`blob ${e.id}: length ${body.length}, expected ${e.rawLength}`, { blobId: e.id })
    out.set(body)
    return
  }
  let n: number
  try {
    // A frame that claims more than rawLength fails here (the output is too small): damaged, like a short one.
    n = dctx.decompress(out, body)
  } catch (err) {
    throw new IntegrityError(`blob ${e.id}: zstd frame is damaged`, { blobId: e.id }, { cause: err })
  }
  if (n !== e.rawLength) throw new IntegrityError(`blob ${e.id}: length ${n}, expected ${e.rawLength}`, { blobId: e.id })
}

/** A zstd decompression context for `decodeBlobInto` (one per thread; reuse it). */
export function newDecompressionContext(): InstanceType<typeof zstd.DCtx> {
  return new zstd.DCtx()
}

/** Serializes header entries (plaintext, before sealing). */
export function encodeEntries(entries: readonly PackEntry[]): Buffer {
  const out = Buffer.alloc(1 + entries.length * PACK_ENTRY_BYTES)
  out[0] = PACK_HEADER_VERSION
  let p = 1
  for (const e of entries) {
    p = writeEntry(out, p, e)
  }
  return out
}

/** Writes one 46-byte entry at `p`, returns the next position. */
export function writeEntry(out: Buffer, p: number, e: PackEntry): number {
  out[p] = e.type === 'data' ? 0 : 1
  out[p + 1] = e.compression
  out.write(e.id, p + 2, 32, 'hex')
  out.writeUInt32LE(e.offset, p + 34)
  out.writeUInt32LE(e.length, p + 38)
  out.writeUInt32LE(e.rawLength, p + 42)
  return p + PACK_ENTRY_BYTES
}

/** Reads one 46-byte entry at `p`. */
export function readEntry(buf: Buffer, p: number): PackEntry {
  const t = buf[p]
  const c = buf[p + 1]
  if (t > 1 || c > 1) throw new FormatError(`pack header entry has unknown type ${t} or compression ${c}`)
  return {
    type: t === 0 ? 'data' : 'tree',
    compression: c as Compression,
    id: buf.toString('hex', p + 2, p + 34),
    offset: buf.readUInt32LE(p + 34),
    length: buf.readUInt32LE(p + 38),
    rawLength: buf.readUInt32LE(p + 42),
  }
}

/** Parses header entries (plaintext, after opening the seal). */
export function decodeEntries(buf: Buffer): PackEntry[] {
  if (buf.length < 1 || buf[0] !== PACK_HEADER_VERSION) throw new FormatError(`unknown pack header version ${buf[0]}`)
  if ((buf.length - 1) % PACK_ENTRY_BYTES !== 0) throw new FormatError(`pack header has a partial entry (${buf.length} bytes)`)
  const out: PackEntry[] = []
  for (let p = 1; p < buf.length; p += PACK_ENTRY_BYTES) out.push(readEntry(buf, p))
  return out
}

/**
 * Builds the trailer of a pack: sealed header followed by its length as u32 LE.
 */
export function encodeTrailer(entries: readonly PackEntry[], sealer: Sealer): Buffer {
  const sealed = sealer.seal(encodeEntries(entries))
  const len = Buffer.alloc(4)
  len.writeUInt32LE(sealed.length)
  return Buffer.concat([sealed, len])
}

/**
 * Parses a pack header given the pack's last bytes (`tail`, which must
 * contain at least the whole trailer) and the pack's total size.
 * Checks that entries lie inside the data part without overlapping.
 */
export function decodeTrailer(tail: Buffer, packSize: number, sealer: Sealer, packId: string): PackEntry[] {
  if (tail.length < 4) throw new IntegrityError(`pack ${packId}: too short to hold a header`, { packId })
  const hlen = tail.readUInt32LE(tail.length - 4)
  if (hlen + 4 > tail.length || hlen + 4 > packSize) throw new IntegrityError(`pack ${packId}: header length ${hlen} is impossible (pack is ${packSize} bytes)`, { packId })
  const sealed = tail.subarray(tail.length - 4 - hlen, tail.length - 4)
  let entries: PackEntry[]
  try {
    entries = decodeEntries(sealer.open(sealed, `pack ${packId.slice(0, 12)} header`))
  } catch (err) {
    if (err instanceof IntegrityError) throw new IntegrityError(`pack ${packId}: header is damaged`, { packId }, { cause: err })
    throw err
  }
  const dataEnd = packSize - 4 - hlen
  let end = 0
  for (const e of entries) {
    if (e.offset < end || e.offset + e.length > dataEnd) throw new IntegrityError(`pack ${packId}: header entry for blob ${e.id} points outside the pack`, { packId })
    end = e.offset + e.length
  }
  return entries
}

/** Size of the trailer for `n` entries with this sealer (exact, so dry-runs can predict it). */
export function trailerSize(n: number, sealer: Sealer): number {
  return 1 + n * PACK_ENTRY_BYTES + sealer.overhead + 4
}
