/**
 * Test helper: the tests that run the built CLI (cli/, server/) build dist/
 * first when it is missing or older than a source file, so a single test file
 * runs standalone (`npx tap cli/cli.test.ts`) after an edit.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** The bundled CLI that bin/coldstore runs. */
export const CLI = join(ROOT, 'dist', 'bundle', 'coldstore.js')

function newestSource(dir: string): number {
  let newest = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p))
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(p).mtimeMs)
  }
  return newest
}

/** Runs tsc and the bundler when dist/bundle/coldstore.js is missing or older than a source of cli/, engine/ or server/. */
export function ensureBuilt(t: Test): void {
  const built = existsSync(CLI) ? statSync(CLI).mtimeMs : 0
  const src = Math.max(...['cli', 'engine', 'server'].map((d) => newestSource(join(ROOT, d))))
  if (built >= src) return
  t.comment(`dist/ is ${built ? 'stale' : 'missing'}: running tsc -p tsconfig.json and scripts/bundle.mjs`)
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' })
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'bundle.mjs')], { cwd: ROOT, stdio: 'inherit' })
}
