import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { RemoteError } from '../../errors.js'
import { ManualClock, settle } from '../../testing/manual-clock.js'
import { LocalRemote } from '../local/index.js'
import { MemoryRemote } from '../memory/index.js'
import type { ObjectInfo, ObjectWriter, Remote } from '../remote.js'
import { FaultyRemote } from './faulty.js'
import { RemoteTimeoutError, TimeoutRemote, type TimeoutOptions } from './timeout.js'

async function setup(o: TimeoutOptions = {}): Promise<{ faulty: FaultyRemote; remote: TimeoutRemote; clock: ManualClock }> {
  const inner = await MemoryRemote.open({ name: 'slow' })
  await inner.put('obj', Buffer.from('0123456789'))
  const faulty = new FaultyRemote(inner)
  const clock = new ManualClock()
  const remote = new TimeoutRemote(faulty, { clock, ...o })
  t.teardown(() => remote.close())
  return { faulty, remote, clock }
}

/** Tracks a promise's outcome without awaiting it. */
function watch<T>(p: Promise<T>): { state: () => 'pending' | 'resolved' | 'rejected'; error: () => unknown } {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending'
  let error: unknown
  p.then(
    () => (state = 'resolved'),
    (e: unknown) => {
      state = 'rejected'
      error = e
    },
  )
  return { state: () => state, error: () => error }
}

t.test('a hung call rejects with a transient RemoteTimeoutError naming the call and the limit', async (t) => {
  const { faulty, remote, clock } = await setup()
  faulty.addFault({ method: 'get', hang: true })
  const w = watch(remote.get('obj'))
  await settle()
  t.equal(faulty.hungCalls, 1)
  clock.advance(59_999)
  await settle()
  t.equal(w.state(), 'pending', 'not before the limit')
  clock.advance(1)
  await settle()
  t.equal(w.state(), 'rejected')
  const err = w.error()
  t.ok(err instanceof RemoteTimeoutError && err instanceof RemoteError && err.transient, 'transient RemoteError', { found: err })
  t.equal((err as RemoteTimeoutError).call, 'get')
  t.equal((err as RemoteTimeoutError).limitMs, 60_000)
  t.equal((err as Error).message, 'get obj on memory://slow: no answer within 60 s')
  faulty.releaseHung() // the abandoned call's late failure is dropped, not unhandled
  await settle()
})

t.test('limits per kind of call', async (t) => {
  const { remote } = await setup({ perCallMs: { delete: 5000 } })
  const MiB = 1024 * 1024
  const cases: { call: Parameters<TimeoutRemote['limitMs']>[0]; want: number }[] = [
    { call: { call: 'stat', name: 'x' }, want: 30_000 },
    { call: { call: 'list', name: 'data/' }, want: 30_000 },
    { call: { call: 'state', name: 'x' }, want: 30_000 },
    { call: { call: 'delete', name: 'x' }, want: 5000 },
    { call: { call: 'get', name: 'x' }, want: 60_000 },
    { call: { call: 'get', name: 'x', bytes: MiB }, want: 68_000 },
    { call: { call: 'put', name: 'x', bytes: 16 * MiB }, want: 188_000 },
    { call: { call: 'write', name: 'data/', bytes: 128 * 1024 }, want: 61_000 },
  ]
  for (const c of cases) t.equal(remote.limitMs(c.call), c.want, `${c.call.call} ${c.call.bytes ?? ''}`)
  const custom = new TimeoutRemote(await MemoryRemote.open(), { callMs: 1000, transferMs: 2000, minBytesPerSecond: MiB })
  t.equal(custom.limitMs({ call: 'stat', name: 'x' }), 1000)
  t.equal(custom.limitMs({ call: 'put', name: 'x', bytes: 3 * MiB }), 5000)
})

t.test('putFile gets the allowance of the file size', async (t) => {
  const { faulty, remote, clock } = await setup({ transferMs: 1000, minBytesPerSecond: 1000 })
  const file = join(t.testdir(), 'f')
  writeFileSync(file, Buffer.alloc(5000))
  faulty.addFault({ method: 'putFile', hang: true })
  const w = watch(remote.putFile!('data/f', file))
  // The wrapper reads the file's size (real I/O) before it sets its timer and calls on.
  while (faulty.hungCalls === 0) await settle()
  clock.advance(5999)
  await settle()
  t.equal(w.state(), 'pending')
  clock.advance(1)
  await settle()
  t.match((w.error() as Error).message, /putFile data\/f .*within 6 s/)
})

