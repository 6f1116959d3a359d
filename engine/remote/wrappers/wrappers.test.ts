import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { RemoteError } from '../../errors.js'
import { settle } from '../../testing/manual-clock.js'
import { MemoryRemote } from '../memory/index.js'
import type { Remote } from '../remote.js'
import { FAULTY_METHODS, FaultyRemote, flakyFaults, type FaultyCall } from './faulty.js'
import { ReadOnlyRemote } from './read-only.js'

t.test('ReadOnlyRemote reads through and refuses writes', async (t) => {
  const inner = await MemoryRemote.open()
  await inner.put('data/x', Buffer.from('hello'))
  const remote = new ReadOnlyRemote(inner)
  t.equal(remote.properties, inner.properties)
  t.equal((await remote.get('data/x')).toString(), 'hello')
  t.same(await remote.stat('data/x'), { name: 'data/x', size: 5 })
  const listed: string[] = []
  for await (const info of remote.list('data/')) listed.push(info.name)
  t.same(listed, ['data/x'])
  for (const write of [() => remote.put('data/y', Buffer.from('y')), () => remote.delete('data/x')]) {
    const err = await write().catch((e: unknown) => e)
    t.ok(err instanceof RemoteError && !err.transient, 'non-transient RemoteError', { found: err })
  }
  t.same((await inner.get('data/x')).toString(), 'hello', 'inner is unchanged')
  await t.rejects(inner.stat('data/y'))
})

