import { ConfigError, FormatError } from '../errors.js'
import { CHUNKER_ALGORITHMS, type ChunkerAlgorithm } from '../chunker/index.js'

/** Current repository format version (FORMAT.md). Bump when old readers could no longer read new repositories. */
export const FORMAT_VERSION = 1

/** The `config` object, stored as plain JSON (it holds no secrets). */
export interface RepoConfig {
  format: 'coldstore'
  version: number
  /** Random 32-byte repository id, hex. */
  id: string
  created: string
  encryption: 'aes-256-gcm' | 'none'
  chunker: {
    algorithm: ChunkerAlgorithm
    min_bytes: number
    avg_bytes: number
    max_bytes: number
    /** Gear-table seed, hex: only in unencrypted repositories (encrypted ones derive it from the master key). */
    seed?: string
  }
  pack_size_bytes: number
  compression: { algorithm: 'zstd'; level: number }
}

export const MIN_PACK_BYTES = 1024 * 1024
export const MAX_PACK_BYTES = 256 * 1024 * 1024

/** Parses and checks the stored config. */
export function parseConfig(bytes: Uint8Array): RepoConfig {
  let c: RepoConfig
  try {
    c = JSON.parse(Buffer.from(bytes).toString('utf8')) as RepoConfig
  } catch (err) {
    throw new FormatError('repository config is damaged: not valid JSON', { cause: err })
  }
  if (!c || c.format !== 'coldstore') throw new FormatError('not a coldstore repository (config has no "format": "coldstore")')
  if (c.version > FORMAT_VERSION) throw new FormatError(`repository format version ${c.version} is newer than this coldstore supports (${FORMAT_VERSION}); upgrade coldstore`)
  if (c.version !== FORMAT_VERSION) throw new FormatError(`unknown repository format version ${c.version}`)
  if (!/^[0-9a-f]{64}$/.test(c.id)) throw new FormatError('repository config is damaged: bad id')
  if (c.encryption !== 'aes-256-gcm' && c.encryption !== 'none') throw new FormatError(`unknown encryption ${String(c.encryption)}`)
  if (c.encryption === 'none' && !/^[0-9a-f]{64}$/.test(c.chunker?.seed ?? '')) throw new FormatError('repository config is damaged: unencrypted repository without chunker seed')
  if (!CHUNKER_ALGORITHMS.includes(c.chunker?.algorithm)) {
    throw new FormatError(`unknown chunker algorithm ${JSON.stringify(c.chunker?.algorithm)}: the repository was written by a newer coldstore; upgrade coldstore`)
  }
  if (!(c.pack_size_bytes >= MIN_PACK_BYTES && c.pack_size_bytes <= MAX_PACK_BYTES)) throw new FormatError('repository config is damaged: bad pack size')
  return c
}

/** Validates a requested pack size (bytes). */
export function checkPackSize(n: number): void {
  if (!Number.isInteger(n) || n < MIN_PACK_BYTES || n > MAX_PACK_BYTES) {
    throw new ConfigError(`pack size must be between ${MIN_PACK_BYTES} and ${MAX_PACK_BYTES} bytes (16–64 MiB recommended), got ${n}`)
  }
}
