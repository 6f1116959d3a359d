/**
 * restore/: writes a snapshot (or part of it) back to disk, checking every
 * blob. Imports snapshot/, tree/, repo/, filter/ and below.
 */
export * from './restorer.js'
