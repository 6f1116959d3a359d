/**
 * audit/: the hash-chained audit trail. Imports repo/, snapshot/ and below.
 */
export * from './audit.js'
