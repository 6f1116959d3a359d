/**
 * Worker thread body, for worker-pool.ts. Two kinds of work:
 * - a chunk in a shared slot: name it (keyed BLAKE3), look it up in the
 *   shared set of stored ids, and if it is not there compress and seal it in place;
 * - a batch of small files (each smaller than the chunker's minimum, so one
 *   chunk each): open, read, check and close them here with synchronous I/O,
 *   then name, digest, compress and seal each, writing the sealed blobs one
 *   after the other into the batch's slot;
 * - (restore) the blobs of one pack read, copied into a slot: open each,
 *   decompress it into the slot after the read, and check its id.
 */
import { closeSync, constants as fsc, fstatSync, openSync, readSync } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
// Modules, not their folders' index.ts: the bundler would otherwise load the whole index/ folder (and LMDB,
// its native addon and 16 MiB buffer) into every worker, ~50 ms of each worker's start.
import { AesGcmSealer, PlainSealer } from '../crypto/sealer.js'
import { IdHasher, hashHex } from '../hash/index.js'
import { IdSet } from '../index/id-set.js'
import { BlobEncoder, decodeBlobInto, newDecompressionContext } from '../pack/format.js'
import type { ChunkRequest, DecodeRequest, DecodeResult, FileResult, FilesRequest, PresenceRequest, WorkerInit, WorkerResponse } from './worker-pool.js'

const init = workerData as WorkerInit
const sealer = init.encKey ? new AesGcmSealer(Buffer.from(init.encKey)) : new PlainSealer()
const ids = new IdHasher(init.idKey ? Buffer.from(init.idKey) : null)
const slots = init.slots.map((s) => Buffer.from(s))
const encoders = new Map<number, BlobEncoder>()
let scratch = Buffer.alloc(0)
/** Ids stored already (shared with the main thread, which adds to it): known chunks are not compressed or sealed. */
let presence: IdSet | null = init.presence ? IdSet.view(init.presence) : null

function encoderFor(level: number): BlobEncoder {
  let e = encoders.get(level)
  if (!e) encoders.set(level, (e = new BlobEncoder(sealer, level)))
  return e
}

/**
 * Sealing (and, in restores, opening) allocates one buffer per blob
 * (node:crypto's output), dead as soon as it is copied into the slot. V8 frees such buffers only when it collects
 * the young generation, which it forces once ~32 MiB of them are waiting:
 * each worker held up to that much garbage. When the process runs with
 * --expose-gc (bin/coldstore does), a young-generation collection every
 * COLLECT_EVERY bytes sealed bounds it (a scavenge of this small heap takes
 * well under a millisecond).
 */
const collect = (globalThis as { gc?: (o: { type: 'minor'; execution: 'sync' }) => void }).gc
const COLLECT_EVERY = 8 * 1024 * 1024
let sealedSinceCollect = 0
function sealed(n: number): void {
  sealedSinceCollect += n
  if (collect && sealedSinceCollect >= COLLECT_EVERY) {
    sealedSinceCollect = 0
    collect({ type: 'minor', execution: 'sync' })
  }
}

function doChunk(req: ChunkRequest): WorkerResponse {
  const slot = slots[req.slot]
  const buf = slot.subarray(0, req.length)
  const id = ids.id(buf)
  if (req.checkKnown && presence?.has(id)) return { seq: req.seq, kind: 'chunk', id: id.toString('hex'), known: true }
  // Sealed in place, over the chunk it came from.
  const enc = encoderFor(req.level).encodeInto(buf, slot)
  sealed(enc.length)
  return { seq: req.seq, kind: 'chunk', id: id.toString('hex'), known: false, sealedLength: enc.length, compression: enc.compression, rawLength: enc.rawLength }
}

/** Reads a whole small file; null when it grew to `limit` bytes or more (the caller then reads it the normal way). */
function readSmall(path: Buffer, limit: number): { data: Buffer; after: { size: bigint; mtimeNs: bigint } } | null {
  let fd: number
  try {
    fd = openSync(path, fsc.O_RDONLY | (fsc.O_NOATIME ?? 0))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err
    fd = openSync(path, fsc.O_RDONLY) // O_NOATIME needs ownership
  }
  try {
    if (scratch.length < limit) scratch = Buffer.allocUnsafeSlow(limit)
    let n = 0
    for (;;) {
      const r = readSync(fd, scratch, n, limit - n, null)
      if (r === 0) break
      n += r
      if (n >= limit) return null
    }
    const st = fstatSync(fd, { bigint: true })
    return { data: scratch.subarray(0, n), after: { size: st.size, mtimeNs: st.mtimeNs } }
  } finally {
    closeSync(fd)
  }
}

function doFiles(req: FilesRequest): WorkerResponse {
  const slot = slots[req.slot]
  let at = 0
  const results: FileResult[] = []
  for (const f of req.files) {
    try {
      const r = readSmall(Buffer.from(f.path), req.limit)
      if (!r) {
        results.push({ ok: false, code: 'EGREW', message: 'grew while being read' })
        continue
      }
      const idBuf = ids.id(r.data)
      const base = {
        ok: true as const, id: idBuf.toString('hex'), blake3: hashHex(r.data), size: r.data.length,
        changed: r.after.size !== BigInt(f.size) || r.after.mtimeNs !== BigInt(f.mtimeNs) || r.data.length !== f.size,
        afterSize: Number(r.after.size),
      }
      if (presence?.has(idBuf)) {
        results.push({ ...base, known: true })
        continue
      }
      const enc = encoderFor(req.level).encodeInto(r.data, slot.subarray(at))
      results.push({ ...base, known: false, sealedOffset: at, sealedLength: enc.length, compression: enc.compression, rawLength: enc.rawLength })
      at += enc.length
      sealed(enc.length)
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      results.push({ ok: false, code: e.code ?? 'EIO', message: e.message })
    }
  }
  return { seq: req.seq, kind: 'files', results }
}

let dctx: ReturnType<typeof newDecompressionContext> | null = null

function doDecode(req: DecodeRequest): WorkerResponse {
  dctx ??= newDecompressionContext()
  const slot = slots[req.slot]
  const data = slot.subarray(0, req.dataLength)
  if (req.outOffset < req.dataLength || req.outOffset + req.blobs.reduce((n, b) => n + b.rawLength, 0) > slot.length) throw new Error('decode request does not fit its slot')
  const results: DecodeResult[] = []
  let at = req.outOffset
  for (const b of req.blobs) {
    const out = slot.subarray(at, at + b.rawLength)
    try {
      decodeBlobInto(data.subarray(b.offset, b.offset + b.length), b, sealer, dctx, out)
    } catch (err) {
      results.push({ ok: false, problem: 'damaged', message: err instanceof Error ? err.message : String(err) })
      continue
    }
    if (ids.idHex(out) !== b.id) {
      results.push({ ok: false, problem: 'mismatch', message: 'content does not match its id' })
      continue
    }
    results.push({ ok: true, offset: at })
    at += b.rawLength
    sealed(b.length) // opening allocates its output too
  }
  return { seq: req.seq, kind: 'decode', results }
}

parentPort!.on('message', (req: ChunkRequest | FilesRequest | DecodeRequest | PresenceRequest) => {
  if (req.kind === 'presence') {
    presence = IdSet.view(req.presence)
    return
  }
  try {
    parentPort!.postMessage(req.kind === 'chunk' ? doChunk(req) : req.kind === 'files' ? doFiles(req) : doDecode(req))
  } catch (err) {
    parentPort!.postMessage({ seq: req.seq, error: err instanceof Error ? err.message : String(err) })
  }
})
