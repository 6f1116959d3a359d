/**
 * index/: the LMDB local cache (blob → pack location, file-change cache,
 * pending packs) and the index-object encoding stored on the remote.
 * Imports pack/, crypto/, errors. Never the source of truth.
 */
export * from './index-cache.js'
export * from './index-object.js'
export * from './id-set.js'
