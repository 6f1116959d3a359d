/**
 * prune while another process writes (engine/testing/prune-child.ts: a second "host" with its own cache,
 * stopped at a chosen point so the prune runs exactly then):
 * - its packs uploaded but not indexed yet (young, unindexed): marked, never deleted while it runs, kept
 *   once its snapshot needs them;
 * - it reuses data a forget left unreferenced, and prune marks that data meanwhile: kept;
 * - it starts after the plan: it stores that data again, and the sweep deletes the old copies;
 * - a freeze written meanwhile (unindexed packs, or indexed packs without its snapshot object yet): forget
 *   and prune leave it and its data;
 * - it dies holding its lock: the lock goes stale and blocks nothing (it is cleaned up).
 * After each: verify --read-data passes and every snapshot restores byte-identical.
 */
import t, { type Test } from 'tap'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { backup } from '../backup/index.js'
import { listLocks } from '../gc/index.js'
import { Repository } from '../repo/index.js'
import { restore } from '../restore/index.js'
import { listSnapshots } from '../snapshot/index.js'
import { makeTestRepo, seededBytes, writeTree, type TestRepo, readTree } from '../testing/test-repo.js'
import { verify } from '../verify/index.js'
import { forget, prune } from './index.js'

const childScript = fileURLToPath(new URL('../testing/prune-child.ts', import.meta.url))
const loaderArgs = process.execArgv.filter((a) => a.includes('@tapjs/typescript') || a.includes('ts-node') || a.includes('tsx'))
const root = t.testdir()
let n = 0
const HOUR = 3_600_000
const pruner = { host: 'pruner', username: 'tester', program: 'coldstore test' }
const expected = new Map<string, Map<string, Buffer>>()

function packs(repoDir: string): string[] {
  const out: string[] = []
  for (const kind of ['data', 'meta']) {
    if (!existsSync(join(repoDir, kind))) continue
    for (const x of readdirSync(join(repoDir, kind))) for (const f of readdirSync(join(repoDir, kind, x))) if (!f.startsWith('.')) out.push(`${kind}/${x}/${f}`)
  }
  return out.sort()
}

async function fresh(t: Test): Promise<TestRepo & { dir: string }> {
  const dir = join(root, `r${++n}`)
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  return { ...tr, dir }
}

