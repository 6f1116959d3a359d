import { openRepository, listSnapshots, TreeReader } from '../dist/engine/index.js'
import { categoryOf } from '../dist/bench/dataset.js'
const repo = await openRepository({ url: process.argv[2], password: 'x', cacheDir: process.argv[3] })
const snaps = (await listSnapshots(repo)).sort((a, b) => a.time < b.time ? -1 : 1)
const [a, b] = snaps.slice(-2)
const tr = new TreeReader(repo)
const old = new Set()
for await (const [p, n] of tr.walk(a.tree)) for (const c of n.chunks ?? []) old.add(c)
const agg = {}
const seen = new Set()
for await (const [p, n] of tr.walk(b.tree)) {
  if (!n.chunks) continue
  const rel = p.toString().split('/').slice(1).join('/')
  const cat = categoryOf(rel)
  for (const c of n.chunks) {
    if (old.has(c) || seen.has(c)) continue
    seen.add(c)
    const loc = repo.lookup(c)
    const x = agg[cat] ??= { chunks: 0, raw: 0, stored: 0, files: new Set() }
    x.chunks++; x.raw += loc.rawLength; x.stored += loc.length; x.files.add(rel)
  }
}
for (const [k, v] of Object.entries(agg)) console.log(k.padEnd(14), String(v.chunks).padStart(5), 'chunks', (v.raw/1e6).toFixed(2).padStart(7), 'MB raw', (v.stored/1e6).toFixed(2).padStart(7), 'MB stored', v.files.size, 'files', v.files.size < 4 ? [...v.files].join(' ') : '')
await repo.close()
