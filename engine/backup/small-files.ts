import type { Packer } from './packer.js'
import type { BlobWorkerPool, FileResult } from './worker-pool.js'

/** What the batcher answers for one file. */
export type SmallFileOutcome = FileResult

interface Pending {
  path: Buffer
  size: number
  mtimeNs: bigint
  resolve: (r: SmallFileOutcome) => void
  reject: (e: unknown) => void
}

/** Files per batch, and raw bytes per batch (their sealed forms must fit one slot). */
const MAX_FILES = 64
const MAX_BYTES = 2 * 1024 * 1024

/**
 * Gathers small files (each smaller than the chunker's minimum, so one chunk
 * each) into batches that a worker reads and stores in one message: for
 * small files the round trip, not the work, is the cost. A batch goes out
 * when it is full or when the event loop has nothing else to add to it.
 */
export class SmallFileBatcher {
  private batch: Pending[] = []
  private bytes = 0
  private scheduled = false
  private readonly pool: BlobWorkerPool
  private readonly packer: Packer
  private readonly level: number
  private readonly limit: number

  constructor(o: { pool: BlobWorkerPool; packer: Packer; level: number; limitBytes: number }) {
    this.pool = o.pool
    this.packer = o.packer
    this.level = o.level
    this.limit = o.limitBytes
  }

  /** Reads and stores one small file in a worker; resolves with what happened to it. */
  add(path: Buffer, size: number, mtimeNs: bigint): Promise<SmallFileOutcome> {
    return new Promise((resolve, reject) => {
      this.batch.push({ path, size, mtimeNs, resolve, reject })
      this.bytes += size
      if (this.batch.length >= MAX_FILES || this.bytes >= MAX_BYTES) this.flush()
      else if (!this.scheduled) {
        this.scheduled = true
        setImmediate(() => {
          this.scheduled = false
          this.flush()
        })
      }
    })
  }

  private flush(): void {
    if (this.batch.length === 0) return
    const batch = this.batch
    this.batch = []
    this.bytes = 0
    void this.send(batch)
  }

  private async send(batch: Pending[]): Promise<void> {
    let slot = -1
    try {
      slot = await this.pool.acquire()
      const results = await this.pool.processFiles(
        slot,
        batch.map((p) => ({ path: p.path, size: p.size, mtimeNs: p.mtimeNs.toString() })),
        { level: this.level, limit: this.limit },
      )
      const view = this.pool.slotView(slot)
      const adds: Promise<boolean>[] = []
      for (let i = 0; i < batch.length; i++) {
        const r = results[i]
        if (r.ok && !r.known && !this.packer.known(r.id)) {
          // Written straight from the slot: it is released only when every add has resolved.
          adds.push(this.packer.add(r.id, 'data', { sealed: view.subarray(r.sealedOffset, r.sealedOffset + r.sealedLength), compression: r.compression, rawLength: r.rawLength }))
        }
      }
      await Promise.all(adds)
      for (let i = 0; i < batch.length; i++) batch[i].resolve(results[i])
    } catch (err) {
      for (const p of batch) p.reject(err)
    } finally {
      if (slot >= 0) this.pool.release(slot)
    }
  }
}
