import { Worker } from 'node:worker_threads'
import type { IdSet } from '../index/index.js'
import type { Compression } from '../pack/index.js'

/** Data every blob worker starts with. */
export interface WorkerInit {
  encKey: Uint8Array | null
  idKey: Uint8Array | null
  /** The set of stored blob ids (IdSet.buffer), or null to treat every chunk as new. */
  presence: SharedArrayBuffer | null
  /** The shared slots chunks are passed in (and sealed blobs passed back in). */
  slots: SharedArrayBuffer[]
}

/** Name (and unless known, compress and seal in place) the chunk in a slot. */
export interface ChunkRequest {
  kind: 'chunk'
  seq: number
  slot: number
  length: number
  level: number
  checkKnown: boolean
}

/** Read and store a batch of small files (each one chunk); sealed blobs go into the slot one after another. */
export interface FilesRequest {
  kind: 'files'
  seq: number
  slot: number
  level: number
  /** Files must be smaller than this; a file that grew to it is answered with code EGREW. */
  limit: number
  /** `path` as bytes; `size` and `mtimeNs` as seen by lstat, to detect changes while reading. */
  files: { path: Uint8Array; size: number; mtimeNs: string }[]
}

/** What a worker read of one small file. */
interface SmallFileRead {
  ok: true
  id: string
  blake3: string
  size: number
  /** Size or mtime differ from the lstat the walker saw, or the bytes read differ from it. */
  changed: boolean
  afterSize: number
}

/** What a worker says of one small file: stored already, sealed into the slot, or not readable. */
export type FileResult =
  | (SmallFileRead & { known: true })
  | (SmallFileRead & { known: false; sealedOffset: number; sealedLength: number; compression: Compression; rawLength: number })
  | { ok: false; code: string; message: string }

/** One blob of a pack read, to decode in a worker (restore). */
export interface DecodeBlob {
  id: string
  /** Offset and length of the sealed blob inside the request's `data`. */
  offset: number
  length: number
  compression: Compression
  rawLength: number
}

/**
 * Open, decompress and id-check the blobs of one ranged pack read, which is
 * in the slot's first `dataLength` bytes; plaintexts go into the slot from
 * `outOffset` on, one after the other.
 */
export interface DecodeRequest {
  kind: 'decode'
  seq: number
  slot: number
  dataLength: number
  outOffset: number
  blobs: DecodeBlob[]
}

/** The set of stored blob ids grew into a new buffer: use it from now on. */
export interface PresenceRequest {
  kind: 'presence'
  seq: number
  presence: SharedArrayBuffer
}

/** Where a decoded blob is in the slot, or why it could not be decoded. */
export type DecodeResult =
  | { ok: true; offset: number }
  | { ok: false; problem: 'damaged' | 'mismatch'; message: string }

export type WorkerResponse =
  | { seq: number; kind: 'decode'; results: DecodeResult[] }
  | { seq: number; kind: 'chunk'; id: string; known: true }
  | { seq: number; kind: 'chunk'; id: string; known: false; sealedLength: number; compression: Compression; rawLength: number }
  | { seq: number; kind: 'files'; results: FileResult[] }
  | { seq: number; kind: 'presence' }

/** What the pool returns for one chunk. `sealed` is a view of the slot: copy it before releasing the slot. */
export type ChunkResult =
  | { id: string; known: true }
  | { id: string; known: false; sealed: Buffer; compression: Compression; rawLength: number }

interface Worker_ {
  worker: Worker
  busy: number
}

/**
 * A fixed pool of worker threads that name, compress and seal chunks.
 *
 * Memory is bounded by construction: chunks travel in a fixed set of
 * SharedArrayBuffer slots (each big enough for the largest chunk plus
 * sealing overhead); a worker seals a chunk in place and answers with its
 * length. Nothing large is allocated per chunk on the main thread, which
 * matters because ArrayBuffers moved between threads escape the receiving
 * thread's garbage-collection accounting.
 */
export class BlobWorkerPool {
  private readonly workers: Worker_[] = []
  private readonly slots: SharedArrayBuffer[]
  private readonly free: number[]
  private readonly slotWaiters: ((slot: number) => void)[] = []
  private readonly waiting = new Map<number, { resolve: (r: WorkerResponse) => void; reject: (e: Error) => void; w: Worker_ }>()
  private seq = 0
  private failed: Error | null = null

  /** The set of stored blob ids the workers check chunks against (it may be replaced as it grows). */
  private readonly presence: (() => IdSet) | null
  private sentPresence: SharedArrayBuffer | null = null

  constructor(o: { workers: number; slotCount: number; slotBytes: number; encKey: Uint8Array | null; idKey: Uint8Array | null; presence?: () => IdSet }) {
    this.slots = Array.from({ length: o.slotCount }, () => new SharedArrayBuffer(o.slotBytes))
    this.free = this.slots.map((_, i) => i)
    this.presence = o.presence ?? null
    this.init = { encKey: o.encKey, idKey: o.idKey, presence: null, slots: this.slots }
    this.workerCount = Math.max(1, o.workers)
  }

  private readonly init: WorkerInit
  private readonly workerCount: number

