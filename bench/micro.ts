/**
 * Micro-benchmark of coldstore's building blocks: the content-defined
 * chunker, BLAKE3 (one-shot and streaming), zstd (compress at several
 * levels, decompress) on pseudo-random and on text-like compressible data,
 * AES-256-GCM sealing, pack writing to a local repository (streamed, fsync'd),
 * and the LMDB blob index (inserts, lookups of present and absent ids).
 *
 * This script deliberately imports engine internals (../engine/chunker,
 * ../engine/hash) by relative path: it measures the building blocks in
 * isolation, which the public engine API does not expose. Nothing else
 * should import engine internals this way.
 *
 * Usage: node dist/bench/micro.js [--json]
 *   default: one JSON line per measurement as it completes, then a table.
 *   --json:  only one JSON document (environment + all results) at the end.
 *
 * MB/s means 10^6 bytes of uncompressed input (or decompressed output) per second;
 * the index benchmarks report operations per second instead.
 */
import { randomBytes as cryptoRandom } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { compress, decompress } from 'zstd-napi'
import { Chunker, DEFAULT_CHUNKER_PARAMS, gearTable } from '../engine/chunker/index.js'
import { AesGcmSealer } from '../engine/crypto/index.js'
import { hashBytes, StreamHasher } from '../engine/hash/index.js'
import { IdSet, IndexCache } from '../engine/index/index.js'
import { Compression, PackWriter, packObjectName, type EncodedBlob, type PackEntry } from '../engine/pack/index.js'
import { LocalRemote } from '../engine/remote/index.js'

const MiB = 1024 * 1024

/** One measurement. */
interface BenchResult {
  bench: string
  input: 'random' | 'text'
  level?: number
  /** Bytes processed per run. */
  bytes: number
  runs: number
  bestSeconds: number
  mbps: number
  /** Uncompressed / compressed size (zstd only). */
  ratio?: number
  /** Chunker only. */
  chunks?: number
  avgChunkBytes?: number
  /** Index benchmarks: operations per second (bytes and mbps are 0). */
  opsPerSec?: number
  ops?: number
}

const jsonOnly = process.argv.includes('--json')
const results: BenchResult[] = []

function record(r: BenchResult): void {
  results.push(r)
  if (!jsonOnly) process.stdout.write(JSON.stringify(r) + '\n')
}

/** Best wall time in seconds of `runs` calls of `fn` (the first run doubles as JIT warm-up). */
function bestOf(runs: number, fn: () => void): number {
  let best = Number.POSITIVE_INFINITY
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    fn()
    const s = Number(process.hrtime.bigint() - t0) / 1e9
    if (s < best) best = s
  }
  return best
}

function mbps(bytes: number, seconds: number): number {
  return Math.round(bytes / 1e6 / seconds)
}

/** Small seeded PRNG (xorshift32), so every run benchmarks the same bytes. */
class XorShift32 {
  private x: number
  constructor(seed: number) {
    this.x = seed >>> 0 || 1
  }
  next(): number {
    let x = this.x
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.x = x
    return x >>> 0
  }
  /** Integer in [0, n). */
  below(n: number): number {
    return this.next() % n
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]
  }
}

/** Incompressible bytes, written little-endian so they do not depend on the host. */
function randomBytes(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size)
  const rng = new XorShift32(seed)
  let j = 0
  for (; j + 4 <= size; j += 4) out.writeUInt32LE(rng.next(), j)
  for (; j < size; j++) out[j] = rng.next() & 255
  return out
}

const LEVELS = ['DEBUG', 'INFO', 'INFO', 'INFO', 'WARN', 'ERROR'] as const
const COMPONENTS = ['http', 'db.pool', 'scheduler', 'auth', 'cache', 'worker', 'storage.s3', 'api.v2', 'mailer', 'billing'] as const
const WORDS = (
  'request completed failed retry connection timeout user session token expired refreshed query rows ' +
  'returned inserted updated deleted cache miss hit evicted job started finished queued upload download ' +
  'bytes written read latency slow pool acquired released lock waiting granted backup snapshot chunk ' +
  'packed index rebuilt verify checksum mismatch ok invalid header payload missing field value config ' +
  'reloaded shutdown signal received listening port client closed stream reset peer unknown route'
).split(' ')
const PATHS = ['/api/v2/users', '/api/v2/orders', '/healthz', '/static/app.js', '/login', '/api/v2/search', '/metrics'] as const
const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'] as const

