import type { Repository } from '../repo/index.js'

/** Options of `ChunkCache`. */
export interface ChunkCacheOptions {
  /** Plaintext bytes kept at most (least recently used chunks are dropped first). Default 64 MiB. */
  maxBytes?: number
  /** Chunk loads running at once over all readers (bounds memory held by loads in flight). Default 8. */
  maxLoads?: number
}

/**
 * A bounded cache of decoded chunks shared by every reader of a view: an LRU
 * by bytes, plus de-duplication of loads in flight (two readers asking for the
 * same chunk wait for one load) and a limit on loads running at once.
 *
 * Contract: `get(id)` resolves to the chunk's checked plaintext or rejects
 * with the error of `repo.loadBlob` (NotFoundError, IntegrityError,
 * RemoteError). Failed loads are not cached. Returned buffers are shared:
 * callers must not modify them.
 */
export class ChunkCache {
  private readonly repo: Repository
  private readonly maxBytes: number
  private readonly maxLoads: number
  /** Map order is recency order: the first key is the least recently used. */
  private readonly lru = new Map<string, Buffer>()
  private readonly loading = new Map<string, Promise<Buffer>>()
  private readonly waiting: (() => void)[] = []
  private running = 0
  private bytes = 0
  /** Counters for tests and diagnostics. */
  readonly stats = { hits: 0, loads: 0 }

  constructor(repo: Repository, o: ChunkCacheOptions = {}) {
    this.repo = repo
    this.maxBytes = o.maxBytes ?? 64 * 1024 * 1024
    this.maxLoads = o.maxLoads ?? 8
  }

  /** Plaintext bytes held now. */
  get sizeBytes(): number {
    return this.bytes
  }

  async get(id: string): Promise<Buffer> {
    const hit = this.lru.get(id)
    if (hit) {
      this.stats.hits++
      this.lru.delete(id)
      this.lru.set(id, hit)
      return hit
    }
    const pending = this.loading.get(id)
    if (pending) return pending
    const p = this.load(id)
    this.loading.set(id, p)
    try {
      return await p
    } finally {
      this.loading.delete(id)
    }
  }

  private async load(id: string): Promise<Buffer> {
    if (this.running >= this.maxLoads) await new Promise<void>((resolve) => this.waiting.push(resolve))
    this.running++
    let plain: Buffer
    try {
      this.stats.loads++
      plain = await this.repo.loadBlob(id)
    } finally {
      this.running--
      this.waiting.shift()?.()
    }
    // A chunk larger than the whole cache is returned but not kept.
    if (plain.length <= this.maxBytes) {
      this.lru.set(id, plain)
      this.bytes += plain.length
      while (this.bytes > this.maxBytes) {
        const [oldId, old] = this.lru.entries().next().value as [string, Buffer]
        this.lru.delete(oldId)
        this.bytes -= old.length
      }
    }
    return plain
  }
}
