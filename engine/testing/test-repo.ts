/**
 * Test helpers (not exported from engine/index.ts): a repository in a temp
 * dir with cheap key derivation and small chunks, and seeded test data.
 */
import { createCipheriv } from 'node:crypto'
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { keyedHash } from '../hash/index.js'
import { TEST_KDF } from '../crypto/index.js'
import { LocalRemote } from '../remote/index.js'
import { Repository } from '../repo/index.js'
import type { ChunkerAlgorithm, ChunkerParams } from '../chunker/index.js'

/** Small chunks so tests exercise many chunks with little data. */
export const TEST_CHUNKER: ChunkerParams = { minBytes: 16 * 1024, avgBytes: 64 * 1024, maxBytes: 256 * 1024 }

export interface TestRepo {
  repo: Repository
  repoDir: string
  cacheDir: string
  password: string | null
  reopen(): Promise<Repository>
}

/** Creates and opens a repository in `dir`/repo with its cache in `dir`/cache. */
export async function makeTestRepo(
  dir: string,
  o: { password?: string | null; chunker?: ChunkerParams; chunkerAlgorithm?: ChunkerAlgorithm; packSizeBytes?: number } = {},
): Promise<TestRepo> {
  const repoDir = join(dir, 'repo')
  const cacheDir = join(dir, 'cache')
  const password = o.password === undefined ? 'correct horse' : o.password
  const remote = await LocalRemote.open({ path: repoDir, create: true })
  await Repository.init(remote, {
    password, kdf: TEST_KDF, chunker: o.chunker ?? TEST_CHUNKER, chunkerAlgorithm: o.chunkerAlgorithm, packSizeBytes: o.packSizeBytes ?? 1024 * 1024,
    hostname: 'testhost', username: 'tester', now: new Date('2026-01-01T00:00:00Z'),
  })
  const open = async (): Promise<Repository> => {
    const r = await Repository.open(await LocalRemote.open({ path: repoDir }), { password, cacheDir })
    await r.syncIndex()
    return r
  }
  return { repo: await open(), repoDir, cacheDir, password, reopen: open }
}

/** Deterministic pseudo-random bytes (keyed BLAKE3 in counter mode): compressible only as much as random data. */
export function seededBytes(seed: string, length: number): Buffer {
  const key = Buffer.alloc(32)
  key.write(seed)
  const out = Buffer.allocUnsafe(length)
  const ctr = Buffer.alloc(8)
  for (let o = 0, i = 0; o < length; o += 32, i++) {
    ctr.writeBigUInt64LE(BigInt(i))
    keyedHash(key, ctr).copy(out, o, 0, Math.min(32, length - o))
  }
  return out
}

/** Text-like bytes (compressible, varied). */
export function seededText(seed: string, length: number): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'result', 'value', 'error', 'sample', 'model', 'train', 'loss', 'epoch']
  const r = seededBytes(seed, Math.ceil(length / 4) + 16)
  let s = ''
  let i = 0
  while (s.length < length) {
    s += `${words[r[i % r.length] % words.length]} ${r[(i + 1) % r.length]}.${r[(i + 2) % r.length]}${i % 9 === 0 ? '\n' : ' '}`
    i += 3
  }
  return Buffer.from(s.slice(0, length))
}

/** Writes a tree described as { 'a/b.txt': Buffer | string }. */
export function writeTree(root: string, files: Record<string, Buffer | string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const p = join(root, rel)
    mkdirSync(join(p, '..'), { recursive: true })
    writeFileSync(p, content)
  }
}

/** Seeded PRNG (mulberry32) for reproducible test choices: numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** Seeded incompressible bytes, fast (an AES-256-CTR keystream): for data that must not deduplicate or compress. */
export function randomData(seed: string, length: number): Buffer {
  return createCipheriv('aes-256-ctr', seededBytes(seed, 32), Buffer.alloc(16)).update(Buffer.alloc(Math.floor(length)))
}

/** Every regular file below `dir`, by path relative to it, with its bytes (for comparing restores). */
export function readTree(dir: string, base = dir, out = new Map<string, Buffer>()): Map<string, Buffer> {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n)
    if (statSync(p).isDirectory()) readTree(p, base, out)
    else out.set(relative(base, p), readFileSync(p))
  }
  return out
}