  /**
   * Starts the workers, on first use: a backup that finds nothing new (an
   * unchanged re-run) never pays for starting them (~50 ms of CPU each).
   */
  private start(): void {
    this.init.presence = this.sentPresence = this.presence?.().buffer ?? null
    for (let i = 0; i < this.workerCount; i++) {
      // A small young generation: workers allocate little besides Buffers (whose bytes live outside the heap), and
      // V8's default let each worker's heap grow by ~25 MB over a long backup.
      const worker = new Worker(new URL('./blob-worker.js', import.meta.url), { workerData: this.init, resourceLimits: { maxYoungGenerationSizeMb: 4 } })
      const w: Worker_ = { worker, busy: 0 }
      worker.on('message', (m: WorkerResponse | { seq: number; error: string }) => this.onMessage(m))
      worker.on('error', (err) => this.fail(err))
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`blob worker exited with code ${code}`))
      })
      this.workers.push(w)
    }
  }

  /** Size of one slot: the largest chunk that can be processed. */
  get slotBytes(): number {
    return this.slots[0].byteLength
  }

  /** Waits for a free slot and returns its index; the caller copies its chunk into `slotView(i)`. */
  async acquire(): Promise<number> {
    const s = this.free.pop()
    if (s !== undefined) return s
    return new Promise<number>((resolve) => this.slotWaiters.push(resolve))
  }

  /** Returns a slot to the pool. */
  release(slot: number): void {
    const next = this.slotWaiters.shift()
    if (next) next(slot)
    else this.free.push(slot)
  }

  slotView(slot: number): Buffer {
    return Buffer.from(this.slots[slot])
  }

  private fail(err: Error): void {
    this.failed = err
    for (const w of this.waiting.values()) w.reject(err)
    this.waiting.clear()
  }

  private onMessage(m: WorkerResponse | { seq: number; error: string }): void {
    const p = this.waiting.get(m.seq)
    if (!p) return
    this.waiting.delete(m.seq)
    p.w.busy--
    if ('error' in m) p.reject(new Error(`blob worker: ${m.error}`))
    else p.resolve(m)
  }

  private send(req: ChunkRequest | FilesRequest | DecodeRequest, weight: number): Promise<WorkerResponse> {
    if (this.failed) return Promise.reject(this.failed)
    if (this.workers.length === 0) this.start()
    else if (this.presence) {
      // The set grew into a new buffer: workers switch before their next request (messages arrive in order).
      const b = this.presence().buffer
      if (b !== this.sentPresence) {
        this.sentPresence = b
        for (const w of this.workers) w.worker.postMessage({ kind: 'presence', seq: 0, presence: b } satisfies PresenceRequest)
      }
    }
    let w = this.workers[0]
    for (const x of this.workers) if (x.busy < w.busy) w = x
    w.busy += weight
    return new Promise<WorkerResponse>((resolve, reject) => {
      this.waiting.set(req.seq, { resolve: (r) => { w.busy -= weight - 1; resolve(r) }, reject, w })
      w.worker.postMessage(req)
    })
  }

  /**
   * Names the chunk in `slot` (its first `length` bytes) and, unless it is
   * already stored (checkKnown), compresses and seals it in place.
   */
  async process(slot: number, length: number, opts: { level: number; checkKnown: boolean }): Promise<ChunkResult> {
    const m = await this.send({ kind: 'chunk', seq: ++this.seq, slot, length, level: opts.level, checkKnown: opts.checkKnown }, 1)
    if (m.kind !== 'chunk') throw new Error('blob worker answered the wrong request')
    if (m.known) return { id: m.id, known: true }
    return { id: m.id, known: false, compression: m.compression, rawLength: m.rawLength, sealed: Buffer.from(this.slots[slot], 0, m.sealedLength) }
  }

  /** Reads and stores a batch of small files in a worker; sealed blobs are in `slot` at each result's offset. */
  async processFiles(slot: number, files: FilesRequest['files'], opts: { level: number; limit: number }): Promise<FileResult[]> {
    const m = await this.send({ kind: 'files', seq: ++this.seq, slot, level: opts.level, limit: opts.limit, files }, Math.max(1, Math.ceil(files.length / 8)))
    if (m.kind !== 'files') throw new Error('blob worker answered the wrong request')
    return m.results
  }

  /**
   * Opens, decompresses and id-checks blobs of one pack read in a worker.
   * The read is in the slot's first `dataLength` bytes; plaintexts are
   * written into the slot from `outOffset` on. Returns each blob's plaintext
   * (a view of the slot: use it before releasing the slot) or the reason it
   * could not be decoded.
   */
  async decode(slot: number, dataLength: number, outOffset: number, blobs: DecodeBlob[]): Promise<(Buffer | { problem: 'damaged' | 'mismatch'; message: string })[]> {
    const bytes = blobs.reduce((n, b) => n + b.length, 0)
    const m = await this.send({ kind: 'decode', seq: ++this.seq, slot, dataLength, outOffset, blobs }, Math.max(1, Math.ceil(bytes / (4 * 1024 * 1024))))
    if (m.kind !== 'decode') throw new Error('blob worker answered the wrong request')
    return m.results.map((r, i) => (r.ok ? Buffer.from(this.slots[slot], r.offset, blobs[i].rawLength) : { problem: r.problem, message: r.message }))
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()))
  }
}
