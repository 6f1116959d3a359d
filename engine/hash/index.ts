/**
 * hash/: BLAKE3 (via @napi-rs/blake-hash), hex helpers and key derivation.
 * Imports nothing from the engine but errors/types.
 */
import { Blake3Hasher, blake3 } from '@napi-rs/blake-hash'

/** Plain BLAKE3-256 of `data` (b3sum-compatible). */
export function hashBytes(data: Uint8Array): Buffer {
  return blake3(data)
}

/** Plain BLAKE3-256 of `data` as 64 hex chars. */
export function hashHex(data: Uint8Array): string {
  return blake3(data).toString('hex')
}

/** Keyed BLAKE3-256 of `data` with a 32-byte key. */
export function keyedHash(key: Buffer, data: Uint8Array): Buffer {
  return Blake3Hasher.newKeyed(key).update(data).digestBuffer()
}

/** BLAKE3 derive_key mode: a 32-byte subkey for `context` from `keyMaterial`. */
export function deriveKey(context: string, keyMaterial: Uint8Array): Buffer {
  return Blake3Hasher.deriveKey(context, keyMaterial)
}

/**
 * Computes blob ids: keyed BLAKE3 with the repository's id key when the
 * repository is encrypted, plain BLAKE3 otherwise.
 */
export class IdHasher {
  /** One keyed hasher, reset between uses (reset keeps the key): cheaper than a new one per blob. */
  private readonly keyed: Blake3Hasher | null
  constructor(key: Buffer | null) {
    this.keyed = key ? Blake3Hasher.newKeyed(key) : null
  }
  /** The 32-byte id of `data`. */
  id(data: Uint8Array): Buffer {
    if (!this.keyed) return blake3(data)
    this.keyed.reset()
    return this.keyed.update(data).digestBuffer()
  }
  /** The id of `data` as hex. */
  idHex(data: Uint8Array): string {
    return this.id(data).toString('hex')
  }
}

/** Incremental plain BLAKE3 for whole-file digests, fed while reading. */
export class StreamHasher {
  private readonly h = new Blake3Hasher()
  update(data: Uint8Array): this {
    this.h.update(data)
    return this
  }
  digestHex(): string {
    return this.h.digest('hex')
  }
}
