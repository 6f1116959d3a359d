/**
 * export/: self-contained export packages of a snapshot (package.ts) and
 * publishing them as GitHub release assets (github-release.ts).
 */
export * from './package.js'
export * from './github-release.js'
