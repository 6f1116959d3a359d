/**
 * retention/: which snapshots a `forget` keeps, with restic's bucket semantics: pure functions over a
 * snapshot list, an injected clock and a time zone. Imports errors only (no repository access).
 */
export * from './duration.js'
export * from './calendar.js'
export * from './policy.js'
