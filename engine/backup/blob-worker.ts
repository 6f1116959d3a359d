/**
 * Worker thread body: names a chunk (keyed BLAKE3), asks the local cache
 * whether it is stored already, and if not compresses and seals it.
 * Runs in a worker_threads Worker; see worker-pool.ts.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { AesGcmSealer, PlainSealer } from '../crypto/index.js'
import { IdHasher } from '../hash/index.js'
import { BlobPresence } from '../index/index.js'
import { encodeBlob } from '../pack/index.js'
import type { WorkerInit, WorkerRequest, WorkerResponse } from './worker-pool.js'

const init = workerData as WorkerInit
const sealer = init.encKey ? new AesGcmSealer(Buffer.from(init.encKey)) : new PlainSealer()
const ids = new IdHasher(init.idKey ? Buffer.from(init.idKey) : null)
let presence: BlobPresence | null = null
if (init.cachePath) {
  try {
    presence = new BlobPresence(init.cachePath)
  } catch {
    presence = null // the cache is an optimisation here: without it every chunk is encoded and the main thread dedups
  }
}

parentPort!.on('message', (req: WorkerRequest) => {
  try {
    const buf = Buffer.from(req.buf.buffer, req.buf.byteOffset, req.buf.byteLength)
    const id = ids.id(buf)
    if (req.checkKnown && presence?.has(id)) {
      const res: WorkerResponse = { seq: req.seq, id: id.toString('hex'), known: true }
      parentPort!.postMessage(res)
      return
    }
    const enc = encodeBlob(buf, sealer, req.level)
    const sealed = new Uint8Array(enc.sealed.buffer, enc.sealed.byteOffset, enc.sealed.byteLength)
    const res: WorkerResponse = {
      seq: req.seq, id: id.toString('hex'), known: false, sealed, compression: enc.compression, rawLength: enc.rawLength,
    }
    // Transfer only when the sealed buffer owns its ArrayBuffer (not a slice of Node's pool).
    const transfer = enc.sealed.byteOffset === 0 && enc.sealed.byteLength === enc.sealed.buffer.byteLength ? [enc.sealed.buffer as ArrayBuffer] : []
    parentPort!.postMessage(res, transfer)
  } catch (err) {
    parentPort!.postMessage({ seq: req.seq, error: err instanceof Error ? err.message : String(err) })
  }
})
