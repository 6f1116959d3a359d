/**
 * chunker/: content-defined chunking (FastCDC-style Gear hash with normalized
 * chunking) and the seed-derived Gear table. Imports only hash/ and errors.
 */
export { gearTable, GEAR_SEED_BYTES, CHUNKER_ALGORITHMS, DEFAULT_CHUNKER_ALGORITHM, type ChunkerAlgorithm } from './gear.js'
export {
  Chunker,
  DEFAULT_CHUNKER_PARAMS,
  CHUNKER_MIN_BYTES_FLOOR,
  CHUNKER_MAX_BYTES_CEILING,
  validateChunkerParams,
} from './chunker.js'
export type { ChunkerParams } from './chunker.js'
