import { statSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { IndexCache } from '../dist/engine/index/index.js'
const [repoDir, cacheDir, sinceMs] = [process.argv[2], process.argv[3], Number(process.argv[4])]
const repoId = readdirSync(cacheDir)[0]
const c = IndexCache.open(cacheDir, repoId)
const newPacks = new Set()
for (const kind of ['data', 'meta']) for (const sub of readdirSync(join(repoDir, kind))) {
  if (sub.startsWith('.')) continue
  for (const f of readdirSync(join(repoDir, kind, sub))) if (statSync(join(repoDir, kind, sub, f)).mtimeMs >= sinceMs) newPacks.add(f)
}
const agg = {}
const hist = {}
for (const [id, loc] of c.allBlobs()) {
  if (!newPacks.has(loc.packId)) continue
  const a = agg[loc.type] ??= { n: 0, raw: 0, stored: 0 }
  a.n++; a.raw += loc.rawLength; a.stored += loc.length
  if (loc.type === 'data') { const b = loc.rawLength < 65536 ? '<64K' : loc.rawLength < 524288 ? '<512K' : loc.rawLength < 1048576 ? '<1M' : loc.rawLength < 2097152 ? '<2M' : '>=2M'; const h = hist[b] ??= { n: 0, raw: 0, stored: 0 }; h.n++; h.raw += loc.rawLength; h.stored += loc.length }
}
console.log(newPacks.size, 'new packs', agg, hist)
await c.close()
