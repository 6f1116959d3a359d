/**
 * Where did a snapshot's bytes go? Two read-only looks at a coldstore
 * repository, for chasing benchmark results (e.g. a milestone that added more
 * than restic did):
 *
 *   node dist/bench/inspect.js attribute --repo R [--cache-dir D] [<old> <new>]
 *     new chunks of snapshot <new> (default: the latest) that <old> (default:
 *     the one before) does not have, by dataset category (bench/dataset.ts),
 *     with raw and stored bytes and the files they belong to;
 *   node dist/bench/inspect.js duplicates --repo R [--cache-dir D]
 *     blobs stored in more than one pack (by the index objects): should be 0
 *     unless concurrent writers raced.
 *
 * The password comes from COLDSTORE_PASSWORD. `--json` prints one document.
 */
import { pathToFileURL } from 'node:url'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { findSnapshot, listSnapshots, openRepository, TreeReader, type Repository } from '../engine/index.js'
import { categoryOf } from './dataset.js'

export interface CategoryRow {
  category: string
  chunks: number
  rawBytes: number
  storedBytes: number
  files: number
  /** Up to three of the files. */
  examples: string[]
}

/** New chunks of snapshot `newRef` relative to `oldRef`, by dataset category (largest stored first). */
export async function attribute(repo: Repository, oldRef: string, newRef: string): Promise<CategoryRow[]> {
  const oldSnap = await findSnapshot(repo, oldRef)
  const newSnap = await findSnapshot(repo, newRef)
  const tr = new TreeReader(repo)
  const old = new Set<string>()
  for await (const [, n] of tr.walk(oldSnap.tree)) for (const c of n.chunks ?? []) old.add(c)
  const rows = new Map<string, CategoryRow & { all: Set<string> }>()
  const seen = new Set<string>()
  for await (const [p, n] of tr.walk(newSnap.tree)) {
    if (!n.chunks) continue
    const rel = p.toString().split('/').slice(1).join('/') // drop the source folder's own name
    for (const c of n.chunks) {
      if (old.has(c) || seen.has(c)) continue
      seen.add(c)
      const loc = repo.lookup(c)
      const cat = categoryOf(rel)
      let r = rows.get(cat)
      if (!r) rows.set(cat, (r = { category: cat, chunks: 0, rawBytes: 0, storedBytes: 0, files: 0, examples: [], all: new Set() }))
      r.chunks++
      r.rawBytes += loc?.rawLength ?? 0
      r.storedBytes += loc?.length ?? 0
      if (!r.all.has(rel)) {
        r.all.add(rel)
        if (r.examples.length < 3) r.examples.push(rel)
      }
    }
  }
  return [...rows.values()]
    .map(({ all, ...r }) => ({ ...r, files: all.size }))
    .sort((a, b) => b.storedBytes - a.storedBytes)
}

/** Blobs that the index objects place in more than one pack. */
export async function duplicates(repo: Repository): Promise<{ indexObjects: number; entries: number; unique: number; duplicates: number; duplicateBytes: number }> {
  const names: string[] = []
  for await (const o of repo.remote.list('index/')) names.push(o.name)
  const first = new Map<string, string>()
  let entries = 0
  let dups = 0
  let dupBytes = 0
  for (const name of names) {
    for (const p of await repo.loadIndexObject(name)) {
      for (const e of p.entries) {
        entries++
        const at = first.get(e.id)
        if (at === undefined) first.set(e.id, p.packId)
        else if (at !== p.packId) {
          dups++
          dupBytes += e.length
        }
      }
    }
  }
  return { indexObjects: names.length, entries, unique: first.size, duplicates: dups, duplicateBytes: dupBytes }
}

function arg(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : undefined
}

async function cli(argv: string[]): Promise<void> {
  const [cmd] = argv
  const url = arg(argv, '--repo') ?? process.env.COLDSTORE_REPO
  if ((cmd !== 'attribute' && cmd !== 'duplicates') || !url) {
    process.stderr.write('usage: inspect.js attribute --repo R [--cache-dir D] [--json] [<old> <new>] | duplicates --repo R [--cache-dir D] [--json]\n')
    process.exitCode = 2
    return
  }
  const cacheDir = arg(argv, '--cache-dir') ?? process.env.COLDSTORE_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'coldstore')
  const json = argv.includes('--json')
  const repo = await openRepository({ url, password: process.env.COLDSTORE_PASSWORD ?? null, cacheDir })
  try {
    await repo.syncIndex()
    if (cmd === 'duplicates') {
      const d = await duplicates(repo)
      process.stdout.write(json ? JSON.stringify(d) + '\n' : `${d.entries} index entries in ${d.indexObjects} index objects: ${d.unique} blobs, ${d.duplicates} stored again (${(d.duplicateBytes / 1e6).toFixed(2)} MB)\n`)
      return
    }
    const positional = argv.slice(1).filter((a, i, all) => !a.startsWith('--') && !(i > 0 && ['--repo', '--cache-dir'].includes(all[i - 1])))
    let [oldRef, newRef] = positional
    if (!oldRef || !newRef) {
      const snaps = (await listSnapshots(repo)).sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0))
      if (snaps.length < 2) throw new Error('attribute needs two snapshots')
      oldRef = snaps[snaps.length - 2].id
      newRef = snaps[snaps.length - 1].id
    }
    const rows = await attribute(repo, oldRef, newRef)
    if (json) {
      process.stdout.write(JSON.stringify({ old: oldRef, new: newRef, categories: rows }) + '\n')
      return
    }
    process.stdout.write(`new in ${newRef.slice(0, 8)} relative to ${oldRef.slice(0, 8)}:\n`)
    for (const r of rows) {
      process.stdout.write(`${r.category.padEnd(14)} ${String(r.chunks).padStart(6)} chunks ${(r.rawBytes / 1e6).toFixed(2).padStart(9)} MB raw ${(r.storedBytes / 1e6).toFixed(2).padStart(9)} MB stored  ${r.files} files (${r.examples.join(', ')})\n`)
    }
  } finally {
    await repo.close()
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  cli(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`inspect: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(1)
  })
}
