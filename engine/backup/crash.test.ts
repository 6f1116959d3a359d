/**
 * Crash consistency. A backup running in a child process is SIGKILLed at
 * eight seeded points (50 with COLDSTORE_STRESS=1) spread over the run (measured on an uninterrupted run
 * first: its start-up time and how many packs it writes); after each kill the
 * repository must verify (unindexed packs are only warnings), and the next
 * backup, with the same cache, must reuse what was uploaded, complete, verify
 * with --read-data and restore byte-identical.
 *
 * Then "power loss": a pack file that loses its unsynced second half, after
 * a finished backup and before the index of an interrupted one.
 */
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, truncateSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { backup } from './index.js'
import { restore } from '../restore/index.js'
import { verify, repairIndex, type VerifyReport } from '../verify/index.js'
import { loadSnapshot } from '../snapshot/index.js'
import { LocalRemote } from '../remote/index.js'
import { FaultyRemote } from '../remote/wrappers/faulty.js'
import { Repository } from '../repo/index.js'
import { makeTestRepo, writeTree, seededRandom, randomData } from '../testing/test-repo.js'
import type { SnapshotStats } from '../snapshot/index.js'

const childScript = fileURLToPath(new URL('../testing/crash-child.ts', import.meta.url))
// The child runs TypeScript with the loader tap gave this process (tap's ts-node import; TS_NODE_* settings come through the environment).
const loaderArgs = process.execArgv.filter((a) => a.includes('@tapjs/typescript') || a.includes('ts-node') || a.includes('tsx'))

/** Seeded PRNG: the same choices on every run. */
const rng = seededRandom

/** Seeded text-like bytes (compressible), fast. */
function textData(seed: number, length: number): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'result', 'value', 'error', 'sample', 'model', 'train', 'loss', 'epoch', 'batch', 'step']
  const r = rng(seed)
  const parts: string[] = []
  let n = 0
  while (n < length) {
    const w = `${words[Math.floor(r() * words.length)]} ${Math.floor(r() * 100000)}${r() < 0.1 ? '\n' : ' '}`
    parts.push(w)
    n += w.length
  }
  return Buffer.from(parts.join('').slice(0, length))
}

const root = t.testdir()
const password = 'crash test'

/** ~20 MB: random and text files, many small files, a symlink, an empty directory. */
const src = join(root, 'src')
const MB = 1024 * 1024
{
  const files: Record<string, Buffer> = {}
  for (let i = 0; i < 3; i++) files[`random/r${i}.bin`] = randomData(`r${i}`, 4 * MB + i * 1013)
  for (let i = 0; i < 4; i++) files[`text/t${i}.txt`] = textData(100 + i, 2 * MB + i * 7)
  for (let i = 0; i < 40; i++) files[`small/s${i}.txt`] = textData(1000 + i, 1000 + i * 97)
  writeTree(src, files)
  symlinkSync('random/r0.bin', join(src, 'link'))
  mkdirSync(join(src, 'empty-dir'))
}
/** A smaller source for the power-loss cases. */
const srcSmall = join(root, 'src-small')
writeTree(srcSmall, {
  'a.bin': randomData('pa', 2 * MB),
  'b.bin': randomData('pb', 2 * MB + 5),
  'c.txt': textData(7, 2 * MB),
})