t.test('calls that answer in time clear their timers and pass results and errors through', async (t) => {
  const { remote, clock } = await setup()
  t.equal((await remote.get('obj')).toString(), '0123456789')
  await remote.put('other', Buffer.from('x'))
  t.same(await remote.stat('other'), { name: 'other', size: 1 })
  await t.rejects(remote.stat('missing'), { name: 'NotFoundError' })
  const listed: string[] = []
  for await (const info of remote.list('')) listed.push(info.name)
  t.same(listed.sort(), ['obj', 'other'])
  t.equal(clock.pendingTimers(), 0, 'no timer left behind')
})

t.test('a late answer after the timeout is dropped', async (t) => {
  const { faulty, remote, clock } = await setup({ callMs: 100 })
  let release = (): void => {}
  faulty.addFault({ method: 'stat', delay: () => new Promise<void>((resolve) => (release = resolve)) })
  const w = watch(remote.stat('obj'))
  await settle()
  clock.advance(100)
  await settle()
  t.ok(w.error() instanceof RemoteTimeoutError)
  release()
  await settle()
  t.equal(w.state(), 'rejected', 'stays rejected')
})

t.test('listings are bounded per step, not as a whole', async (t) => {
  const { faulty, remote, clock } = await setup({ callMs: 1000 })
  for (let i = 0; i < 3; i++) await faulty.put(`data/n${i}`, Buffer.from([i]))
  // A slow consumer: a long time passes between steps, which does not count.
  const seen: string[] = []
  for await (const info of remote.list('data/')) {
    seen.push(info.name)
    clock.advance(5000)
  }
  t.equal(seen.length, 3)

  faulty.addFault({ method: 'list', hang: true })
  const it = remote.list('data/')[Symbol.asyncIterator]()
  const w = watch(it.next())
  await settle()
  clock.advance(1000)
  await settle()
  const err = w.error()
  t.ok(err instanceof RemoteTimeoutError, 'a hung step times out', { found: err })
  t.match((err as Error).message, /^list data\/ on memory:\/\/slow: no answer within 1 s$/)
})

t.test('writer calls are bounded; abort is not', async (t) => {
  const clock = new ManualClock()
  const local = await LocalRemote.open({ path: t.testdir(), create: true })
  let hangWrites = false
  const hungWriter = (w: ObjectWriter): ObjectWriter => ({
    write: (d) => (hangWrites ? new Promise<void>(() => {}) : w.write(d)),
    commit: (n) => w.commit(n),
    abort: () => w.abort(),
  })
  const inner: Remote = Object.assign(Object.create(local) as LocalRemote, { createWriter: (dir: string) => hungWriter(local.createWriter(dir)) })
  const remote = new TimeoutRemote(inner, { clock, transferMs: 1000, minBytesPerSecond: 1024 })
  const w = remote.createWriter!('data/')
  await w.write(Buffer.alloc(10))
  await w.commit('data/ab/obj')
  t.equal((await local.stat('data/ab/obj')).size, 10)
  t.equal(clock.pendingTimers(), 0)
  hangWrites = true
  const w2 = remote.createWriter!('data/')
  const pending = watch(w2.write(Buffer.alloc(2048)))
  await settle()
  clock.advance(2999)
  await settle()
  t.equal(pending.state(), 'pending', 'the limit grows with the write size')
  clock.advance(1)
  await settle()
  t.match((pending.error() as Error).message, /^write data\/ .*within 3 s/)
  await w2.abort()
  t.pass('abort goes through')
})

t.test('the wrapper forwards what inner has', async (t) => {
  const local = await LocalRemote.open({ path: t.testdir(), create: true })
  const remote = new TimeoutRemote(local)
  t.equal(remote.properties, local.properties)
  t.equal(remote.protection?.mechanism, local.protection.mechanism)
  t.type(remote.createWriter, 'function')
  t.equal(remote.putFile, undefined)
  t.equal(remote.archive, undefined)
  const faulty = new TimeoutRemote(new FaultyRemote(await MemoryRemote.open()))
  t.type(faulty.putFile, 'function')
  t.equal(faulty.createWriter, undefined)
  const infos: ObjectInfo[] = []
  for await (const info of faulty.list('')) infos.push(info)
  t.same(infos, [])
})
