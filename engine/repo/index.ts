/**
 * repo/: the repository (config, keys, packs, index objects, sealed JSON
 * objects) over a Remote. The only module that combines remote, pack, index
 * and crypto. Must not import tree/, snapshot/, backup/, restore/ or verify/.
 */
export * from './config.js'
export * from './repository.js'
