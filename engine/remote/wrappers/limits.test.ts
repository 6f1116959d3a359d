/** The concurrency and bandwidth limits, and rate parsing. */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError } from '../../errors.js'
import { ManualClock, settle } from '../../testing/manual-clock.js'
import { LocalRemote } from '../local/index.js'
import { MemoryRemote } from '../memory/index.js'
import { BandwidthLimitRemote, TokenBucket, parseByteRate } from './bandwidth.js'
import { ConcurrencyLimitRemote, Semaphore } from './concurrency.js'
import { FaultyRemote } from './faulty.js'

const KiB = 1024
const MiB = 1024 * 1024

t.test('parseByteRate', async (t) => {
  const good: [string | number, number][] = [
    ['20MiB/s', 20 * MiB], ['1.5GiB/s', 1.5 * 1024 * MiB], ['512KiB/s', 512 * KiB], ['100B/s', 100],
    ['500KB/s', 500_000], ['500kB/s', 500_000], ['2MB/s', 2_000_000], ['1GB/s', 1e9], ['1048576', MiB], [' 20 MiB/s ', 20 * MiB], [4096, 4096],
  ]
  for (const [v, want] of good) t.equal(parseByteRate(v), want, JSON.stringify(v))
  const bad: (string | number)[] = ['', 'fast', '20MiB', '20 mib/s', '20MiBps', '20Mbit/s', '-1MiB/s', '0', '0MiB/s', '0.5', 'MiB/s', '1e6', '20TiB/s', '1/s', 0, -5, Number.NaN, Number.POSITIVE_INFINITY]
  for (const v of bad) t.throws(() => parseByteRate(v), ConfigError, JSON.stringify(v))
  t.throws(() => parseByteRate('fast'), /like 20MiB\/s/)
})

t.test('Semaphore: at most N holders, first come first served', async (t) => {
  const s = new Semaphore(2)
  const order: number[] = []
  const gates: (() => void)[] = []
  const runs = Array.from({ length: 5 }, (_, i) =>
    s.run(async () => {
      order.push(i)
      await new Promise<void>((resolve) => gates.push(resolve))
    }),
  )
  await settle()
  t.same(order, [0, 1])
  t.equal(s.inUse, 2)
  t.equal(s.queued, 3)
  gates.shift()!()
  await settle()
  t.same(order, [0, 1, 2], 'the oldest waiter goes next')
  while (gates.length) {
    gates.shift()!()
    await settle()
  }
  await Promise.all(runs)
  t.same(order, [0, 1, 2, 3, 4])
  t.equal(s.inUse, 0)
  t.throws(() => new Semaphore(0), RangeError)
})

t.test('ConcurrencyLimitRemote', async (t) => {
  t.test('runs at most N calls of the inner remote at once', async (t) => {
    const inner = await MemoryRemote.open()
    await inner.put('obj', Buffer.from('x'))
    const faulty = new FaultyRemote(inner)
    const gates: (() => void)[] = []
    faulty.addFault({ method: 'get', delay: () => new Promise<void>((resolve) => gates.push(resolve)) })
    const remote = new ConcurrencyLimitRemote(faulty, 3)
    t.equal(remote.properties.maxConnections, 3, 'properties report the lower limit')
    const gets = Array.from({ length: 7 }, () => remote.get('obj'))
    await settle()
    t.equal(faulty.callCount('get'), 3, 'three reached the remote')
    t.equal(remote.inFlight, 3)
    gates.shift()!()
    await settle()
    t.equal(faulty.callCount('get'), 4, 'one finished, one more started')
    let most = 0
    while (gates.length) {
      most = Math.max(most, remote.inFlight)
      gates.shift()!()
      await settle()
    }
    const got = await Promise.all(gets)
    t.ok(got.every((b) => b.toString() === 'x'), 'all 7 answered')
    t.equal(faulty.callCount('get'), 7)
    t.equal(most, 3, 'never more than 3 at once')
  })

  t.test('a failing call frees its slot', async (t) => {
    const remote = new ConcurrencyLimitRemote(await MemoryRemote.open(), 1)
    await t.rejects(remote.get('missing'))
    await remote.put('a', Buffer.from('a'))
    t.equal(remote.inFlight, 0)
  })

  t.test('a listing holds no slot between its steps', async (t) => {
    const inner = await MemoryRemote.open()
    for (let i = 0; i < 3; i++) await inner.put(`k/${i}`, Buffer.from([i]))
    const remote = new ConcurrencyLimitRemote(inner, 1)
    const read: number[] = []
    // With one slot, reading each listed object inside the loop would deadlock if the listing kept it.
    for await (const info of remote.list('k/')) read.push((await remote.get(info.name))[0])
    t.same(read.sort(), [0, 1, 2])
  })

  t.test('the default limit is the remote\'s maxConnections', async (t) => {
    const inner = await MemoryRemote.open()
    const remote = new ConcurrencyLimitRemote(inner)
    t.equal(remote.properties, inner.properties)
    t.equal(new ConcurrencyLimitRemote(inner, 100).properties.maxConnections, 16, 'a higher limit does not raise maxConnections')
  })
})

