#!/usr/bin/env node
/**
 * Bundles the compiled CLI (dist/cli/main.js) and the backup worker into
 * dist/bundle/, run by bin/coldstore. Why: Node 20 loads ES modules one file
 * at a time, and the ~90 files of the CLI, the engine and yargs took ~80 ms of
 * every command's start-up (0.31 s → 0.23 s for `coldstore --version`).
 * Native addons stay external (they are loaded from node_modules), and so do packages that load one
 * (ssh2 requires its optional .node bindings inside try/catch, which esbuild cannot bundle).
 * Run after tsc: `npm run build`.
 */
import { build } from 'esbuild'
import { rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const outdir = join(root, 'dist', 'bundle')
rmSync(outdir, { recursive: true, force: true })
await build({
  absWorkingDir: root,
  entryPoints: { coldstore: 'dist/cli/main.js', 'blob-worker': 'dist/engine/backup/blob-worker.js' },
  outdir,
  bundle: true,
  splitting: true, // the worker and the CLI share the engine's code
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Native addons, and the cloud SDKs: those load only in processes that open such a remote (import() in
  // engine/remote/registry.ts), straight from node_modules; ssh2 also has optional native parts.
  external: ['lmdb', 'zstd-napi', '@napi-rs/blake-hash', 'ssh2', 'ssh2-sftp-client', 'cpu-features', '@google-cloud/*', '@aws-sdk/*', '@smithy/*'],
  // Bundled CommonJS packages call require() for Node built-ins.
  banner: { js: "import { createRequire as __coldstoreRequire } from 'node:module'; const require = __coldstoreRequire(import.meta.url);" },
  sourcemap: 'linked',
  logLevel: 'warning',
})