/** A child writer; `next(line)` waits for a stdout line; `go()` lets a paused child continue. */
class Child {
  readonly proc: ChildProcessWithoutNullStreams
  private readonly lines: AsyncIterator<string>
  constructor(tr: TestRepo & { dir: string }, src: string, o: { kind?: 'snapshot' | 'freeze'; pauseAt: string | null }) {
    const args = { repoDir: tr.repoDir, cacheDir: join(tr.dir, `child-cache-${++n}`), password: tr.password, src, kind: o.kind ?? 'snapshot', pauseAt: o.pauseAt, time: new Date().toISOString() }
    this.proc = spawn(process.execPath, [...loaderArgs, childScript, JSON.stringify(args)], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.proc.stderr.on('data', (d: Buffer) => process.stderr.write(d))
    this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]()
  }
  async next(want: string | RegExp): Promise<string> {
    const r = await this.lines.next()
    if (r.done) throw new Error(`child ended before ${String(want)}`)
    if (typeof want === 'string' ? r.value !== want : !want.test(r.value)) throw new Error(`child said ${JSON.stringify(r.value)}, expected ${String(want)}`)
    return r.value
  }
  go(): void {
    this.proc.stdin.write('go\n')
  }
  async done(): Promise<string> {
    const line = await this.next(/^\{/)
    await new Promise((r) => this.proc.once('exit', r))
    return (JSON.parse(line) as { id: string }).id
  }
}

const now = (): Date => new Date()

async function intact(t: Test, repo: Repository, what: string): Promise<void> {
  const v = await verify(repo, { readData: 1 })
  t.ok(v.ok, `${what}: verify --read-data passes`, { findings: v.findings.filter((f) => f.severity === 'error') })
  for (const s of await listSnapshots(repo)) {
    const want = expected.get(s.id)
    t.ok(want, `${what}: snapshot ${s.id.slice(0, 8)} is one the test made`)
    if (!want) continue
    const target = join(root, `restore-${++n}`)
    const r = await restore(repo, { snapshot: s, target })
    t.same(r.errors, [], `${what}: ${s.kind} ${s.id.slice(0, 8)} restores without errors`)
    const got = readTree(join(target, s.paths[0].split('/').at(-1)!))
    const same = got.size === want.size && [...want].every(([p, b]) => got.get(p)?.equals(b))
    t.ok(same, `${what}: ${s.kind} ${s.id.slice(0, 8)} restores byte-identical (${want.size} files)`)
  }
}

t.test('a writer\'s young, unindexed packs: marked, kept while it runs and once its snapshot needs them', async (t) => {
  const tr = await fresh(t)
  const src = join(tr.dir, 'src')
  writeTree(src, { 'a.bin': seededBytes('young-a', 2_500_000), 'b.txt': 'young' })
  const child = new Child(tr, src, { pauseAt: 'index/' })
  await child.next('started')
  await child.next('paused')
  const uploaded = packs(tr.repoDir)
  t.ok(uploaded.length >= 3, `the writer uploaded ${uploaded.length} packs, no index names them`)
  t.notOk(existsSync(join(tr.repoDir, 'index')) && readdirSync(join(tr.repoDir, 'index')).length > 0, 'no index object yet')
  const r1 = await prune(tr.repo, { ...pruner, now, safetyDelayMs: 0 })
  t.equal(r1.marked?.delete.packs, uploaded.length, 'prune marks them: nothing needs them yet')
  t.same(r1.freed.packs, 0, 'but deletes none')
  t.same(r1.deferred.map((d) => [d.reason, d.writers.map((w) => w.host)]), [['writers', ['other-host']]], 'the sweep waits for the writer that started before the plan')
  t.same(packs(tr.repoDir), uploaded)
  child.go()
  const id = await child.done()
  expected.set(id, readTree(src))
  const r2 = await prune(tr.repo, { ...pruner, now, safetyDelayMs: 0 })
  t.equal(r2.swept.length, 1, 'the plan is carried out once the writer is done')
  t.equal(r2.swept[0].kept, uploaded.length, 'and keeps every pack: the snapshot needs them')
  t.same(r2.freed.packs, 0)
  await intact(t, await tr.reopen(), 'after')
})

t.test('a writer reuses forgotten data while prune marks it: the data is kept', async (t) => {
  const tr = await fresh(t)
  const src = join(tr.dir, 'src')
  writeTree(src, { 'big.bin': seededBytes('reuse-big', 3_000_000) })
  const a = await backup(tr.repo, { paths: [src], hostname: 'h', username: 'u', program: 't', now: () => new Date(Date.now() - HOUR) })
  await forget(tr.repo, { policy: { tags: [['none']] }, now })
  t.notOk(existsSync(join(tr.repoDir, 'snapshots', a.id!)), 'the only snapshot is forgotten: its data is unreferenced')
  writeFileSync(join(src, 'new.txt'), 'a new file')
  const child = new Child(tr, src, { pauseAt: 'snapshots/' })
  await child.next('started')
  await child.next('paused') // deduplicated against the forgotten data, index written, snapshot object not yet
  const r1 = await prune(tr.repo, { ...pruner, now, safetyDelayMs: 0 })
  t.ok((r1.marked?.delete.packs ?? 0) > 0, `prune marks the forgotten data (${r1.marked?.delete.packs} packs)`)
  t.equal(r1.deferred[0]?.reason, 'writers', 'the sweep waits for the writer')
  t.same(r1.freed.packs, 0)
  child.go()
  const id = await child.done()
  expected.set(id, readTree(src))
  const r2 = await prune(tr.repo, { ...pruner, now, safetyDelayMs: 0 })
  t.ok(r2.swept[0].kept > 0, `the sweep keeps the ${r2.swept[0].kept} packs the new snapshot reuses`)
  await intact(t, await tr.reopen(), 'after')
})

t.test('a writer that starts after the plan stores the marked data again; the sweep deletes the old copies', async (t) => {
  const tr = await fresh(t)
  const src = join(tr.dir, 'src')
  writeTree(src, { 'big.bin': seededBytes('after-big', 3_000_000) })
  const a = await backup(tr.repo, { paths: [src], hostname: 'h', username: 'u', program: 't', now: () => new Date(Date.now() - HOUR) })
  await forget(tr.repo, { policy: { tags: [['none']] }, now })
  const r1 = await prune(tr.repo, { ...pruner, now }) // default delay: marks only
  const marked = r1.marked!.delete
  t.ok(marked.packs >= 3)
  const child = new Child(tr, src, { pauseAt: null })
  await child.next('started')
  const id = await child.done()
  expected.set(id, readTree(src))
  const fresh2 = await tr.reopen()
  const s = (await listSnapshots(fresh2)).find((x) => x.id === id)!
  t.ok(s.stats.added_data_bytes! >= 3_000_000, `the writer stored the data again (${s.stats.added_data_bytes} bytes) instead of reusing marked packs`)
  const later = new Date(Date.now() + 2 * HOUR)
  const r2 = await prune(tr.repo, { ...pruner, now: () => later })
  t.equal(r2.swept.length, 1)
  t.same(r2.freed, marked, 'the sweep deletes every marked pack')
  t.equal(r2.swept[0].kept, 0)
  await intact(t, await tr.reopen(), 'after')
  void a
})

for (const pauseAt of ['index/', 'snapshots/']) {
  t.test(`forget and prune while a freeze is written (paused before ${pauseAt === 'index/' ? 'its first index object' : 'its snapshot object'})`, async (t) => {
    const tr = await fresh(t)
    const src = join(tr.dir, 'paper')
    writeTree(src, { 'data.bin': seededBytes('fz-data', 2_600_000), 'paper.tex': 'final' })
    // Older snapshots of the same folder, the oldest forgotten: the freeze reuses its data.
    const old = await backup(tr.repo, { paths: [src], hostname: 'h', username: 'u', program: 't', now: () => new Date(Date.now() - 3 * HOUR) })
    writeTree(src, { 'paper.tex': 'final, really' })
    const keep = await backup(tr.repo, { paths: [src], hostname: 'h', username: 'u', program: 't', now: () => new Date(Date.now() - 2 * HOUR) })
    expected.set(keep.id!, readTree(src))
    writeTree(src, { 'figure.bin': seededBytes('fz-figure', 1_500_000) })
    await forget(tr.repo, { policy: { last: 1 }, now })
    t.notOk(existsSync(join(tr.repoDir, 'snapshots', old.id!)))
    const child = new Child(tr, src, { kind: 'freeze', pauseAt })
    await child.next('started')
    await child.next('paused')
    const during = packs(tr.repoDir)
    const f = await forget(tr.repo, { policy: { last: 1 }, now })
    t.same(f.removed, [], 'forget finds nothing to remove (the freeze has no snapshot object yet)')
    const r = await prune(tr.repo, { ...pruner, now, safetyDelayMs: 0, repackThreshold: 0 })
    t.equal(r.deferred[0]?.reason, 'writers', 'the sweep waits for the freeze')
    t.same(r.freed.packs, 0)
    t.ok(during.every((p) => existsSync(join(tr.repoDir, p))), 'every pack is still there')
    child.go()
    const id = await child.done()
    expected.set(id, readTree(src))
    const f2 = await forget(tr.repo, { policy: { last: 1 }, now })
    const reopened = await tr.reopen()
    t.same(f2.decision.keep.find((k) => k.id === id)?.reasons, ['freeze'], 'the freeze is kept as a freeze')
    const r2 = await prune(reopened, { ...pruner, now, safetyDelayMs: 0, repackThreshold: 0 })
    t.ok(r2.pinned_packs > 0, `${r2.pinned_packs} packs pinned by the freeze`)
    t.ok(existsSync(join(tr.repoDir, 'snapshots', id)), 'the freeze object is there')
    await intact(t, await tr.reopen(), 'after')
  })
}

t.test('a writer that dies holding its lock blocks nothing once the lock is stale, and its lock is cleaned up', async (t) => {
  const tr = await fresh(t)
  const src = join(tr.dir, 'src')
  writeTree(src, { 'lost.bin': seededBytes('dead-writer', 2_200_000) })
  const child = new Child(tr, src, { pauseAt: 'index/' })
  await child.next('started')
  await child.next('paused')
  const r1 = await prune(tr.repo, { ...pruner, now })
  t.ok((r1.marked?.delete.packs ?? 0) >= 2, 'its uploaded packs are marked')
  child.proc.kill('SIGKILL')
  await new Promise((r) => child.proc.once('exit', r))
  t.equal((await listLocks(tr.repo)).filter((l) => l.doc.kind === 'writer').length, 1, 'its lock is left behind')
  // Two hours on: the plan is due, the lock was not refreshed since the plan recorded it, and is an hour stale.
  const later = new Date(Date.now() + 2 * HOUR)
  const r2 = await prune(tr.repo, { ...pruner, now: () => later })
  t.equal(r2.swept.length, 1, 'the plan is carried out')
  t.same(r2.freed, r1.marked!.delete, 'the dead writer\'s packs are deleted')
  t.equal(r2.stale_locks_removed, 1)
  t.same(await listLocks(tr.repo), [], 'no lock is left')
  await intact(t, await tr.reopen(), 'after')
})
