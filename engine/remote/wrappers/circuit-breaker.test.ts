import t from 'tap'
import { NotFoundError, RemoteError } from '../../errors.js'
import { ManualClock, settle } from '../../testing/manual-clock.js'
import { MemoryRemote } from '../memory/index.js'
import { CircuitBreakerRemote, CircuitOpenError, type CircuitBreakerOptions, type CircuitEvent } from './circuit-breaker.js'
import { FaultyRemote } from './faulty.js'

async function setup(o: CircuitBreakerOptions = {}): Promise<{ faulty: FaultyRemote; remote: CircuitBreakerRemote; clock: ManualClock; events: CircuitEvent[] }> {
  const inner = await MemoryRemote.open({ name: 'cb' })
  await inner.put('obj', Buffer.from('x'))
  const faulty = new FaultyRemote(inner)
  const clock = new ManualClock()
  const events: CircuitEvent[] = []
  const remote = new CircuitBreakerRemote(faulty, { clock, failureThreshold: 3, onStateChange: (e) => events.push(e), ...o })
  return { faulty, remote, clock, events }
}

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => null, (e: unknown) => e)
}

t.test('opens after N transient failures in a row and then fails fast without calling the remote', async (t) => {
  const { faulty, remote, events } = await setup()
  faulty.down = true
  for (let i = 0; i < 3; i++) {
    const err = await errorOf(remote.get('obj'))
    t.ok(err instanceof RemoteError && err.transient, `failure ${i + 1} passes through`, { found: err })
  }
  t.equal(remote.state, 'open')
  const calls = faulty.calls.length
  const err = await errorOf(remote.stat('obj'))
  t.ok(err instanceof CircuitOpenError && !err.transient, 'non-transient CircuitOpenError', { found: err })
  t.equal((err as Error).message, 'remote memory://cb is failing: 3 failures in a row, last: remote down: get obj; not retrying for 30 s')
  t.ok((err as Error).cause instanceof RemoteError, 'the last failure is the cause')
  await errorOf(remote.put('a', Buffer.from('a')))
  await errorOf(remote.delete('obj'))
  t.equal(faulty.calls.length, calls, 'no call reached the remote while open')
  t.same(events.map((e) => [e.state, e.failures, e.coolDownMs]), [['open', 3, 30_000]], 'said once, not per call')
  t.match(events[0].lastError?.message, /remote down/)
})

t.test('the message counts down the cool-down', async (t) => {
  const { faulty, remote, clock } = await setup({ coolDownMs: 60_000 })
  faulty.down = true
  for (let i = 0; i < 3; i++) await errorOf(remote.get('obj'))
  clock.advance(20_000)
  t.match(((await errorOf(remote.get('obj'))) as Error).message, /not retrying for 40 s$/)
})

t.test('any answer of the remote resets the count', async (t) => {
  const { faulty, remote } = await setup()
  faulty.addFault({ method: 'get', name: 'obj', error: true })
  await errorOf(remote.get('obj'))
  await errorOf(remote.get('obj'))
  t.ok((await errorOf(remote.get('missing'))) instanceof NotFoundError, 'NotFoundError is an answer')
  await errorOf(remote.get('obj'))
  await errorOf(remote.get('obj'))
  t.equal(remote.state, 'closed', 'never 3 in a row')
  faulty.addFault({ method: 'stat', error: new RemoteError('access denied', { transient: false }) })
  for (let i = 0; i < 5; i++) await errorOf(remote.stat('obj'))
  t.equal(remote.state, 'closed', 'non-transient failures do not count')
  await remote.put('ok', Buffer.from('1'))
  await errorOf(remote.get('obj'))
  await errorOf(remote.get('obj'))
  t.equal(remote.state, 'closed')
})

t.test('after the cool-down one probe goes through; its success closes the circuit', async (t) => {
  const { faulty, remote, clock, events } = await setup()
  faulty.down = true
  for (let i = 0; i < 3; i++) await errorOf(remote.get('obj'))
  clock.advance(29_999)
  t.ok((await errorOf(remote.get('obj'))) instanceof CircuitOpenError, 'still open just before the end')
  clock.advance(1)
  faulty.down = null
  let release = (): void => {}
  faulty.addFault({ method: 'get', call: 1, delay: () => new Promise<void>((resolve) => (release = resolve)) })
  const probe = remote.get('obj')
  await settle()
  t.equal(remote.state, 'half-open')
  const other = await errorOf(remote.stat('obj'))
  t.ok(other instanceof CircuitOpenError, 'a second call while the probe runs fails fast')
  t.match((other as Error).message, /one probe call is testing it/)
  release()
  t.equal((await probe).toString(), 'x')
  t.equal(remote.state, 'closed')
  t.same((await remote.stat('obj')).size, 1, 'calls go through again')
  t.same(events.map((e) => e.state), ['open', 'half-open', 'closed'])
})

t.test('a failed probe opens the circuit for another cool-down', async (t) => {
  const { faulty, remote, clock, events } = await setup()
  faulty.down = true
  for (let i = 0; i < 3; i++) await errorOf(remote.get('obj'))
  clock.advance(30_000)
  const probe = await errorOf(remote.get('obj'))
  t.ok(probe instanceof RemoteError && probe.transient, 'the probe reached the remote and failed')
  t.equal(remote.state, 'open')
  t.match(((await errorOf(remote.get('obj'))) as Error).message, /4 failures in a row.*not retrying for 30 s/)
  t.same(events.map((e) => e.state), ['open', 'half-open', 'open'])
})

t.test('concurrent calls: the failures of all of them count', async (t) => {
  const { faulty, remote } = await setup({ failureThreshold: 5 })
  faulty.down = true
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => errorOf(remote.get(`o${i}`))))
  // All 8 were admitted before any failed: they all reach the remote, and the circuit is open afterwards.
  t.equal(results.filter((e) => e instanceof RemoteError && e.transient).length, 8)
  t.equal(remote.state, 'open')
  t.ok((await errorOf(remote.get('o'))) instanceof CircuitOpenError)
})
