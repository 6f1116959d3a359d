import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ArchivedError, ConfigError, ExistsError, IntegrityError, NotFoundError, RemoteError } from '../../errors.js'
import { ManualClock } from '../../testing/manual-clock.js'
import { MemoryRemote } from '../memory/index.js'
import type { ObjectInfo, Remote } from '../remote.js'
import { CircuitOpenError } from './circuit-breaker.js'
import { FaultyRemote } from './faulty.js'
import { RetryingRemote, isTransient, type RetryEvent, type RetryOptions } from './retrying.js'
import { RemoteTimeoutError } from './timeout.js'

const data = Buffer.from('some object bytes')

async function setup(o: RetryOptions = {}): Promise<{ inner: MemoryRemote; faulty: FaultyRemote; remote: RetryingRemote; clock: ManualClock; events: RetryEvent[] }> {
  const inner = await MemoryRemote.open({ name: 'retry' })
  await inner.put('obj', data)
  const faulty = new FaultyRemote(inner)
  const clock = new ManualClock({ autoSleep: true })
  const events: RetryEvent[] = []
  const remote = new RetryingRemote(faulty, { clock, random: () => 0.5, onRetry: (e) => events.push(e), ...o })
  return { inner, faulty, remote, clock, events }
}

async function names(remote: Remote, prefix: string): Promise<string[]> {
  const out: string[] = []
  for await (const info of remote.list(prefix)) out.push(info.name)
  return out
}

t.test('retries transient failures with exponential back-off and full jitter', async (t) => {
  const { faulty, remote, clock, events } = await setup()
  faulty.addFault({ method: 'get', name: 'obj', call: 1, error: true })
  faulty.addFault({ method: 'get', name: 'obj', call: 2, error: true })
  faulty.addFault({ method: 'get', name: 'obj', call: 3, error: true })
  t.ok((await remote.get('obj')).equals(data), 'the fourth attempt succeeds')
  t.equal(faulty.callCount('get'), 4)
  // random() = 0.5 of the ceilings 500, 1000, 2000 ms.
  t.same(clock.sleeps, [250, 500, 1000], 'delays double, scaled by the jitter')
  t.same(events.map((e) => [e.call, e.name, e.attempt, e.maxAttempts, e.delayMs]), [['get', 'obj', 2, 8, 250], ['get', 'obj', 3, 8, 500], ['get', 'obj', 4, 8, 1000]])
  t.equal(events[0].location, 'memory://retry')
  t.match(events[0].error.message, /injected fault: get obj/)
})

t.test('the jitter is uniform below a ceiling that is capped at maxDelayMs', async (t) => {
  const draws = [0.1, 0.9, 0.99, 0.5, 0.0]
  const { faulty, remote, clock } = await setup({ baseDelayMs: 1000, maxDelayMs: 3000, maxAttempts: 6, random: () => draws.shift()! })
  faulty.addFault({ method: 'stat', fromCall: 1, error: true })
  await t.rejects(remote.stat('obj'), RemoteError)
  // ceilings 1000, 2000, 3000 (capped from 4000), 3000, 3000
  t.same(clock.sleeps.map(Math.round), [100, 1800, 2970, 1500, 0])
})

t.test('gives up after maxAttempts with the last error as cause', async (t) => {
  const { faulty, remote, events } = await setup({ maxAttempts: 4 })
  faulty.down = true
  const err = await remote.stat('obj').catch((e: unknown) => e)
  t.ok(err instanceof RemoteError && err.transient, 'a transient RemoteError', { found: err })
  t.match((err as Error).message, /^stat obj failed 4 times in .*, giving up: remote down: stat obj$/)
  t.ok((err as Error).cause instanceof RemoteError, 'the last failure is the cause')
  t.equal(faulty.callCount('stat'), 4)
  t.equal(events.length, 3)
})

t.test('gives up when the next retry would start after maxTotalMs', async (t) => {
  const { faulty, remote, clock } = await setup({ baseDelayMs: 1000, maxTotalMs: 5000, random: () => 0.999 })
  faulty.down = true
  await t.rejects(remote.get('obj'), /giving up/)
  // waits ~1 s and ~2 s (3 s in all); a third wait of ~4 s would end after 5 s.
  t.equal(faulty.callCount('get'), 3)
  t.ok(clock.now() <= 5000, `stopped at ${clock.now()} ms`)
})

