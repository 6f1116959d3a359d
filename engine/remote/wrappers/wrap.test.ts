/**
 * The whole wrapper stack (wrapRemote): conformance over memory and local remotes, also with 10 % of calls
 * failing or hanging; staging; forwarding of capabilities; how openRemote applies it.
 */
import t from 'tap'
import { existsSync, readdirSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, RemoteError } from '../../errors.js'
import { runRemoteSuite } from '../../testing/remote-suite.js'
import { HangClock, ManualClock, settle } from '../../testing/manual-clock.js'
import { seededRandom } from '../../testing/test-repo.js'
import { LocalRemote } from '../local/index.js'
import { MemoryRemote } from '../memory/index.js'
import { openRemote, wrapForKind, type RemoteSettings } from '../registry.js'
import type { Remote } from '../remote.js'
import { STAGE_PREFIX, StagedObjectWriter } from '../staged-writer.js'
import { BandwidthLimitRemote } from './bandwidth.js'
import { CircuitBreakerRemote, type CircuitEvent } from './circuit-breaker.js'
import { ConcurrencyLimitRemote } from './concurrency.js'
import { ForwardingRemote, type CallInfo } from './forward.js'
import { FaultyRemote, flakyFaults, type Fault } from './faulty.js'
import { RetryingRemote, type RetryEvent } from './retrying.js'
import { StagingRemote } from './staging.js'
import { TimeoutRemote } from './timeout.js'
import { wrapRemote } from './wrap.js'

t.test('conformance: memory remote, wrapped', (t) => runRemoteSuite(t, async () => wrapRemote(await MemoryRemote.open())))

t.test('conformance: local remote, wrapped (keeps its own writer), with limits', (t) =>
  runRemoteSuite(t, async (t) => {
    // t.testdir() makes the directory anew on each call: once per test.
    const dir = t.testdir()
    return wrapRemote(await LocalRemote.open({ path: join(dir, 'repo'), create: true }), { stagingDir: join(dir, 'staging'), uploadBytesPerSecond: 1e12, downloadBytesPerSecond: 1e12 })
  }))

t.test('conformance: a network-like remote (putFile, no writer), wrapped with staging', async (t) => {
  const staging = join(t.testdir(), 'staging')
  await runRemoteSuite(t, async () => wrapRemote(new FaultyRemote(await MemoryRemote.open()), { stagingDir: staging }))
  t.ok(existsSync(staging), 'packs were staged')
  t.same(readdirSync(staging), [], 'no staging file left')
})

t.test('conformance with 10 % of calls failing or hanging (seeded)', async (t) => {
  let faults = 0
  let timeouts = 0
  let seed = 1
  await runRemoteSuite(t, async (t) => {
    const clock = new HangClock()
    const dir = t.testdir()
    // The suite's exclusive-put case expects ExistsError for a second put of the same bytes; after a failed
    // attempt the retry wrapper cannot tell that from its own landed write (and resolves, by design), so
    // `config` puts are kept free of faults here.
    const all = flakyFaults({ failRate: 0.1, hangRate: 0.03 }).map((f): Fault => (f.method === 'put' ? { ...f, name: /^(?!config$)/ } : f))
    const faulty = new FaultyRemote(await LocalRemote.open({ path: join(dir, 'repo'), create: true }), all, { seed: seed++, onHang: () => clock.expireLatest() })
    const events: RetryEvent[] = []
    t.teardown(() => {
      faults += events.length
      timeouts += clock.expired
    })
    return wrapRemote(faulty, { clock, stagingDir: join(dir, 'staging'), retry: { random: seededRandom(seed), onRetry: (e) => events.push(e) } })
  })
  t.ok(faults > 20, `${faults} calls were retried`)
  t.ok(timeouts > 3, `${timeouts} of them had hung and timed out`)
})

