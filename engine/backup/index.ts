/**
 * backup/: walker → reader → chunker → worker pool (hash, compress, seal) →
 * packer → remote. Bounded memory whatever the data size. Imports snapshot/,
 * tree/, repo/, filter/ and below; never restore/ or verify/.
 */
export * from './archiver.js'