/**
 * Text-like compressible data: log lines with timestamps, levels, components,
 * varied words, numbers, hex ids and IPs. Built from a seeded PRNG, so it is
 * realistic-ish (zstd -3 compresses it a few times over) rather than one
 * repeated string that any compressor flattens.
 */
function textBytes(size: number, seed: number): Buffer {
  const rng = new XorShift32(seed)
  const parts: string[] = []
  let length = 0
  let ms = Date.UTC(2024, 0, 1)
  while (length < size) {
    ms += rng.below(250)
    const level = rng.pick(LEVELS)
    const comp = rng.pick(COMPONENTS)
    let line = `${new Date(ms).toISOString()} ${level.padEnd(5)} [${comp}] `
    const kind = rng.below(4)
    if (kind === 0) {
      const ip = `10.${rng.below(4)}.${rng.below(256)}.${rng.below(256)}`
      line += `${ip} ${rng.pick(METHODS)} ${rng.pick(PATHS)}/${rng.below(100000)} ${rng.pick([200, 200, 200, 201, 204, 304, 404, 500])} ${rng.below(90000)}B ${(rng.below(5000) / 10).toFixed(1)}ms`
    } else {
      const n = 3 + rng.below(9)
      const words: string[] = []
      for (let k = 0; k < n; k++) words.push(rng.pick(WORDS))
      line += words.join(' ')
      if (kind === 1) line += ` id=${rng.next().toString(16).padStart(8, '0')}${rng.below(65536).toString(16).padStart(4, '0')}`
      if (kind !== 3) line += ` n=${rng.below(rng.pick([10, 1000, 1000000]))}`
      if (kind === 3) line += ` user=u${rng.below(5000)} attempt=${1 + rng.below(5)}`
    }
    line += '\n'
    parts.push(line)
    length += line.length
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, size)
}

function benchChunker(input: 'random' | 'text', data: Uint8Array, readBuffer: number, runs: number): void {
  // Any fixed seed will do: speed does not depend on it.
  const seed = new Uint8Array(32).map((_, i) => i * 7 + 1)
  const chunker = new Chunker(DEFAULT_CHUNKER_PARAMS, gearTable(seed))
  let chunks = 0
  const seconds = bestOf(runs, () => {
    chunker.reset()
    chunks = 0
    for (let off = 0; off < data.length; off += readBuffer) {
      chunks += chunker.push(data.subarray(off, off + readBuffer)).length
    }
    chunks += 1 // the tail is the last chunk
  })
  record({
    bench: 'chunker', input, bytes: data.length, runs, bestSeconds: seconds, mbps: mbps(data.length, seconds),
    chunks, avgChunkBytes: Math.round(data.length / chunks),
  })
}

function benchBlake3(input: 'random' | 'text', data: Uint8Array, runs: number): void {
  let sink = 0
  const oneShot = bestOf(runs, () => {
    for (let off = 0; off < data.length; off += MiB) sink ^= hashBytes(data.subarray(off, off + MiB))[0]
  })
  record({ bench: 'blake3-oneshot-1MiB', input, bytes: data.length, runs, bestSeconds: oneShot, mbps: mbps(data.length, oneShot) })
  const streaming = bestOf(runs, () => {
    const h = new StreamHasher()
    for (let off = 0; off < data.length; off += 64 * 1024) h.update(data.subarray(off, off + 64 * 1024))
    sink ^= h.digestHex().charCodeAt(0)
  })
  record({ bench: 'blake3-stream-64KiB', input, bytes: data.length, runs, bestSeconds: streaming, mbps: mbps(data.length, streaming) })
  if (sink === -1) process.stdout.write('') // keeps `sink` observably used
}

/** Compresses `data` in 1 MiB blocks (about one chunk each, as the engine will), then decompresses them. */
function benchZstd(input: 'random' | 'text', data: Uint8Array, level: number, runs: number): void {
  let blocks: Buffer[] = []
  const cSeconds = bestOf(runs, () => {
    blocks = []
    for (let off = 0; off < data.length; off += MiB) {
      blocks.push(compress(data.subarray(off, off + MiB), { compressionLevel: level }))
    }
  })
  const compressed = blocks.reduce((n, b) => n + b.length, 0)
  const ratio = Math.round((data.length / compressed) * 100) / 100
  record({ bench: 'zstd-compress', input, level, bytes: data.length, runs, bestSeconds: cSeconds, mbps: mbps(data.length, cSeconds), ratio })
  let out = 0
  const dSeconds = bestOf(runs, () => {
    out = 0
    for (const b of blocks) out += decompress(b).length
  })
  if (out !== data.length) throw new Error(`zstd round trip lost bytes: ${out} != ${data.length}`)
  record({ bench: 'zstd-decompress', input, level, bytes: data.length, runs, bestSeconds: dSeconds, mbps: mbps(data.length, dSeconds), ratio })
}