t.test('staging', async (t) => {
  t.test('a remote with putFile and no writer gets a staged writer whose commit is one putFile through the stack', async (t) => {
    const staging = t.testdir()
    const faulty = new FaultyRemote(await MemoryRemote.open())
    const events: RetryEvent[] = []
    const remote = wrapRemote(faulty, { stagingDir: staging, retry: { clock: new ManualClock({ autoSleep: true }), onRetry: (e) => events.push(e) } })
    t.ok(remote instanceof StagingRemote)
    const w = remote.createWriter!('data/')
    t.ok(w instanceof StagedObjectWriter)
    faulty.addFault({ method: 'putFile', call: 1, error: true })
    await w.write(Buffer.from('hello '))
    await w.write(Buffer.from('world'))
    await w.commit('data/ab/obj')
    t.equal((await remote.get('data/ab/obj')).toString(), 'hello world')
    t.same(faulty.calls.filter((c) => c.method === 'putFile' || c.method === 'put').map((c) => `${c.method} ${c.name}`), ['putFile data/ab/obj', 'putFile data/ab/obj'], 'retried as a whole object')
    t.same(events.map((e) => [e.call, e.name, e.attempt]), [['putFile', 'data/ab/obj', 2]])
    t.same(readdirSync(staging), [], 'the staging file is gone')
  })

  t.test('a remote with its own writer keeps it; one without putFile gets none', async (t) => {
    const dir = t.testdir()
    const staging = join(dir, 'staging')
    const local = await LocalRemote.open({ path: join(dir, 'repo'), create: true })
    const remote = wrapRemote(local, { stagingDir: staging })
    t.notOk(remote instanceof StagingRemote)
    const w = remote.createWriter!('data/')
    t.notOk(w instanceof StagedObjectWriter)
    await w.write(Buffer.from('x'))
    t.notOk(existsSync(staging), 'nothing staged')
    await w.commit('data/ab/x')
    t.equal((await local.get('data/ab/x')).toString(), 'x')
    t.equal(wrapRemote(await MemoryRemote.open(), { stagingDir: staging }).createWriter, undefined)
    t.equal(wrapRemote(new FaultyRemote(await MemoryRemote.open())).createWriter, undefined, 'no staging directory: no writer (BufferedObjectWriter)')
  })
})

t.test('writers: the inner writer gets writes in the caller\'s order however long each waits in a layer', async (t) => {
  const received: string[] = []
  const recording: Remote = Object.assign(Object.create(await MemoryRemote.open()) as Remote, {
    createWriter: () => ({
      write: async (d: Uint8Array) => void received.push(Buffer.from(d).toString()),
      commit: async (name: string) => void received.push(`commit ${name}`),
      abort: async () => undefined,
    }),
  })
  let release = (): void => {}
  const gate = new Promise<void>((resolve) => (release = resolve))
  /** Holds the first write back (as a bandwidth wait would) while later ones could go at once. */
  class HoldFirst extends ForwardingRemote {
    private first = true
    protected async around<T>(info: CallInfo, fn: () => Promise<T>): Promise<T> {
      if (info.call === 'write' && this.first) {
        this.first = false
        await gate
      }
      return fn()
    }
  }
  const w = new ConcurrencyLimitRemote(new HoldFirst(recording), 4).createWriter!('data/')
  const writes = ['a', 'b', 'c'].map((s) => w.write(Buffer.from(s)))
  const commit = w.commit('data/x')
  await settle()
  t.same(received, [], 'nothing overtakes the held first write')
  release()
  await Promise.all([...writes, commit])
  t.same(received, ['a', 'b', 'c', 'commit data/x'])
})

