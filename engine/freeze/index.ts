/**
 * freeze/: event-driven, immutable captures of a project (a snapshot object of
 * kind `freeze` with event, git, environment, compliance and verification
 * metadata), their verification report and the packs freezes protect.
 * Imports backup/, snapshot/, tree/, repo/ and below.
 */
export * from './adopt.js'
export * from './compliance.js'
export * from './environment.js'
export * from './freeze.js'
export * from './git.js'
export * from './manifest.js'
export * from './protect.js'
export * from './verify-freeze.js'
