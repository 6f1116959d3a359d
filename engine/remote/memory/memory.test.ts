import t from 'tap'
import { ConfigError } from '../../errors.js'
import { runRemoteSuite } from '../../testing/remote-suite.js'
import { MemoryRemote, parseConfig } from './index.js'

await runRemoteSuite(t, () => MemoryRemote.open())

t.test('parseConfig', async (t) => {
  t.same(parseConfig('memory://name'), { name: 'name' })
  t.same(parseConfig('memory://'), { name: '' })
  t.throws(() => parseConfig('file:///x'), ConfigError)
  t.throws(() => parseConfig('name'), ConfigError)
})

t.test('remotes opened with the same name are independent', async (t) => {
  const a = await MemoryRemote.open({ name: 'x' })
  const b = await MemoryRemote.open({ name: 'x' })
  await a.put('obj', Buffer.from('a'))
  await t.rejects(b.stat('obj'))
  t.equal(a.properties.location, 'memory://x')
})
