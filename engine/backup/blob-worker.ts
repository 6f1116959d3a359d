/**
 * Worker thread body: names a chunk (keyed BLAKE3), asks the local cache
 * whether it is stored already, and if not compresses and seals it, writing
 * the sealed bytes back into the same shared slot. See worker-pool.ts.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { AesGcmSealer, PlainSealer } from '../crypto/index.js'
import { IdHasher } from '../hash/index.js'
import { BlobPresence } from '../index/index.js'
import { BlobEncoder } from '../pack/index.js'
import type { WorkerInit, WorkerRequest, WorkerResponse } from './worker-pool.js'

const init = workerData as WorkerInit
const sealer = init.encKey ? new AesGcmSealer(Buffer.from(init.encKey)) : new PlainSealer()
const ids = new IdHasher(init.idKey ? Buffer.from(init.idKey) : null)
const slots = init.slots.map((s) => Buffer.from(s))
const encoders = new Map<number, BlobEncoder>()
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
    const slot = slots[req.slot]
    const buf = slot.subarray(0, req.length)
    const id = ids.id(buf)
    if (req.checkKnown && presence?.has(id)) {
      const res: WorkerResponse = { seq: req.seq, id: id.toString('hex'), known: true }
      parentPort!.postMessage(res)
      return
    }
    let encoder = encoders.get(req.level)
    if (!encoder) encoders.set(req.level, (encoder = new BlobEncoder(sealer, req.level)))
    const enc = encoder.encode(buf)
    if (enc.sealed.length > slot.length) throw new Error(`sealed blob (${enc.sealed.length} bytes) does not fit its slot (${slot.length})`)
    enc.sealed.copy(slot, 0)
    const res: WorkerResponse = {
      seq: req.seq, id: id.toString('hex'), known: false, sealedLength: enc.sealed.length, compression: enc.compression, rawLength: enc.rawLength,
    }
    parentPort!.postMessage(res)
  } catch (err) {
    parentPort!.postMessage({ seq: req.seq, error: err instanceof Error ? err.message : String(err) })
  }
})