function sourceFiles(dir: string, rel = ''): string[] {
  const out: string[] = []
  for (const n of readdirSync(join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${n}` : n
    const st = lstatSync(join(dir, r))
    if (st.isDirectory()) out.push(...sourceFiles(dir, r))
    out.push(r)
  }
  return out
}
function treeBytes(dir: string): number {
  return sourceFiles(dir).reduce((n, r) => n + (lstatSync(join(dir, r)).isFile() ? statSync(join(dir, r)).size : 0), 0)
}
const totalBytes = treeBytes(src)

/** Restores snapshot `id` into `out` and checks every entry against `source` (restored as `<out>/<basename>`). */
async function checkRestore(t: Test, repo: Repository, id: string, source: string, out: string): Promise<void> {
  const r = await restore(repo, { snapshot: await loadSnapshot(repo, id), target: out })
  t.same(r.errors, [], 'restore: no errors')
  const base = join(out, source.slice(source.lastIndexOf('/') + 1))
  let bad = 0
  let n = 0
  for (const rel of sourceFiles(source)) {
    const a = lstatSync(join(source, rel))
    n++
    let b
    try {
      b = lstatSync(join(base, rel))
    } catch {
      bad++
      continue
    }
    if (a.isFile()) {
      if (!b.isFile() || !readFileSync(join(source, rel)).equals(readFileSync(join(base, rel)))) bad++
    } else if (a.isSymbolicLink()) {
      if (!b.isSymbolicLink() || readlinkSync(join(source, rel)) !== readlinkSync(join(base, rel))) bad++
    } else if (a.isDirectory() !== b.isDirectory()) bad++
  }
  t.equal(bad, 0, `restore: ${n} entries byte-identical`)
}

/** Only `unindexed_pack` warnings. */
function onlyUnindexed(t: Test, v: VerifyReport, what: string): number {
  t.ok(v.ok, `${what}: ok`)
  t.same(v.findings.filter((f) => f.kind !== 'unindexed_pack' || f.severity !== 'warning'), [], `${what}: only unindexed_pack warnings`)
  return v.findings.length
}

interface ChildRun {
  code: number | null
  signal: NodeJS.Signals | null
  /** performance.now() when the child reported `start`, its first pack landed, its snapshot landed (0: never). */
  startedAt: number
  firstPackAt: number
  snapshotAt: number
  /** Packs on the remote when the snapshot appeared (or at the last poll). */
  packs: number
  /** ms from the child's `start` line to its exit. */
  ranMs: number
  result: { id: string; stats: SnapshotStats } | null
  stderr: string
}

/** When to SIGKILL the child: `afterMs` after it reported `start`, or after `packs` packs of it landed on the remote. */
type Kill = { from: 'start'; afterMs: number } | { from: 'packs'; packs: number; afterMs: number }

/**
 * Runs crash-child.ts on `repoDir`, SIGKILLing it as `kill` says. Reports when
 * the first pack and the snapshot appeared and how many packs there were (polling the remote's directories).
 */
function runChild(repoDir: string, cacheDir: string, source: string, kill: Kill | null): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const args = JSON.stringify({ repoDir, cacheDir, password, src: source, now: '2026-03-01T00:00:00.000Z', workers: WORKERS })
    const child = spawn(process.execPath, [...loaderArgs, childScript, args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let stderr = ''
    let started = 0
    let firstPackAt = 0
    let snapshotAt = 0
    let packs = 0
    let timer: NodeJS.Timeout | undefined
    const arm = (): void => {
      timer ??= setTimeout(() => child.kill('SIGKILL'), kill!.afterMs)
    }
    const poll = setInterval(() => {
      if (!started || snapshotAt) return
      packs = objects(repoDir, 'data').length + objects(repoDir, 'meta').length
      if (!firstPackAt && packs > 0) firstPackAt = performance.now()
      if (kill?.from === 'packs' && packs >= kill.packs) arm()
      if (objects(repoDir, 'snapshots').length) snapshotAt = performance.now()
    }, 2)
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d
      if (!started && out.startsWith('start\n')) {
        started = performance.now()
        if (kill?.from === 'start') arm()
      }
    })
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    // A child that hangs must not outlive the test.
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(guard)
      clearTimeout(timer)
      clearInterval(poll)
      const line = out.split('\n').find((l) => l.startsWith('{'))
      resolve({
        code, signal, startedAt: started, firstPackAt, snapshotAt, packs,
        ranMs: started ? performance.now() - started : -1, result: line ? JSON.parse(line) : null, stderr,
      })
    })
  })
}

async function openRepo(repoDir: string, cacheDir: string, remote?: LocalRemote | FaultyRemote): Promise<Repository> {
  const repo = await Repository.open(remote ?? (await LocalRemote.open({ path: repoDir })), { password, cacheDir })
  await repo.syncIndex()
  return repo
}

/** Worker threads per backup: each one starts by loading TypeScript through the loader, seconds of CPU on a busy machine. */
const WORKERS = Number(process.env.CRASH_WORKERS ?? 1)
const opts = { hostname: 'h', username: 'u', program: 'test', now: () => new Date('2026-03-02T00:00:00Z'), workers: WORKERS }

/** Names of the objects under `dir` of a local remote (two levels, temporary files skipped). */
function objects(repoDir: string, dir: string): string[] {
  let subs: string[]
  try {
    subs = readdirSync(join(repoDir, dir))
  } catch {
    return []
  }
  const out: string[] = []
  for (const s of subs) {
    if (s.startsWith('.tmp-')) continue
    if (dir === 'snapshots' || dir === 'index') out.push(s)
    else for (const n of readdirSync(join(repoDir, dir, s))) if (!n.startsWith('.tmp-')) out.push(n)
  }
  return out
}

t.test('SIGKILL at seeded points of a backup', async (t) => {
  t.ok(loaderArgs.length > 0 || process.execArgv.length === 0, `child loader: ${loaderArgs.join(' ')}`)
  // 1. An uninterrupted run: how long it takes, when packs start to land, when the snapshot lands.
  const b = await makeTestRepo(join(root, 'baseline'), { password })
  await b.repo.close()
  const base = await runChild(b.repoDir, b.cacheDir, src, null)
  t.equal(base.code, 0, `baseline child exits 0 ${base.stderr}`)
  t.ok(base.result?.id, 'baseline child wrote a snapshot')
  t.ok(base.firstPackAt > base.startedAt && base.snapshotAt >= base.firstPackAt, 'saw the first pack, then the snapshot')
  const baselineAdded = base.result!.stats.added_bytes
  // Most of a run before its first pack is start-up (worker threads loading TypeScript); then packs land quickly.
  const toFirstPack = base.firstPackAt - base.startedAt
  const basePacks = base.packs
  t.comment(`uninterrupted child backup: ${Math.round(base.ranMs)} ms after start (first pack at ${Math.round(toFirstPack)} ms, snapshot ${Math.round(base.snapshotAt - base.firstPackAt)} ms later, ${basePacks} packs); ${totalBytes} source bytes, ${baselineAdded} bytes added`)
  {
    const repo = await openRepo(b.repoDir, b.cacheDir)
    const v = await verify(repo, { readData: 1 })
    t.ok(v.ok && v.findings.length === 0, 'baseline verifies')
    t.ok(v.stats.packs >= 10, `baseline wrote many packs (${v.stats.packs})`)
    t.equal(v.stats.packs, basePacks)
    await repo.close()
  }

  // 2. Kill points, seeded: one during start-up (a seeded fraction of the time to the first pack), then seven spread
  //    over the writing: a seeded number of packs in each seventh of the run's packs, plus a seeded delay of 0–40 ms.
  //    Anchoring on packs rather than on time keeps the points spread over the run however busy the machine is
  //    (the writing takes a few hundred ms, start-up varies by seconds).
  const rand = rng(424242)
  // COLDSTORE_STRESS=1 (npm run test:stress): 50 points.
  const N = process.env.COLDSTORE_STRESS === '1' ? 50 : 8
  const points: { kill: Kill; frac: number }[] = []
  {
    const frac = 0.3 + 0.6 * rand()
    points.push({ frac, kill: { from: 'start', afterMs: Math.round(frac * toFirstPack) } })
  }
  for (let i = 0; i < N - 1; i++) {
    const frac = (i + 0.1 + 0.8 * rand()) / (N - 1)
    points.push({ frac, kill: { from: 'packs', packs: Math.max(1, Math.ceil(frac * basePacks)), afterMs: Math.floor(40 * rand()) } })
  }
  for (const [i, { kill, frac }] of points.entries()) {
    const what = kill.from === 'start'
      ? `${kill.afterMs} ms after start (${Math.round(frac * 100)}% of the start-up)`
      : `${kill.afterMs} ms after pack ${kill.packs} of ${basePacks} landed`
    await t.test(`kill ${i + 1}/${N}: ${what}`, async (t) => {
      let T = performance.now()
      const laps: string[] = []
      const lap = (what: string): void => {
        laps.push(`${what} ${Math.round(performance.now() - T)} ms`)
        T = performance.now()
      }
      const tr = await makeTestRepo(join(root, `kill-${i}`), { password })
      await tr.repo.close()
      const run = await runChild(tr.repoDir, tr.cacheDir, src, kill)
      // A kill can land after the snapshot was written (the child still closing): then there is nothing to recover.
      const finished = objects(tr.repoDir, 'snapshots').length > 0
      if (!finished) t.ok(run.signal === 'SIGKILL' && run.result === null, `killed before writing its snapshot ${run.stderr}`)
      else t.comment(`the kill came after the snapshot (${run.signal ?? `exit code ${run.code}`}): checking the finished run instead`)
      const onRemote = objects(tr.repoDir, 'data').length + objects(tr.repoDir, 'meta').length

      const repo = await openRepo(tr.repoDir, tr.cacheDir)
      t.teardown(() => repo.close())
      const pending = repo.cache.pendingPacks()
      const pendingBytes = pending.reduce((n, p) => n + p.size, 0)
      // Packs on the remote the cache knows (indexed, or pending: uploaded by the killed run, recorded, not yet indexed).
      let knownBytes = 0
      for (const kind of ['data', 'meta'] as const) {
        for await (const o of repo.remote.list(`${kind}/`)) if (repo.cache.hasPack(o.name.slice(o.name.lastIndexOf('/') + 1))) knownBytes += o.size
      }
      const unindexed = onlyUnindexed(t, await verify(repo), 'verify after the kill')
      t.comment(`after the kill: ${onRemote} packs on the remote, ${unindexed} of them unindexed, ${pending.length} pending in the cache (${pendingBytes} bytes); ${knownBytes} bytes of packs known to the cache`)
      // Every uploaded pack is recorded in the cache right after its upload: only the uploads finishing at the kill (at most two in flight) can be unknown to it.
      t.ok(unindexed - pending.length <= 2, `uploaded packs the cache does not know: ${unindexed - pending.length} <= 2`)
      lap('child')

      const r = await backup(repo, { ...opts, paths: [src] })
      lap('backup')
      t.ok(r.id, 'the next backup completes')
      t.same(r.warnings, [])
      const added = r.snapshot.stats.added_bytes
      t.comment(`next backup added ${added} bytes (${Math.round((100 * added) / baselineAdded)}% of an uninterrupted run)`)
      // What was uploaded and recorded in the cache is reused: only the rest is added again.
      t.ok(added <= baselineAdded - knownBytes + 512 * 1024, `reuses the packs the cache knows: ${added} <= ${baselineAdded} - ${knownBytes} + slack`)
      if (kill.from === 'packs' && frac > 0.6 && !finished) {
        if (onRemote > 2) t.ok(knownBytes > 0, 'a late kill leaves packs to reuse')
        t.ok(added < totalBytes, `added ${added} < ${totalBytes} source bytes`)
      }
      t.same(repo.cache.pendingPacks(), [], 'no packs left pending')
      onlyUnindexed(t, await verify(repo, { readData: 1 }), 'verify --read-data after the next backup')
      await checkRestore(t, repo, r.id!, src, join(root, `kill-${i}`, 'out'))
      lap('checks')
      t.comment(`timings: ${laps.join(', ')}`)
    })
  }
})

/** The most recently written pack of `kind` (by modification time). */
function newestPack(repoDir: string, kind: 'data' | 'meta'): { id: string; file: string; size: number } {
  let best: { id: string; file: string; size: number; m: bigint } | null = null
  for (const d of readdirSync(join(repoDir, kind))) {
    for (const id of readdirSync(join(repoDir, kind, d))) {
      if (id.startsWith('.tmp-')) continue
      const file = join(repoDir, kind, d, id)
      const st = statSync(file, { bigint: true })
      if (!best || st.mtimeNs > best.m) best = { id, file, size: Number(st.size), m: st.mtimeNs }
    }
  }
  return best!
}

t.test('power loss: the newest pack of a finished backup loses its second half', async (t) => {
  for (const kind of ['data', 'meta'] as const) {
    await t.test(`${kind} pack`, async (t) => {
      const tr = await makeTestRepo(join(root, `power-${kind}`), { password })
      t.teardown(() => tr.repo.close())
      const s1 = await backup(tr.repo, { ...opts, paths: [srcSmall] })
      const p = newestPack(tr.repoDir, kind)
      truncateSync(p.file, Math.floor(p.size / 2))

      const v = await verify(tr.repo, { readData: 1 })
      t.equal(v.ok, false)
      const mismatch = v.findings.filter((f) => f.kind === 'pack_size_mismatch')
      t.same(mismatch.map((f) => f.packId), [p.id], 'pack_size_mismatch names the pack')
      t.match(mismatch[0]?.message, `${Math.floor(p.size / 2)} bytes, the index says ${p.size}`)
      const errorKinds = [...new Set(v.findings.filter((f) => f.severity === 'error').map((f) => f.kind))].sort()
      if (kind === 'data') {
        t.same(errorKinds, ['missing_blob', 'pack_size_mismatch'])
        const files = v.findings.filter((f) => f.kind === 'missing_blob').flatMap((f) => f.files ?? [])
        t.ok(files.length > 0 && files.every((f) => f.startsWith(`${s1.id!.slice(0, 8)}:src-small/`)), `missing blobs name files: ${[...new Set(files)].join(', ')}`)
      } else {
        // Trees in the lost half cannot be read.
        t.same(errorKinds, ['damaged_tree', 'pack_size_mismatch'])
      }

      const rep = await repairIndex(tr.repo)
      t.same(rep.unreadable.map((u) => u.packId), [p.id], 'repair index leaves the unreadable pack out')
      const afterRepair = await verify(tr.repo)
      t.equal(afterRepair.ok, false, 'the old snapshot still lacks the lost blobs')
      t.ok(afterRepair.findings.some((f) => f.kind === 'missing_blob'))
      t.ok(afterRepair.findings.some((f) => f.kind === 'unindexed_pack' && f.packId === p.id))

      const s2 = await backup(tr.repo, { ...opts, paths: [srcSmall] })
      t.ok(s2.snapshot.stats.added_bytes > 0, 'the lost blobs are stored again')
      const v2 = await verify(tr.repo, { readData: 1 })
      // Blobs are content-addressed: storing them again heals the old snapshot too.
      t.same(v2.findings.map((f) => [f.kind, f.packId]), [['unindexed_pack', p.id]], 'only the truncated pack remains, as a warning')
      t.ok(v2.ok)
      await checkRestore(t, tr.repo, s2.id!, srcSmall, join(root, `power-${kind}`, 'out2'))
      await checkRestore(t, tr.repo, s1.id!, srcSmall, join(root, `power-${kind}`, 'out1'))
    })
  }
})

t.test('power loss: a pending pack of an interrupted backup loses its second half', async (t) => {
  for (const withRepair of [false, true]) {
    await t.test(withRepair ? 'repair index, then back up' : 'back up again directly (same cache)', async (t) => {
      const dir = join(root, `pending-${withRepair ? 'repair' : 'direct'}`)
      const tr = await makeTestRepo(dir, { password })
      await tr.repo.close()
      // A run that uploads its packs and then dies before writing the index.
      const faulty = new FaultyRemote(await LocalRemote.open({ path: tr.repoDir }), [{ method: 'put', name: /^index\//, error: new Error('power lost') }])
      const dying = await openRepo(tr.repoDir, tr.cacheDir, faulty)
      await t.rejects(backup(dying, { ...opts, paths: [srcSmall] }), { message: 'power lost' })
      t.ok(dying.cache.pendingPacks().length >= 3, 'packs were uploaded and are pending')
      await dying.close()
      const p = newestPack(tr.repoDir, 'data')
      truncateSync(p.file, Math.floor(p.size / 2))

      const repo = await openRepo(tr.repoDir, tr.cacheDir)
      t.teardown(() => repo.close())
      // No index names the pack, so verify cannot know its size: it is an unindexed pack like the others.
      const v = await verify(repo, { readData: 1 })
      t.ok(v.ok)
      t.ok(v.findings.some((f) => f.kind === 'unindexed_pack' && f.packId === p.id))
      if (withRepair) {
        const rep = await repairIndex(repo)
        t.same(rep.unreadable.map((u) => u.packId), [p.id], 'repair index leaves the unreadable pack out')
      }
      const r = await backup(repo, { ...opts, paths: [srcSmall] })
      const v2 = await verify(repo, { readData: 1 })
      onlyUnindexed(t, v2, 'verify --read-data of the new snapshot')
      t.ok(v2.findings.some((f) => f.packId === p.id), 'the truncated pack stays, as an unindexed warning')
      await checkRestore(t, repo, r.id!, srcSmall, join(dir, 'out'))
    })
  }
})