t.test('TokenBucket', async (t) => {
  t.test('a full bucket lets one burst through, then paces at the rate', async (t) => {
    const clock = new ManualClock({ autoSleep: true })
    const b = new TokenBucket(MiB, { clock })
    await b.take(MiB)
    t.equal(clock.now(), 0, 'the burst costs no time')
    await b.take(MiB)
    t.equal(clock.now(), 1000)
    await b.take(MiB / 2)
    t.equal(clock.now(), 1500)
    clock.advance(10_000)
    await b.take(MiB)
    t.equal(clock.now(), 11_500, 'idle time refills up to one burst, not more')
    await b.take(MiB)
    t.equal(clock.now(), 12_500)
  })

  t.test('concurrent takers queue behind each other\'s debt', async (t) => {
    const clock = new ManualClock()
    const b = new TokenBucket(1000, { clock, burstBytes: 1000 })
    const done: number[] = []
    const takes = [1000, 1000, 1000, 500].map((n, i) => b.take(n).then(() => done.push(i)))
    await settle()
    t.same(done, [0])
    clock.advance(1000)
    await settle()
    t.same(done, [0, 1])
    clock.advance(1000)
    await settle()
    t.same(done, [0, 1, 2])
    clock.advance(499)
    await settle()
    t.same(done, [0, 1, 2], 'the last one waits for its half second')
    clock.advance(1)
    await Promise.all(takes)
    t.same(done, [0, 1, 2, 3])
  })

  t.test('refunds', async (t) => {
    const clock = new ManualClock({ autoSleep: true })
    const b = new TokenBucket(1000, { clock })
    await b.take(1000)
    b.refund(600)
    await b.take(600)
    t.equal(clock.now(), 0)
  })
})

t.test('BandwidthLimitRemote', async (t) => {
  t.test('put, putFile and writer bytes count against the upload rate', async (t) => {
    const clock = new ManualClock({ autoSleep: true })
    const faulty = new FaultyRemote(await MemoryRemote.open())
    const remote = new BandwidthLimitRemote(faulty, { uploadBytesPerSecond: MiB, clock })
    await remote.put('a', Buffer.alloc(MiB))
    t.equal(clock.now(), 0, 'one burst')
    await remote.put('b', Buffer.alloc(2 * MiB))
    t.equal(clock.now(), 2000)
    const dir = t.testdir()
    const file = join(dir, 'f')
    writeFileSync(file, Buffer.alloc(3 * MiB))
    await remote.putFile!('c', file)
    t.equal(clock.now(), 5000, 'putFile pays the file\'s size')
    t.equal((await faulty.stat('c')).size, 3 * MiB)
    await remote.get('c')
    t.equal(clock.now(), 5000, 'downloads are not limited by the upload rate')

    const local = await LocalRemote.open({ path: join(dir, 'repo'), create: true })
    const limitedLocal = new BandwidthLimitRemote(local, { uploadBytesPerSecond: MiB, clock })
    const w = limitedLocal.createWriter!('data/')
    for (let i = 0; i < 4; i++) await w.write(Buffer.alloc(MiB / 2))
    await w.commit('data/ab/x')
    t.equal(clock.now(), 5000 + 1000, 'a local writer\'s writes are paced (2 MiB: 1 MiB burst + 1 s)')
    t.equal((await local.stat('data/ab/x')).size, 2 * MiB)
  })

  t.test('gets count against the download rate', async (t) => {
    const clock = new ManualClock({ autoSleep: true })
    const inner = await MemoryRemote.open()
    await inner.put('big', Buffer.alloc(3 * MiB))
    const remote = new BandwidthLimitRemote(inner, { downloadBytesPerSecond: MiB, clock })
    await remote.get('big')
    t.equal(clock.now(), 2000, 'a whole-object get pays after the call for what it got')
    await remote.get('big', { offset: 0, length: MiB })
    t.equal(clock.now(), 3000, 'a ranged get pays its length')
    await remote.get('big', { offset: 3 * MiB - 100, length: MiB })
    t.equal(clock.now(), 4000, 'a short read pays the whole length first...')
    await remote.get('big', { offset: 0, length: MiB - 100 })
    t.equal(clock.now(), 4000, '...and is refunded what it did not get')
    await remote.put('x', Buffer.alloc(10 * MiB))
    t.equal(clock.now(), 4000, 'uploads are not limited by the download rate')
    await t.rejects(remote.get('missing', { offset: 0, length: MiB }))
    await remote.get('big', { offset: 0, length: MiB })
    t.equal(clock.now(), 5000, 'a failed get is refunded')
  })

  t.test('no limit without a rate', async (t) => {
    const clock = new ManualClock({ autoSleep: true })
    const remote = new BandwidthLimitRemote(await MemoryRemote.open(), { clock })
    await remote.put('a', Buffer.alloc(10 * MiB))
    await remote.get('a')
    t.equal(clock.now(), 0)
    t.equal(remote.upload, null)
    t.equal(remote.download, null)
  })
})
