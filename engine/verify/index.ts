/**
 * verify/: structural and data checks returning typed findings; repair of
 * the index from pack headers. Imports snapshot/, tree/, repo/ and below.
 */
export * from './verifier.js'
export * from './repair.js'
export * from './repair-snapshots.js'