t.test('long transfers that fail part-way keep their retries; timeouts use up the time', async (t) => {
  // Each attempt takes 200 s of (virtual) time, then fails: maxTotalMs is 300 s.
  const slow = async (error: Error | true): Promise<{ attempts: number; err: unknown }> => {
    const { faulty, remote, clock } = await setup({ maxAttempts: 4, maxTotalMs: 300_000 })
    faulty.addFault({ method: 'put', delay: async () => clock.advance(200_000), error })
    const err = await remote.put('data/ab/big', Buffer.alloc(10)).catch((e: unknown) => e)
    return { attempts: faulty.callCount('put'), err }
  }
  const reset = await slow(true)
  t.equal(reset.attempts, 4, 'a reset after sending for a while: all 4 attempts, although they took 800 s')
  t.match((reset.err as Error).message, /failed 4 times/)
  const hung = await slow(new RemoteTimeoutError('memory://retry', { call: 'put', name: 'data/ab/big' }, 200_000))
  t.equal(hung.attempts, 2, 'timeouts count: no third attempt after 400 s')
  const stat = await setup({ maxAttempts: 4, maxTotalMs: 300_000 })
  stat.faulty.addFault({ method: 'stat', delay: async () => stat.clock.advance(200_000), error: true })
  await t.rejects(stat.remote.stat('obj'))
  t.equal(stat.faulty.callCount('stat'), 2, 'calls that move no data: their time counts')
})

t.test('never retries errors that are not transient', async (t) => {
  const cases: { name: string; error: Error }[] = [
    { name: 'NotFoundError', error: new NotFoundError('obj') },
    { name: 'ExistsError', error: new ExistsError('obj') },
    { name: 'ArchivedError', error: new ArchivedError('obj', { storageClass: 'DEEP_ARCHIVE', restoring: false }) },
    { name: 'IntegrityError', error: new IntegrityError('bad bytes') },
    { name: 'ConfigError', error: new ConfigError('bad bucket') },
    { name: 'non-transient RemoteError', error: new RemoteError('access denied', { transient: false }) },
    { name: 'open circuit', error: new CircuitOpenError('memory://x', { failures: 10, retryAfterMs: 30_000 }) },
    { name: 'TypeError', error: new TypeError('invalid name') },
  ]
  for (const c of cases) {
    const { faulty, remote, events } = await setup()
    faulty.addFault({ method: 'get', error: c.error })
    const err = await remote.get('obj').catch((e: unknown) => e)
    t.equal(err, c.error, `${c.name}: passed through unchanged`)
    t.equal(faulty.callCount('get'), 1, `${c.name}: one attempt`)
    t.equal(events.length, 0)
  }
  t.ok(isTransient(new RemoteTimeoutError('x', { call: 'get', name: 'obj' }, 1000)), 'timeouts are transient')
  t.notOk(isTransient(new Error('plain')))
})

t.test('a real missing object is not retried', async (t) => {
  const { faulty, remote } = await setup()
  await t.rejects(remote.get('missing'), NotFoundError)
  t.equal(faulty.callCount('get'), 1)
})

t.test('ambiguous writes', async (t) => {
  t.test('an exclusive put that landed before failing resolves on retry', async (t) => {
    const { inner, faulty, remote } = await setup()
    faulty.addFault({ method: 'put', name: 'config', call: 1, error: true, errorAfter: true })
    await remote.put('config', data, { exclusive: true })
    t.equal(faulty.callCount('put'), 2, 'retried once: the retry met ExistsError')
    t.ok((await inner.get('config')).equals(data))
  })

  t.test('an exclusive put meeting another writer\'s object still fails with ExistsError', async (t) => {
    const { inner, faulty, remote } = await setup()
    // The first attempt fails before writing; meanwhile someone else creates the name.
    faulty.addFault({ method: 'put', name: 'config', call: 1, error: true, action: () => void inner.put('config', Buffer.from('theirs')) })
    await t.rejects(remote.put('config', data, { exclusive: true }), ExistsError)
    t.equal((await inner.get('config')).toString(), 'theirs', 'their object is kept')
  })

  t.test('ExistsError without an earlier transient failure is never turned into success', async (t) => {
    const { remote } = await setup()
    await remote.put('config', data, { exclusive: true })
    await t.rejects(remote.put('config', data, { exclusive: true }), ExistsError, 'same content, first attempt: ExistsError as the contract says')
  })

  t.test('putFile: the stored object is compared with the file', async (t) => {
    const dir = t.testdir()
    const file = join(dir, 'pack')
    const big = Buffer.alloc(9 * 1024 * 1024 + 5, 7) // more than one comparison read
    writeFileSync(file, big)
    const { inner, faulty, remote } = await setup()
    faulty.addFault({ method: 'putFile', call: 1, error: true, errorAfter: true })
    await remote.putFile!('data/ab/pack', file, { exclusive: true })
    t.ok((await inner.get('data/ab/pack')).equals(big))
    t.equal(faulty.callCount('putFile'), 2)

    await inner.put('data/ab/other', Buffer.alloc(big.length, 8))
    faulty.addFault({ method: 'putFile', name: 'data/ab/other', call: 1, error: true })
    await t.rejects(remote.putFile!('data/ab/other', file, { exclusive: true }), ExistsError, 'different bytes of the same size')
  })
})

