import { openRepository } from '../dist/engine/index.js'
const repo = await openRepository({ url: process.argv[2], password: process.argv[4] ?? 'x', cacheDir: process.argv[3] })
const seen = new Map()
let dupN = 0, dupBytes = 0, total = 0
const names = []
for await (const o of repo.remote.list('index/')) names.push(o.name)
for (const n of names) {
  const packs = await repo.loadIndexObject(n)
  for (const p of packs) for (const e of p.entries) {
    total++
    const prev = seen.get(e.id)
    if (prev && prev !== p.packId) { dupN++; dupBytes += e.length }
    else seen.set(e.id, p.packId)
  }
}
console.log({ indexObjects: names.length, entries: total, unique: seen.size, dupN, dupMB: (dupBytes / 1e6).toFixed(2) })
await repo.close()
