/**
 * Gear table derivation for the content-defined chunker. The table is part
 * of the on-disk format: changing it changes every cut point, which would
 * silently destroy deduplication against existing snapshots.
 */
import { ConfigError } from '../errors.js'
import { keyedHash } from '../hash/index.js'

/**
 * Chunker algorithms (the repository config's `chunker.algorithm`):
 * - `gear32-fastcdc`: the first, used by repositories created up to 0.1.0;
 * - `gear32z-fastcdc`: the same cut rule with `gear[0] = 0`, so a run of 32
 *   or more zero bytes always ends a chunk (once past `min_bytes`).
 *   Files with zero-filled space (SQLite and other page-structured
 *   databases, VM images, binaries) then cut at page boundaries, and
 *   a rewritten page costs a chunk near the minimum size instead of ~1.3 MiB:
 *   on the bench's database file a milestone added 6.2 MB instead of 10.3 MB
 *   (restic, whose Rabin hash is 0 over zeros, added 6.2 MB). Default for
 *   new repositories.
 */
export type ChunkerAlgorithm = 'gear32-fastcdc' | 'gear32z-fastcdc'

export const CHUNKER_ALGORITHMS: readonly ChunkerAlgorithm[] = ['gear32-fastcdc', 'gear32z-fastcdc']
export const DEFAULT_CHUNKER_ALGORITHM: ChunkerAlgorithm = 'gear32z-fastcdc'

/** Length in bytes of a gear seed (a BLAKE3 key). */
export const GEAR_SEED_BYTES = 32

/** Domain-separation byte prefixed to every gear-table hash input (ASCII 'g'). */
const GEAR_DOMAIN = 0x67

/**
 * Derives the 256-entry Gear table used by {@link Chunker} from a 32-byte seed.
 *
 * Exact rule (format): for each `i` in 0..255,
 * `gear[i]` = the first 4 bytes, read as a little-endian uint32, of
 * keyed BLAKE3-256 (key = `seed`) over the 2-byte input `[0x67, i]`;
 * then, for `gear32z-fastcdc`, `gear[0]` = 0.
 *
 * The seed is secret in encrypted repositories so that chunk boundaries (and
 * hence chunk sizes) do not leak information about known plaintexts.
 *
 * @param seed - exactly 32 bytes
 * @param algorithm - default `gear32-fastcdc` (the table as first defined)
 * @returns 256 uint32 values
 * @throws ConfigError when the seed is not 32 bytes long
 */
export function gearTable(seed: Uint8Array, algorithm: ChunkerAlgorithm = 'gear32-fastcdc'): Uint32Array {
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
  // Over zero bytes h = 2h + gear[0]; with gear[0] = 0 the hash of 32 zeros is 0, which every mask accepts.
  if (algorithm === 'gear32z-fastcdc') table[0] = 0
  return table
}
