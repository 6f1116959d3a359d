import t from 'tap'
import { randomBytes } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import { IdSet } from './id-set.js'
import { seededRandom } from '../testing/test-repo.js'

t.test('holds what was added, nothing else, across growth', async (t) => {
  const s = IdSet.create()
  const start = s.byteLength
  const ids = Array.from({ length: 50_000 }, () => randomBytes(32))
  let added = 0
  for (const id of ids) if (s.add(id)) added++
  t.equal(added, ids.length, 'every new id is added once')
  t.equal(s.size, ids.length)
  t.ok(s.byteLength > start, 'the table grew')
  t.ok(s.byteLength <= ids.length * 35, `stays compact: ${s.byteLength} bytes for ${ids.length} ids`)
  t.notOk(s.add(ids[123]), 'adding again reports it was there')
  let missing = 0
  for (const id of ids) if (!s.has(id)) missing++
  t.equal(missing, 0, 'every added id is found')
  let extra = 0
  for (let i = 0; i < 50_000; i++) if (s.has(randomBytes(32))) extra++
  t.equal(extra, 0, 'random other ids are not found')
  t.ok(s.hasHex(ids[7].toString('hex')))
  t.notOk(s.hasHex('ab'.repeat(32)))
})

t.test('ids are told apart by their first 16 bytes; an all-zero prefix is never stored', async (t) => {
  const s = IdSet.create()
  const a = Buffer.alloc(32, 1)
  const b = Buffer.from(a)
  b[15] = 2 // differs inside the prefix
  const c = Buffer.from(a)
  c[16] = 9 // differs only after it
  t.ok(s.add(a))
  t.notOk(s.has(b))
  t.ok(s.has(c), 'same 16-byte prefix: the same entry')
  t.notOk(s.add(Buffer.alloc(32)), 'all-zero prefix refused')
  t.notOk(s.has(Buffer.alloc(32)))
  // Collisions in the slot index (same second word) are probed past.
  const d = Buffer.from(a)
  d[0] = 7
  t.ok(s.add(d))
  t.ok(s.has(d) && s.has(a))
})

t.test('serialize and deserialize round-trip', async (t) => {
  const s = IdSet.create()
  const ids = Array.from({ length: 3000 }, () => randomBytes(32))
  for (const id of ids) s.add(id)
  const data = s.serialize()
  t.equal(data.length, 3000 * 16)
  const r = IdSet.deserialize(data)
  t.equal(r.size, 3000)
  t.ok(ids.every((id) => r.has(id)))
  t.throws(() => IdSet.deserialize(Buffer.alloc(17)), /multiple of 16/)
})

t.test('another thread reads the set through its shared buffer, including ids added after it started', async (t) => {
  const s = IdSet.create(10)
  const early = randomBytes(32)
  s.add(early)
  const late = randomBytes(32)
  const absent = randomBytes(32)
  // The worker imports the compiled module the same way the blob workers do.
  const code = `
    import { parentPort, workerData } from 'node:worker_threads'
    const { IdSet } = await import(workerData.url)
    parentPort.on('message', (m) => {
      const v = IdSet.view(m.buffer)
      parentPort.postMessage(m.ids.map((h) => v.has(Buffer.from(h, 'hex'))))
    })
    parentPort.postMessage('ready')
  `
  const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), { workerData: { url: new URL('./id-set.ts', import.meta.url).href }, execArgv: process.execArgv })
  t.teardown(() => w.terminate())
  const next = (): Promise<unknown> => new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject) })
  t.equal(await next(), 'ready')
  s.add(late)
  w.postMessage({ buffer: s.buffer, ids: [early, late, absent].map((b) => b.toString('hex')) })
  t.same(await next(), [true, true, false])
})

t.test('delete removes exactly the ids asked for, also inside long probe runs', async (t) => {
  const r = seededRandom(77)
  const ids: Buffer[] = []
  for (let i = 0; i < 5000; i++) ids.push(Buffer.from(Array.from({ length: 32 }, () => Math.floor(r() * 256))))
  // Ids colliding on the home slot (same second word): one long run that deletions must keep intact.
  for (let i = 0; i < 40; i++) {
    const b = Buffer.from(Array.from({ length: 32 }, () => Math.floor(r() * 256)))
    b.writeUInt32LE(123456, 4)
    ids.push(b)
  }
  const s = IdSet.create(100) // grows several times while filling
  for (const id of ids) s.add(id)
  const gone = new Set<number>()
  for (let i = 0; i < ids.length; i += 3) {
    if (!s.delete(ids[i])) t.fail(`delete ${i} found nothing`)
    gone.add(i)
  }
  t.equal(s.delete(ids[0]), false, 'a second delete finds nothing')
  t.equal(s.size, ids.length - gone.size)
  let wrong = 0
  ids.forEach((id, i) => { if (s.has(id) === gone.has(i)) wrong++ })
  t.equal(wrong, 0, 'every kept id is found, no deleted one is')
  // Deleted ids can be added again.
  for (const i of gone) s.add(ids[i])
  t.ok(ids.every((id) => s.has(id)))
  t.equal(s.size, ids.length)
})