t.test('listings', async (t) => {
  const setupList = async (): Promise<Awaited<ReturnType<typeof setup>>> => {
    const s = await setup()
    for (let i = 0; i < 6; i++) await s.inner.put(`data/n${i}`, Buffer.from([i]))
    return s
  }

  t.test('a listing failing part-way is started again without yielding a name twice', async (t) => {
    const { faulty, remote, events } = await setupList()
    faulty.addFault({ method: 'list', call: 1, afterItems: 2, error: true })
    faulty.addFault({ method: 'list', call: 2, afterItems: 4, error: true })
    const got = await names(remote, 'data/')
    t.same([...got].sort(), ['data/n0', 'data/n1', 'data/n2', 'data/n3', 'data/n4', 'data/n5'])
    t.equal(new Set(got).size, got.length, 'each name once')
    t.equal(faulty.callCount('list'), 3)
    t.equal(events.length, 2)
  })

  t.test('a listing failing before its first name', async (t) => {
    const { faulty, remote } = await setupList()
    faulty.addFault({ method: 'list', call: 1, error: true })
    t.equal((await names(remote, 'data/')).length, 6)
  })

  t.test('progress resets the attempt count; no progress exhausts it', async (t) => {
    const { faulty, remote } = await setup({ maxAttempts: 3 })
    for (let i = 0; i < 6; i++) await remote.put(`data/n${i}`, Buffer.from([i]))
    // Each try yields one more name, then fails: 6 failures in all, more than maxAttempts, but each made progress.
    for (let i = 1; i <= 6; i++) faulty.addFault({ method: 'list', call: i, afterItems: i, error: true })
    t.equal((await names(remote, 'data/')).length, 6)
    faulty.clearFaults()
    faulty.addFault({ method: 'list', fromCall: 1, afterItems: 0, error: true })
    await t.rejects(names(remote, 'data/'), /list data\/ failed 3 times/)
  })

  t.test('a non-transient failure ends the listing', async (t) => {
    const { faulty, remote } = await setupList()
    const boom = new RemoteError('denied', { transient: false })
    faulty.addFault({ method: 'list', afterItems: 3, error: boom })
    const seen: ObjectInfo[] = []
    const err = await (async () => {
      for await (const info of remote.list('data/')) seen.push(info)
    })().catch((e: unknown) => e)
    t.equal(err, boom)
    t.equal(seen.length, 3)
    t.equal(faulty.callCount('list'), 1)
  })
})

t.test('archive and protection calls are retried, their fields kept', async (t) => {
  const inner = await MemoryRemote.open()
  let stateCalls = 0
  let protectCalls = 0
  const flaky: Remote = {
    properties: inner.properties,
    put: (n, d, o) => inner.put(n, d, o), get: (n, r) => inner.get(n, r), stat: (n) => inner.stat(n), list: (p) => inner.list(p), delete: (n) => inner.delete(n), close: () => inner.close(),
    archive: {
      provider: 'aws-s3', dataClass: 'DEEP_ARCHIVE', hotClass: 'STANDARD', dataNeedsRestore: true,
      state: async () => {
        if (++stateCalls === 1) throw new RemoteError('throttled', { transient: true })
        return { storageClass: 'DEEP_ARCHIVE', readable: false, restore: 'none' }
      },
      requestRestore: async () => {
        throw new ArchivedError('x', { storageClass: 'DEEP_ARCHIVE', restoring: true })
      },
    },
    protection: {
      mechanism: 'test lock', enforcedByRemote: true,
      protect: async () => {
        if (++protectCalls === 1) throw new RemoteError('reset', { transient: true })
      },
      isProtected: async () => true,
    },
  }
  const remote = new RetryingRemote(flaky, { clock: new ManualClock({ autoSleep: true }) })
  t.same([remote.archive?.provider, remote.archive?.dataClass, remote.archive?.hotClass, remote.archive?.dataNeedsRestore], ['aws-s3', 'DEEP_ARCHIVE', 'STANDARD', true])
  t.same(await remote.archive!.state('data/x'), { storageClass: 'DEEP_ARCHIVE', readable: false, restore: 'none' })
  t.equal(stateCalls, 2)
  await t.rejects(remote.archive!.requestRestore('data/x', { tier: 'Bulk', days: 1 }), ArchivedError)
  t.equal(remote.protection?.mechanism, 'test lock')
  t.equal(remote.protection?.enforcedByRemote, true)
  await remote.protection!.protect(['snapshots/a'], { retainUntil: null, legalHold: true })
  t.equal(protectCalls, 2)
  t.equal(await remote.protection!.isProtected('snapshots/a'), true)
  t.equal(remote.putFile, undefined, 'no putFile where inner has none')
  t.equal(remote.createWriter, undefined)
})
