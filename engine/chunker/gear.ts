/**
 * Gear table derivation for the content-defined chunker. The table is part
 * of the on-disk format: changing it changes every cut point, which would
 * silently destroy deduplication against existing snapshots.
 */
import { ConfigError } from '../errors.js'
import { keyedHash } from '../hash/index.js'

/** Length in bytes of a gear seed (a BLAKE3 key). */
export const GEAR_SEED_BYTES = 32

/** Domain-separation byte prefixed to every gear-table hash input (ASCII 'g'). */
const GEAR_DOMAIN = 0x67

/**
 * Derives the 256-entry Gear table used by {@link Chunker} from a 32-byte seed.
 *
 * Exact rule (format): for each `i` in 0..255,
 * `gear[i]` = the first 4 bytes, read as a little-endian uint32, of
 * keyed BLAKE3-256 (key = `seed`) over the 2-byte input `[0x67, i]`.
 *
 * The seed is secret in encrypted repositories so that chunk boundaries (and
 * hence chunk sizes) do not leak information about known plaintexts.
 *
 * @param seed - exactly 32 bytes
 * @returns 256 uint32 values
 * @throws ConfigError when the seed is not 32 bytes long
 */
export function gearTable(seed: Uint8Array): Uint32Array {
  if (seed.length !== GEAR_SEED_BYTES) {
    throw new ConfigError(`gear seed must be ${GEAR_SEED_BYTES} bytes, got ${seed.length}`)
  }
  // keyedHash wants a Buffer key; wrap the caller's bytes without copying.
  const key = Buffer.from(seed.buffer, seed.byteOffset, seed.byteLength)
  const table = new Uint32Array(256)
  const input = Buffer.alloc(2)
  input[0] = GEAR_DOMAIN
  for (let i = 0; i < 256; i++) {
    input[1] = i
    // readUInt32LE pins the byte order regardless of the host's endianness.
    table[i] = keyedHash(key, input).readUInt32LE(0)
  }
  return table
}