t.test('FaultyRemote', async (t) => {
  const data = Buffer.from('0123456789')
  const setup = async (): Promise<{ inner: MemoryRemote; remote: FaultyRemote }> => {
    const inner = await MemoryRemote.open()
    await inner.put('obj', data)
    return { inner, remote: new FaultyRemote(inner) }
  }

  t.test('passes calls through without faults', async (t) => {
    const { remote } = await setup()
    t.ok((await remote.get('obj')).equals(data))
    await remote.put('other', data)
    t.equal(remote.callCount('put'), 1)
    t.equal(remote.callCount('get'), 1)
  })

  t.test('fails the Nth matching call', async (t) => {
    const { remote } = await setup()
    remote.addFault({ method: 'get', name: 'obj', call: 2, error: true })
    await remote.get('obj')
    await remote.get('missing').catch(() => undefined) // another name: not counted
    const err = await remote.get('obj').catch((e: unknown) => e)
    t.ok(err instanceof RemoteError && err.transient, 'second get of obj fails transiently', { found: err })
    t.ok((await remote.get('obj')).equals(data), 'third succeeds')
    t.equal(remote.callCount('get'), 4)
  })

  t.test('fails with a given error, before or after the call', async (t) => {
    const { inner, remote } = await setup()
    const boom = new Error('boom')
    remote.addFault({ method: 'put', name: /^data\//, error: boom })
    await t.rejects(remote.put('data/a', data), boom)
    await t.rejects(inner.stat('data/a'), 'a before-call failure writes nothing')
    remote.clearFaults()
    remote.addFault({ method: 'put', error: boom, errorAfter: true })
    await t.rejects(remote.put('data/b', data), boom)
    t.ok((await inner.get('data/b')).equals(data), 'an after-call failure has written the object')
  })

  t.test('flips and truncates get results without changing the inner remote', async (t) => {
    const { inner, remote } = await setup()
    remote.addFault({ method: 'get', flipByteAt: 3 })
    const flipped = await remote.get('obj')
    t.equal(flipped.length, data.length)
    t.equal(flipped[3], data[3] ^ 0xff)
    t.ok(Buffer.concat([flipped.subarray(0, 3), flipped.subarray(4)]).equals(Buffer.concat([data.subarray(0, 3), data.subarray(4)])), 'only that byte changes')
    t.ok((await inner.get('obj')).equals(data), 'inner unchanged')
    remote.clearFaults()
    remote.addFault({ method: 'get', truncateTo: 4 })
    t.equal((await remote.get('obj')).toString(), '0123')
    t.equal((await remote.get('obj', { offset: 2, length: 6 })).toString(), '2345', 'applies to ranged reads')
  })

  t.test('delays a call until released', async (t) => {
    const { remote } = await setup()
    let release = (): void => {}
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    remote.addFault({ method: 'stat', delay: () => gate })
    let done = false
    const pending = remote.stat('obj').then((info) => {
      done = true
      return info
    })
    await new Promise((resolve) => setImmediate(resolve))
    t.equal(done, false, 'still waiting')
    release()
    t.same(await pending, { name: 'obj', size: 10 })
  })

  t.test('fails a listing', async (t) => {
    const { remote } = await setup()
    remote.addFault({ method: 'list', name: '', error: true })
    const err = await (async () => {
      for await (const _info of remote.list('')) t.fail('no name before the failure')
    })().catch((e: unknown) => e)
    t.ok(err instanceof RemoteError)
  })
  t.test('putFile: through inner.putFile, or a put of the file when inner has none', async (t) => {
    const { inner, remote } = await setup()
    const file = join(t.testdir(), 'f')
    writeFileSync(file, 'file bytes')
    t.equal((remote as Remote).createWriter, undefined, 'no writer: looks like a network kind')
    remote.addFault({ method: 'putFile', call: 1, error: true })
    await t.rejects(remote.putFile('data/f', file), RemoteError)
    await t.rejects(inner.stat('data/f'), 'nothing written')
    await remote.putFile('data/f', file)
    t.equal((await inner.get('data/f')).toString(), 'file bytes')
    t.equal(remote.callCount('putFile'), 2)
  })

  t.test('fromCall, action, down and the call log', async (t) => {
    const { remote } = await setup()
    remote.addFault({ method: 'stat', fromCall: 2, error: true })
    await remote.stat('obj')
    await t.rejects(remote.stat('obj'))
    await t.rejects(remote.stat('obj'), 'every call from the second on')
    let fired = 0
    remote.addFault({ method: 'get', call: 2, action: () => { fired++; remote.down = true } })
    await remote.get('obj')
    const err = await remote.get('obj').catch((e: unknown) => e)
    t.equal(fired, 1)
    t.ok(err instanceof RemoteError && err.transient && /remote down: get obj/.test(err.message), 'the action took the remote down for this call', { found: err })
    await t.rejects(remote.delete('obj'), RemoteError, 'every method fails while down')
    const boom = new Error('unplugged')
    remote.down = boom
    await t.rejects(remote.put('x', data), boom)
    remote.down = null
    await remote.delete('x')
    t.same(remote.calls.slice(-3), [{ method: 'delete', name: 'obj' }, { method: 'put', name: 'x' }, { method: 'delete', name: 'x' }] satisfies FaultyCall[])
  })

  t.test('probability faults are seeded: the same seed fails the same calls', async (t) => {
    const failures = async (seed: number): Promise<number[]> => {
      const remote = new FaultyRemote(await MemoryRemote.open(), [{ method: 'get', probability: 0.1, error: true }], { seed })
      await remote.put('o', data)
      const failed: number[] = []
      for (let i = 0; i < 1000; i++) if (await remote.get('o').then(() => false, () => true)) failed.push(i)
      return failed
    }
    const a = await failures(7)
    t.same(await failures(7), a, 'reproducible')
    t.notSame(await failures(8), a, 'another seed, other calls')
    t.ok(a.length > 70 && a.length < 130, `about 10 % failed (${a.length} of 1000)`)
  })

  t.test('hangs last until released or closed', async (t) => {
    const { inner } = await setup()
    const hung: string[] = []
    const remote = new FaultyRemote(inner, [{ method: 'get', name: 'obj', hang: true }], { onHang: (m, n) => hung.push(`${m} ${n}`) })
    const results = [remote.get('obj'), remote.get('obj')].map((p) => p.then(() => 'resolved', (e: unknown) => e))
    await settle()
    t.equal(remote.hungCalls, 2)
    t.same(hung, ['get obj', 'get obj'])
    remote.releaseHung()
    for (const r of await Promise.all(results)) t.ok(r instanceof RemoteError && !r.transient, 'a released hang rejects, not transiently', { found: r })
    t.equal(remote.hungCalls, 0)
    const last = remote.get('obj').catch((e: unknown) => e)
    await settle()
    await remote.close()
    t.ok((await last) instanceof RemoteError, 'close cancels hung calls')
  })

  t.test('listings: part-way failures and lagging behind recent writes', async (t) => {
    const { remote } = await setup()
    for (let i = 0; i < 4; i++) await remote.put(`data/n${i}`, data)
    const list = async (): Promise<string[]> => {
      const out: string[] = []
      for await (const info of remote.list('data/')) out.push(info.name)
      return out.sort()
    }
    remote.addFault({ method: 'list', call: 1, hideRecentWrites: 2 })
    t.same(await list(), ['data/n0', 'data/n1'], 'the two latest writes are not listed yet')
    t.same(await list(), ['data/n0', 'data/n1', 'data/n2', 'data/n3'], 'later they are')
    remote.clearFaults()
    remote.addFault({ method: 'list', afterItems: 3, error: true })
    const seen: string[] = []
    const err = await (async () => {
      for await (const info of remote.list('data/')) seen.push(info.name)
    })().catch((e: unknown) => e)
    t.ok(err instanceof RemoteError)
    t.equal(seen.length, 3, 'fails after three names')
  })

  t.test('flakyFaults covers every method', async (t) => {
    const faults = flakyFaults({ failRate: 0.09, hangRate: 0.01 })
    t.same([...new Set(faults.map((f) => f.method))].sort(), [...FAULTY_METHODS].sort())
    for (const m of FAULTY_METHODS) {
      const errors = faults.filter((f) => f.method === m && f.error === true).reduce((p, f) => p + (f.probability ?? 0), 0)
      t.ok(Math.abs(errors - 0.09) < 1e-9, `${m}: 9 % errors`)
      t.equal(faults.filter((f) => f.method === m && f.hang).length, 1, `${m}: hangs`)
    }
    t.ok(faults.some((f) => f.method === 'put' && f.errorAfter), 'some puts fail after landing')
  })
})