t.test('every wrapper forwards properties, putFile, archive and protection, and closes inner', async (t) => {
  const archived: Remote = await archivedMemory()
  const dir = t.testdir()
  const local = await LocalRemote.open({ path: join(dir, 'repo'), create: true })
  const wrappers: { name: string; wrap: (r: Remote) => Remote }[] = [
    { name: 'RetryingRemote', wrap: (r) => new RetryingRemote(r) },
    { name: 'TimeoutRemote', wrap: (r) => new TimeoutRemote(r) },
    { name: 'CircuitBreakerRemote', wrap: (r) => new CircuitBreakerRemote(r) },
    { name: 'ConcurrencyLimitRemote', wrap: (r) => new ConcurrencyLimitRemote(r) },
    { name: 'BandwidthLimitRemote', wrap: (r) => new BandwidthLimitRemote(r, { uploadBytesPerSecond: 1e9 }) },
    { name: 'StagingRemote', wrap: (r) => new StagingRemote(r, join(dir, 'staging')) },
    { name: 'wrapRemote', wrap: (r) => wrapRemote(r) },
  ]
  for (const w of wrappers) {
    const a = w.wrap(archived)
    t.equal(a.properties, archived.properties, `${w.name}: properties`)
    t.equal(a.archive?.dataClass, 'GLACIER', `${w.name}: archive`)
    t.same(await a.archive?.state('data/x'), { storageClass: 'GLACIER', readable: false, restore: 'in-progress' }, `${w.name}: archive.state`)
    t.equal(a.protection, undefined, `${w.name}: no protection where inner has none`)
    t.type(a.putFile, 'function', `${w.name}: putFile`)
    const l = w.wrap(local)
    t.equal(l.protection?.mechanism, local.protection.mechanism, `${w.name}: protection`)
    t.equal(l.archive, undefined, `${w.name}: no archive where inner has none`)
    t.equal(l.putFile, undefined, `${w.name}: no putFile where inner has none`)
    t.type(l.createWriter, 'function', `${w.name}: createWriter`)
    let closed = 0
    const counting: Remote = Object.assign(Object.create(local) as Remote, { close: async () => void closed++ })
    await w.wrap(counting).close()
    t.equal(closed, 1, `${w.name}: close closes inner`)
  }
})