/** AES-256-GCM sealing of 1 MiB blobs (what every stored chunk costs after compression). */
function benchSeal(data: Uint8Array, runs: number): void {
  const sealer = new AesGcmSealer(cryptoRandom(32))
  let n = 0
  const seconds = bestOf(runs, () => {
    for (let off = 0; off < data.length; off += MiB) n ^= sealer.seal(data.subarray(off, off + MiB)).length
  })
  if (n === -1) process.stdout.write('')
  record({ bench: 'aes-gcm-seal-1MiB', input: 'random', bytes: data.length, runs, bestSeconds: seconds, mbps: mbps(data.length, seconds) })
}

/**
 * Pack writing as a backup does it: sealed blobs streamed into 16 MiB packs
 * of a local repository (positioned writes into a temporary file, BLAKE3 of
 * the pack, sealed header, fsync, rename). Blobs are pre-sealed so only the
 * writing is timed; `blobBytes` sets their size (1 MiB chunks, 4 KiB small files).
 */
async function benchPackWrite(data: Uint8Array, blobBytes: number, runs: number): Promise<void> {
  const sealer = new AesGcmSealer(cryptoRandom(32))
  const blobs: { id: string; blob: EncodedBlob }[] = []
  for (let off = 0; off < data.length; off += blobBytes) {
    const plain = data.subarray(off, off + blobBytes)
    blobs.push({ id: hashBytes(plain).toString('hex'), blob: { sealed: sealer.seal(plain), compression: Compression.None, rawLength: plain.length } })
  }
  let best = Number.POSITIVE_INFINITY
  for (let r = 0; r < runs; r++) {
    const dir = mkdtempSync(join(tmpdir(), 'coldstore-micro-'))
    try {
      const remote = await LocalRemote.open({ path: dir })
      const t0 = process.hrtime.bigint()
      const commits: Promise<void>[] = []
      let w: PackWriter | null = null
      let object: ReturnType<LocalRemote['createWriter']> | null = null
      const seal = (): void => {
        const [pw, o] = [w!, object!]
        commits.push(pw.finish(sealer).then((p) => o.commit(packObjectName('data', p.id))))
        w = null
      }
      for (const b of blobs) {
        if (!w) {
          object = remote.createWriter('data/')
          w = new PackWriter('data', 16 * MiB, object)
        }
        if (w.wouldOverflow(b.blob.sealed.length)) {
          seal()
          object = remote.createWriter('data/')
          w = new PackWriter('data', 16 * MiB, object)
        }
        await w.add(b.id, 'data', b.blob)
        if (w.full) seal()
      }
      if (w) seal()
      await Promise.all(commits)
      const s = Number(process.hrtime.bigint() - t0) / 1e9
      if (s < best) best = s
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  const label = blobBytes >= MiB ? `${blobBytes / MiB}MiB` : `${blobBytes / 1024}KiB`
  record({ bench: `pack-write-local-${label}-blobs`, input: 'random', bytes: data.length, runs, bestSeconds: best, mbps: mbps(data.length, best) })
}

/**
 * The index cache's blob table (a slot file, read with pread): `count` blobs
 * in packs of 1,000 entries inserted the way index objects are loaded, then
 * lookups in random order of present ids
 * (`getBlob`, as restore and verify do), of absent ids (`hasBlob`, as a
 * backup asks for every new chunk, answered from the in-memory id set), and
 * from a worker's view of that set (`IdSet.has` on the shared buffer).
 */
async function benchIndex(count: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'coldstore-micro-'))
  try {
    const cache = IndexCache.open(dir, 'bench')
    const ids: string[] = []
    const rng = new XorShift32(0x1234567)
    const hex = (): string => {
      const b = Buffer.allocUnsafe(32)
      for (let j = 0; j < 32; j += 4) b.writeUInt32LE(rng.next(), j)
      return b.toString('hex')
    }
    const per = 1000
    const t0 = process.hrtime.bigint()
    for (let p = 0; p < count / per; p++) {
      const entries: PackEntry[] = []
      for (let i = 0; i < per; i++) {
        const id = hex()
        ids.push(id)
        entries.push({ id, type: 'data', compression: Compression.Zstd, offset: i * 1000, length: 1000, rawLength: 2000 })
      }
      cache.addPacks([{ packId: hex(), kind: 'data', size: per * 1000, entries }], { pending: false })
    }
    const insert = Number(process.hrtime.bigint() - t0) / 1e9
    record({ bench: 'index-insert', input: 'random', bytes: 0, runs: 1, bestSeconds: insert, mbps: 0, ops: count, opsPerSec: Math.round(count / insert) })
    const order = ids.map((_, i) => i)
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.below(i + 1)
      ;[order[i], order[j]] = [order[j], order[i]]
    }
    let found = 0
    const hit = bestOf(3, () => {
      found = 0
      for (const i of order) if (cache.getBlob(ids[i])) found++
    })
    if (found !== count) throw new Error(`index lost blobs: ${found} of ${count}`)
    record({ bench: 'index-getBlob-present', input: 'random', bytes: 0, runs: 3, bestSeconds: hit, mbps: 0, ops: count, opsPerSec: Math.round(count / hit) })
    const absent = Array.from({ length: 200_000 }, hex)
    let extra = 0
    const miss = bestOf(3, () => {
      extra = 0
      for (const id of absent) if (cache.hasBlob(id)) extra++
    })
    if (extra !== 0) throw new Error('absent ids reported present')
    record({ bench: 'index-hasBlob-absent', input: 'random', bytes: 0, runs: 3, bestSeconds: miss, mbps: 0, ops: absent.length, opsPerSec: Math.round(absent.length / miss) })
    const presence = IdSet.view(cache.storedIds().buffer)
    const keys = order.slice(0, 200_000).map((i) => Buffer.from(ids[i], 'hex'))
    let seen = 0
    const view = bestOf(3, () => {
      seen = 0
      for (const k of keys) if (presence.has(k)) seen++
    })
    if (seen !== keys.length) throw new Error('the shared id set lost blobs')
    record({ bench: 'idset-has-present', input: 'random', bytes: 0, runs: 3, bestSeconds: view, mbps: 0, ops: keys.length, opsPerSec: Math.round(keys.length / view) })
    await cache.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function printTable(rows: readonly BenchResult[]): void {
  const header = ['bench', 'input', 'level', 'MiB', 'MB/s', 'ratio', 'chunks', 'avg chunk', 'ops/s']
  const lines = rows.map((r) => [
    r.bench,
    r.input,
    r.level === undefined ? '' : String(r.level),
    r.bytes ? String(r.bytes / MiB) : '',
    r.bytes ? String(r.mbps) : '',
    r.ratio === undefined ? '' : r.ratio.toFixed(2),
    r.chunks === undefined ? '' : String(r.chunks),
    r.avgChunkBytes === undefined ? '' : `${(r.avgChunkBytes / 1024).toFixed(0)} KiB`,
    r.opsPerSec === undefined ? '' : String(r.opsPerSec),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)))
  const fmt = (cells: readonly string[]): string =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  process.stdout.write('\n' + fmt(header) + '\n' + widths.map((w) => '-'.repeat(w)).join('  ') + '\n')
  for (const l of lines) process.stdout.write(fmt(l) + '\n')
}

async function main(): Promise<void> {
  const random = randomBytes(256 * MiB, 0x2545f491)
  const text = textBytes(64 * MiB, 0x9e3779b9)
  const random64 = random.subarray(0, 64 * MiB)

  benchChunker('random', random, 4 * MiB, 3)
  benchChunker('text', text, 4 * MiB, 3)
  benchBlake3('random', random, 3)
  for (const [name, data] of [['random', random64], ['text', text]] as const) {
    for (const level of [1, 3, 6]) benchZstd(name, data, level, 3)
    // Level 19 is two orders of magnitude slower: 16 MiB, one run.
    benchZstd(name, data.subarray(0, 16 * MiB), 19, 1)
  }
  benchSeal(random, 3)
  await benchPackWrite(random, MiB, 3)
  await benchPackWrite(random.subarray(0, 32 * MiB), 4096, 3)
  await benchIndex(1_000_000)

  if (jsonOnly) {
    const doc = {
      node: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      date: new Date().toISOString(),
      results,
    }
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n')
  } else {
    printTable(results)
  }
}

await main()
