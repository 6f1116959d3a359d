import { Worker } from 'node:worker_threads'
import type { Compression } from '../pack/index.js'

/** Data every blob worker starts with. */
export interface WorkerInit {
  encKey: Uint8Array | null
  idKey: Uint8Array | null
  cachePath: string | null
}

export interface WorkerRequest {
  seq: number
  buf: Uint8Array
  level: number
  checkKnown: boolean
}

export type WorkerResponse =
  | { seq: number; id: string; known: true }
  | { seq: number; id: string; known: false; sealed: Uint8Array; compression: Compression; rawLength: number}

/** What the pool returns for one chunk. */
export type ChunkResult =
  | { id: string; known: true }
  | { id: string; known: false; sealed: Buffer; compression: Compression; rawLength: number }

interface Slot {
  worker: Worker
  busy: number
}

/**
 * A fixed pool of worker threads that hash, compress and seal chunks.
 * Buffers are transferred, not copied: a buffer handed to `process` must
 * not be used by the caller afterwards.
 */
export class BlobWorkerPool {
  private readonly slots: Slot[] = []
  private readonly waiting = new Map<number, { resolve: (r: ChunkResult) => void; reject: (e: Error) => void; slot: Slot }>()
  private seq = 0
  private failed: Error | null = null

  constructor(size: number, init: WorkerInit) {
    for (let i = 0; i < Math.max(1, size); i++) {
      const worker = new Worker(new URL('./blob-worker.js', import.meta.url), { workerData: init })
      const slot: Slot = { worker, busy: 0 }
      worker.on('message', (m: WorkerResponse | { seq: number; error: string }) => this.onMessage(m))
      worker.on('error', (err) => this.fail(err))
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`blob worker exited with code ${code}`))
      })
      this.slots.push(slot)
    }
  }

  private fail(err: Error): void {
    this.failed = err
    for (const w of this.waiting.values()) w.reject(err)
    this.waiting.clear()
  }

  private onMessage(m: WorkerResponse | { seq: number; error: string }): void {
    const w = this.waiting.get(m.seq)
    if (!w) return
    this.waiting.delete(m.seq)
    w.slot.busy--
    if ('error' in m) return w.reject(new Error(`blob worker: ${m.error}`))
    if (m.known) return w.resolve({ id: m.id, known: true })
    w.resolve({
      id: m.id, known: false, compression: m.compression, rawLength: m.rawLength,
      sealed: Buffer.from(m.sealed.buffer, m.sealed.byteOffset, m.sealed.byteLength),
    })
  }

  /** Names a chunk and, unless it is already stored (checkKnown), compresses and seals it. */
  process(buf: Uint8Array, opts: { level: number; checkKnown: boolean }): Promise<ChunkResult> {
    if (this.failed) return Promise.reject(this.failed)
    let slot = this.slots[0]
    for (const s of this.slots) if (s.busy < slot.busy) slot = s
    slot.busy++
    const seq = ++this.seq
    return new Promise<ChunkResult>((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject, slot })
      const req: WorkerRequest = { seq, buf, level: opts.level, checkKnown: opts.checkKnown }
      const owns = buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength
      slot.worker.postMessage(req, owns ? [buf.buffer as ArrayBuffer] : [])
    })
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()))
  }
}