t.test('openRemote', async (t) => {
  t.test('a local or memory remote is not wrapped unless limits are asked for', async (t) => {
    t.ok((await openRemote('memory://a')) instanceof MemoryRemote)
    t.ok((await openRemote(t.testdir(), { retry: { maxAttempts: 3 }, timeouts: { callMs: 1 } })) instanceof LocalRemote, 'retry and timeout options alone do not wrap')
    const clock = new ManualClock({ autoSleep: true })
    const limited = await openRemote('memory://b', { limits: { uploadBytesPerSecond: 1000 }, clock })
    t.notOk(limited instanceof MemoryRemote)
    await limited.put('a', Buffer.alloc(3000))
    t.equal(clock.now(), 2000, 'puts are paced')
    const dir = t.testdir()
    const local = await openRemote(dir, { settings: { limit_download: '1KB/s' }, clock })
    await local.put('x', Buffer.alloc(3000))
    t.equal(clock.now(), 2000, 'a download limit does not slow uploads')
    await local.get('x')
    t.equal(clock.now(), 4000, 'the limit_download setting limits a local repository')
    t.type(local.createWriter, 'function', 'the local writer is kept (and limited)')
    t.ok(local.protection, 'protection is kept')
    const both = await openRemote(dir, { settings: { limit_upload: '1KB/s' }, limits: { uploadBytesPerSecond: 1e9 }, clock })
    await both.put('y', Buffer.alloc(1e6))
    t.equal(clock.now(), 4000, 'the option wins over the setting')
    const fewer = await openRemote(dir, { limits: { connections: 2 } })
    t.equal(fewer.properties.maxConnections, 2)
  })

  t.test('invalid limits and settings are ConfigErrors', async (t) => {
    const cases: Parameters<typeof openRemote>[1][] = [
      { settings: { limit_upload: 'fast' } },
      { settings: { limit_download: '0' } },
      { settings: { limit_upload: true } },
      { limits: { connections: 0 } },
    ]
    for (const c of cases) await t.rejects(openRemote('memory://x', c), ConfigError, JSON.stringify(c))
    const bad: RemoteSettings[] = [{ retries: '-1' }, { retries: 'many' }, { retries: 1.5 }, { timeout: 'soon' }, { timeout: '0' }]
    for (const settings of bad) {
      await t.rejects(wrapForKind(await MemoryRemote.open(), 's3', 's3://b/p', { settings }), ConfigError, JSON.stringify(settings))
    }
  })

  t.test('network kinds get the whole stack, with settings from the URL and options', async (t) => {
    const staging = t.testdir()
    // A staging file abandoned two days ago by a killed process, and a fresh one of a running process.
    const old = join(staging, `${STAGE_PREFIX}1-old`)
    const fresh = join(staging, `${STAGE_PREFIX}2-fresh`)
    writeFileSync(old, 'x')
    writeFileSync(fresh, 'y')
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000)
    utimesSync(old, twoDaysAgo, twoDaysAgo)
    const faulty = new FaultyRemote(await MemoryRemote.open({ name: 'net' }))
    faulty.down = true
    const clock = new ManualClock({ autoSleep: true })
    const retries: RetryEvent[] = []
    const circuit: CircuitEvent[] = []
    const remote = await wrapForKind(faulty, 's3', 's3://bucket/prefix?retries=2&limit_upload=1000', {
      stagingDir: staging, clock, settings: { retries: 5, timeout: '10s' }, breaker: { failureThreshold: 4 },
      onRetry: (e) => retries.push(e), onCircuitChange: (e) => circuit.push(e),
    })
    t.same(readdirSync(staging), [`${STAGE_PREFIX}2-fresh`], 'staging files older than a day were removed')
    t.type(remote.createWriter, 'function', 'staged writer')
    const err = await remote.stat('x').catch((e: unknown) => e)
    t.ok(err instanceof RemoteError, 'a RemoteError', { found: err })
    t.match((err as Error).message, /failed 3 times/, 'retries=2 from the URL query wins over the setting: 3 attempts')
    t.equal(retries.length, 2)
    await remote.stat('x').catch(() => undefined)
    t.same(circuit.map((e) => e.state), ['open'], 'the breaker option applies (4 failures in a row)')
    faulty.down = null
    clock.advance(30_000)
    const before = clock.now()
    await remote.put('a', Buffer.alloc(3000))
    t.equal(Math.round(clock.now() - before), 2000, 'limit_upload from the query: 1000 B/s')
    t.same(circuit.map((e) => e.state), ['open', 'half-open', 'closed'])
    faulty.addFault({ method: 'get', call: 1, hang: true })
    const got = remote.get('a')
    await settle()
    clock.advance(10_000)
    t.equal((await got).length, 3000, 'the hung attempt timed out and the retry answered')
    t.match(retries[retries.length - 1].error.message, /^get a on memory:\/\/net: no answer within 10 s$/, 'timeout 10s from the settings')
    await remote.close()
    t.equal(faulty.hungCalls, 0, 'closing cancels the hung call')
  })
})

/** A memory remote with putFile and an archive capability, as an S3 kind would have. */
async function archivedMemory(): Promise<Remote> {
  const inner = new FaultyRemote(await MemoryRemote.open())
  return {
    properties: inner.properties,
    put: (n, d, o) => inner.put(n, d, o),
    putFile: (n, p, o) => inner.putFile(n, p, o),
    get: (n, r) => inner.get(n, r),
    stat: (n) => inner.stat(n),
    list: (p) => inner.list(p),
    delete: (n) => inner.delete(n),
    close: () => inner.close(),
    archive: {
      provider: 'aws-s3', dataClass: 'GLACIER', hotClass: 'STANDARD', dataNeedsRestore: true,
      state: async () => ({ storageClass: 'GLACIER', readable: false, restore: 'in-progress' }),
      requestRestore: async () => undefined,
    },
  }
}

