import t from 'tap'
import { RemoteError } from '../../errors.js'
import { MemoryRemote } from '../memory/index.js'
import { FaultyRemote } from './faulty.js'
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
})
