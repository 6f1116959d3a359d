/**
 * pack/: the pack file format (sealed, optionally zstd-compressed blobs
 * followed by a sealed header) and a writer. Imports crypto/, hash/, errors.
 */
export * from './format.js'
export * from './pack-writer.js'
