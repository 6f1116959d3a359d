/**
 * prune/: `forget` (a retention policy applied to the repository's snapshots: deletes snapshot objects) and
 * `prune` (deletes the data no snapshot needs, two-phase and lock-free: engine/gc). Imports retention/,
 * gc/, snapshot/, tree/, repo/ and below.
 */
export * from './forget.js'
export * from './prune.js'
