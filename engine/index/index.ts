/**
 * index/: the local cache (blob → pack location and the file-change cache
 * in pread/pwrite slot files; packs, pending packs and loaded index objects
 * in LMDB; the in-memory id set) and the index-object encoding stored on the
 * remote. Imports pack/, crypto/, hash/, errors. Never the source of truth.
 */
export * from './index-cache.js'
export * from './index-object.js'
export * from './id-set.js'
