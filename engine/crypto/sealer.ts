import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { blake3 } from '@napi-rs/blake-hash'
import { IntegrityError } from '../errors.js'

/** Bytes a sealed object has beyond its plaintext. */
export const SEAL_OVERHEAD_ENCRYPTED = 12 + 16
/** Bytes an unencrypted "sealed" object has beyond its plaintext (a truncated BLAKE3 checksum). */
export const SEAL_OVERHEAD_PLAIN = 16

/**
 * Seals and opens stored objects.
 *
 * Encrypted: `nonce(12) || AES-256-GCM ciphertext || tag(16)`, a fresh random
 * nonce per object, no associated data.
 * Unencrypted: `plaintext || BLAKE3(plaintext)[0..16]`, so that damage is
 * still detected precisely.
 */
export interface Sealer {
  readonly encrypted: boolean
  readonly overhead: number
  seal(plaintext: Uint8Array): Buffer
  /**
   * Seals `plaintext` into `out` (at least `plaintext.length + overhead`
   * bytes) and returns the sealed length. `plaintext` may be the start of
   * `out` itself (it is read before `out` is written): a worker seals a chunk
   * in the slot it came in, allocating no buffer for the result.
   */
  sealInto(plaintext: Uint8Array, out: Uint8Array): number
  /** Returns the plaintext; throws IntegrityError if authentication fails. */
  open(sealed: Uint8Array, what?: string): Buffer
}

/** AES-256-GCM sealing with a 32-byte key. */
export class AesGcmSealer implements Sealer {
  readonly encrypted = true
  readonly overhead = SEAL_OVERHEAD_ENCRYPTED
  private readonly key: Buffer
  /** Random bytes drawn 4 KiB at a time: one CSPRNG call per 341 nonces instead of one per blob. */
  private pool = Buffer.alloc(0)
  private poolAt = 0
  constructor(key: Buffer) {
    if (key.length !== 32) throw new TypeError('AES-256-GCM needs a 32-byte key')
    this.key = key
  }
  private nextNonce(): Buffer {
    if (this.poolAt + 12 > this.pool.length) {
      this.pool = randomBytes(4092)
      this.poolAt = 0
    }
    const n = this.pool.subarray(this.poolAt, this.poolAt + 12)
    this.poolAt += 12
    return n
  }
  seal(plaintext: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(12 + plaintext.length + 16)
    this.sealInto(plaintext, out)
    return out
  }
  sealInto(plaintext: Uint8Array, out: Uint8Array): number {
    const total = 12 + plaintext.length + 16
    if (out.length < total) throw new RangeError(`sealed object needs ${total} bytes, the output has ${out.length}`)
    const nonce = this.nextNonce()
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce)
    // The whole ciphertext before writing anything: `plaintext` may lie where the nonce goes.
    const body = cipher.update(plaintext)
    const fin = cipher.final()
    out.set(body, 12)
    if (fin.length) out.set(fin, 12 + body.length)
    out.set(nonce, 0)
    out.set(cipher.getAuthTag(), 12 + plaintext.length)
    return total
  }
  open(sealed: Uint8Array, what = 'object'): Buffer {
    if (sealed.length < SEAL_OVERHEAD_ENCRYPTED) throw new IntegrityError(`${what}: sealed object too short (${sealed.length} bytes)`)
    const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length)
    const decipher = createDecipheriv('aes-256-gcm', this.key, buf.subarray(0, 12))
    decipher.setAuthTag(buf.subarray(buf.length - 16))
    try {
      const a = decipher.update(buf.subarray(12, buf.length - 16))
      const b = decipher.final()
      return b.length === 0 ? a : Buffer.concat([a, b])
    } catch (err) {
      throw new IntegrityError(`${what}: authentication failed (damaged or not written with this key)`, {}, { cause: err })
    }
  }
}

/** The unencrypted "sealer": appends a 16-byte BLAKE3 checksum. */
export class PlainSealer implements Sealer {
  readonly encrypted = false
  readonly overhead = SEAL_OVERHEAD_PLAIN
  seal(plaintext: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(plaintext.length + 16)
    this.sealInto(plaintext, out)
    return out
  }
  sealInto(plaintext: Uint8Array, out: Uint8Array): number {
    const total = plaintext.length + 16
    if (out.length < total) throw new RangeError(`sealed object needs ${total} bytes, the output has ${out.length}`)
    const sum = blake3(plaintext)
    if (plaintext.buffer !== out.buffer || plaintext.byteOffset !== out.byteOffset) out.set(plaintext, 0)
    out.set(sum.subarray(0, 16), plaintext.length)
    return total
  }
  open(sealed: Uint8Array, what = 'object'): Buffer {
    if (sealed.length < SEAL_OVERHEAD_PLAIN) throw new IntegrityError(`${what}: object too short (${sealed.length} bytes)`)
    const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length)
    const body = buf.subarray(0, buf.length - 16)
    if (!blake3(body).subarray(0, 16).equals(buf.subarray(buf.length - 16))) {
      throw new IntegrityError(`${what}: checksum mismatch (damaged)`)
    }
    return body
  }
}
