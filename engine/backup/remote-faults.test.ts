/**
 * Backups through the wrapper stack that openRemote puts around network remotes (engine/remote/wrappers),
 * over a faulty remote that looks like a network kind (putFile, no writer of its own: packs are staged and
 * uploaded whole):
 *
 * - with about 10 % of the calls failing or hanging (seeded), backup completes, restore is byte-identical
 *   and verify --read-data passes;
 * - with the remote down, backup fails with a clear error within a bounded (virtual) time and without
 *   hammering the remote; once it is back, the next backup completes without uploading again the packs
 *   the failed run had stored.
 */
import t, { type Test } from 'tap'
import { lstatSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { backup } from './index.js'
import { RemoteError } from '../errors.js'
import { restore, type RestoreResult } from '../restore/index.js'
import { verify } from '../verify/index.js'
import { loadSnapshot } from '../snapshot/index.js'
import { LocalRemote, type Remote } from '../remote/index.js'
import { FaultyRemote, flakyFaults, type Fault } from '../remote/wrappers/faulty.js'
import { wrapRemote } from '../remote/wrappers/wrap.js'
import { SYSTEM_CLOCK } from '../remote/wrappers/clock.js'
import { CircuitOpenError, DEFAULT_BREAKER, type CircuitEvent } from '../remote/wrappers/circuit-breaker.js'
import { DEFAULT_RETRY, type RetryEvent } from '../remote/wrappers/retrying.js'
import { RemoteTimeoutError } from '../remote/wrappers/timeout.js'
import { Repository } from '../repo/index.js'
import { HangClock, ManualClock } from '../testing/manual-clock.js'
import { makeTestRepo, seededRandom, seededText, writeTree, randomData } from '../testing/test-repo.js'

const MiB = 1024 * 1024
const opts = { hostname: 'h', username: 'u', program: 'test', now: () => new Date('2026-03-02T00:00:00Z'), workers: 1 }

/** ~6 MB: random and text files, small files. With 1 MiB packs: several data packs. */
function writeSource(dir: string): void {
  const files: Record<string, Buffer | string> = {}
  for (let i = 0; i < 3; i++) files[`random/r${i}.bin`] = randomData(`r${i}`, 1.5 * MiB + i * 1013)
  files['text/log.txt'] = seededText('log', 1.5 * MiB)
  for (let i = 0; i < 20; i++) files[`small/s${i}.txt`] = seededText(`s${i}`, 500 + i * 97)
  writeTree(dir, files)
}

function sourceFiles(dir: string, rel = ''): string[] {
  const out: string[] = []
  for (const n of readdirSync(join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${n}` : n
    if (lstatSync(join(dir, r)).isDirectory()) out.push(...sourceFiles(dir, r))
    else out.push(r)
  }
  return out
}

/** Restores `id` and compares every file with the source. */
async function checkRestore(t: Test, repo: Repository, id: string, src: string, out: string): Promise<void> {
  const r = await restore(repo, { snapshot: await loadSnapshot(repo, id), target: out })
  t.same(r.errors, [], 'restore: no errors')
  const files = sourceFiles(src)
  const differ = files.filter((f) => !readFileSync(join(src, f)).equals(readFileSync(join(out, 'src', f))))
  t.same(differ, [], `restore: ${files.length} files byte-identical`)
}

/** Names of the data packs in a local repository directory. */
function dataPacks(repoDir: string): string[] {
  const out: string[] = []
  for (const sub of readdirSync(join(repoDir, 'data'))) {
    for (const n of readdirSync(join(repoDir, 'data', sub))) if (!n.startsWith('.tmp-')) out.push(`data/${sub}/${n}`)
  }
  return out.sort()
}

async function openOver(t: Test, remote: Remote, tr: { password: string | null; cacheDir: string }): Promise<Repository> {
  const repo = await Repository.open(remote, { password: tr.password, cacheDir: tr.cacheDir })
  t.teardown(async () => {
    await repo.close()
    await remote.close()
  })
  await repo.syncIndex()
  return repo
}

t.test('with 10 % of calls failing or hanging, backup completes, restores byte-identical and verifies', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  writeSource(src)
  const tr = await makeTestRepo(dir)
  await tr.repo.close()
  // Hung calls time out at once (HangClock fires exactly their timers); retries back off without sleeping.
  const clock = new HangClock()
  // About 10 % of all calls fail or hang (which ones is seeded, but pack names, and so the calls, differ
  // from run to run); on top, one fault of each kind for certain, so every path is taken in every run.
  const faults: Fault[] = [
    ...flakyFaults({ failRate: 0.07, hangRate: 0.03 }),
    { method: 'putFile', name: /^data\//, call: 1, error: true },
    { method: 'put', name: /^index\//, call: 1, error: true, errorAfter: true },
    { method: 'list', call: 2, error: true },
    { method: 'stat', call: 1, hang: true },
    { method: 'get', call: 5, hang: true },
  ]
  const faulty = new FaultyRemote(await LocalRemote.open({ path: tr.repoDir }), faults, { seed: 2026, onHang: () => clock.expireLatest() })
  const retries: RetryEvent[] = []
  const remote = wrapRemote(faulty, { clock, stagingDir: join(dir, 'staging'), retry: { random: seededRandom(6), onRetry: (e) => retries.push(e) } })
  const repo = await openOver(t, remote, tr)

  // Four snapshots, each after adding a file and changing one; each restored and compared.
  for (let round = 0; round < 4; round++) {
    if (round > 0) writeTree(src, { [`random/new${round}.bin`]: randomData(`new${round}`, MiB + round), 'text/log.txt': seededText(`log${round}`, 1.5 * MiB) })
    const r = await backup(repo, { ...opts, paths: [src] })
    t.ok(r.id, `snapshot ${round + 1} was written`)
    t.equal(r.snapshot.stats.files, 24 + round)
    await checkRestore(t, repo, r.id!, src, join(dir, `out${round}`))
  }
  const v = await verify(repo, { readData: 1 })
  t.ok(v.ok, 'verify --read-data passes')
  t.same(v.findings, [], 'no findings')
  t.ok(v.stats.packs_read >= 10, `${v.stats.packs_read} packs read back`)

  const calls = faulty.calls.length
  const byCall = new Map<string, number>()
  for (const e of retries) byCall.set(e.call, (byCall.get(e.call) ?? 0) + 1)
  t.comment(`${calls} calls, ${retries.length} retried: ${[...byCall].map(([k, n]) => `${k} ${n}`).join(', ')}; ${clock.expired} hung and timed out`)
  const share = retries.length / calls
  t.ok(share >= 0.05, `about 10 % of the calls failed or hung (${(share * 100).toFixed(1)} %)`)
  for (const call of ['putFile', 'put', 'get', 'stat', 'list'] as const) t.ok(byCall.has(call), `${call} calls were retried`)
  t.ok(clock.expired >= 2 && retries.filter((e) => e.error instanceof RemoteTimeoutError).length === clock.expired, `every hang (${clock.expired}) became a timeout that was retried`)
  t.same(readdirSync(join(dir, 'staging')), [], 'no staging file left')
})

t.test('with the remote down, backup fails clearly in bounded time; once it is back the next backup resumes', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  writeSource(src)
  const tr = await makeTestRepo(dir)
  await tr.repo.close()
  const staging = join(dir, 'staging')

  // Run 1: the remote goes down when the third data pack is uploaded. Retry back-off and the breaker's
  // cool-down run on a virtual clock (sleeps advance it at once), so the bound is checked without waiting.
  const clock = new ManualClock({ autoSleep: true })
  const faulty = new FaultyRemote(await LocalRemote.open({ path: tr.repoDir }))
  let downAt = -1
  let callsAtDown = 0
  faulty.addFault({
    method: 'putFile', name: /^data\//, call: 3,
    action: () => {
      faulty.down = true
      downAt = clock.now()
      callsAtDown = faulty.calls.length - 1
    },
  })
  const circuit: CircuitEvent[] = []
  const retries: RetryEvent[] = []
  const remote = wrapRemote(faulty, {
    clock, stagingDir: staging, timeouts: { clock: SYSTEM_CLOCK }, retry: { random: seededRandom(9), onRetry: (e) => retries.push(e) }, breaker: { onStateChange: (e) => circuit.push(e) },
  })
  const repo = await Repository.open(remote, { password: tr.password, cacheDir: tr.cacheDir })
  await repo.syncIndex()
  const err = await backup(repo, { ...opts, paths: [src] }).then(() => null, (e: unknown) => e)
  await repo.close()
  await remote.close()

  t.ok(err instanceof RemoteError, 'backup fails with a RemoteError', { found: err })
  const message = (err as Error).message
  t.comment(`error: ${message}`)
  t.match(message, /remote .* is failing: \d+ failures in a row, last: remote down: .*; not retrying for|failed \d+ times in .*, giving up: remote down/, 'the message says the remote is failing')
  t.ok(downAt >= 0, 'the remote went down during the backup')
  const elapsed = clock.now() - downAt
  // Back-off ceilings 0.5, 1, 2, ... 30 s: one call's 8 attempts wait at most 61.5 s; the calls in flight
  // together open the breaker within DEFAULT_BREAKER.failureThreshold attempts.
  const boundMs = 2 * 61_500
  t.ok(elapsed <= boundMs, `failed ${Math.round(elapsed / 1000)} s (virtual) after the remote went down (bound ${boundMs / 1000} s)`)
  const callsWhileDown = faulty.calls.length - callsAtDown
  t.ok(callsWhileDown <= DEFAULT_BREAKER.failureThreshold + DEFAULT_RETRY.maxAttempts + remote.properties.maxConnections, `${callsWhileDown} calls reached the down remote: it was not hammered (bound: breaker threshold ${DEFAULT_BREAKER.failureThreshold} + ${DEFAULT_RETRY.maxAttempts} attempts + ${remote.properties.maxConnections} in flight when it opened)`)
  t.ok(circuit.filter((e) => e.state === 'open').length <= 1, 'the breaker said so at most once')
  if (err instanceof CircuitOpenError) t.equal(circuit[0]?.state, 'open')
  const stored = dataPacks(tr.repoDir)
  t.ok(stored.length >= 2, `${stored.length} data packs were stored before the remote went down`)
  const storedBytes = stored.reduce((n, p) => n + lstatSync(join(tr.repoDir, p)).size, 0)

  // Run 2: the remote is back; a new process (a new stack), the same cache.
  const back = new FaultyRemote(await LocalRemote.open({ path: tr.repoDir }))
  const clock2 = new ManualClock({ autoSleep: true })
  const circuit2: CircuitEvent[] = []
  const repo2 = await openOver(t, wrapRemote(back, { stagingDir: staging, clock: clock2, timeouts: { clock: SYSTEM_CLOCK }, breaker: { onStateChange: (e) => circuit2.push(e) } }), tr)
  const r = await backup(repo2, { ...opts, paths: [src] })
  t.ok(r.id, 'the next backup completes')
  const uploaded = back.calls.filter((c) => c.method === 'putFile' && c.name.startsWith('data/')).map((c) => c.name)
  t.same(uploaded.filter((n) => stored.includes(n)), [], 'no pack stored by the failed run is uploaded again')
  const total = dataPacks(tr.repoDir).reduce((n, p) => n + lstatSync(join(tr.repoDir, p)).size, 0)
  t.ok((r.snapshot.stats.added_data_bytes ?? Infinity) <= total - storedBytes + 1, `the second run added ${r.snapshot.stats.added_data_bytes} data bytes, not the ${storedBytes} already stored again`)
  t.ok(uploaded.length >= 1, `${uploaded.length} new data packs`)
  const v = await verify(repo2, { readData: 1 })
  t.ok(v.ok, 'verify --read-data passes')
  t.same(v.findings.filter((f) => f.severity !== 'warning'), [], 'no errors (the failed run may leave unindexed packs: warnings)')
  await checkRestore(t, repo2, r.id!, src, join(dir, 'out'))
  t.same(readdirSync(staging), [], 'no staging file left by either run')

  // The remote goes down again during a restore, which reads many packs at once: the calls in flight
  // open the breaker, every later read fails at once, and the restore ends instead of hammering the remote.
  const snapshot = await loadSnapshot(repo2, r.id!)
  back.down = true
  const before = back.calls.length
  const t0 = clock2.now()
  const rr = await restore(repo2, { snapshot, target: join(dir, 'out-down') }).then((x) => x, (e: unknown) => e)
  const reached = back.calls.length - before
  const messages = rr instanceof Error ? [rr.message] : (rr as RestoreResult).errors.map((e) => `${e.path}: ${e.message}`)
  t.comment(`restore with the remote down: ${messages.length} errors (${messages[0]}); ${reached} calls reached the remote; ${Math.round((clock2.now() - t0) / 1000)} s (virtual)`)
  t.ok(messages.length > 0, 'the restore reports the failure')
  t.ok(messages.every((m) => /is failing: \d+ failures in a row|giving up/.test(m)), 'saying that the remote is failing')
  t.ok(reached <= DEFAULT_BREAKER.failureThreshold + back.properties.maxConnections, `${reached} calls reached the down remote (breaker threshold ${DEFAULT_BREAKER.failureThreshold} + ${back.properties.maxConnections} in flight at most)`)
  t.same(circuit2.map((e) => e.state), ['open'], 'the breaker opened, and said so once')
  t.ok(clock2.now() - t0 <= 2 * 61_500, 'within the bound')
})
