/**
 * prune and forget on real repositories in temp dirs, with an injected clock:
 * - packs no snapshot needs are marked, and deleted only by a run after the safety delay;
 * - partly used packs above the threshold are repacked (live blobs copied, index rewritten, old packs
 *   deleted after the delay); index objects are compacted;
 * - a dry run changes nothing and reports what the real run then does;
 * - freezes, and everything they need, are never removed, also with a retention lock (the remote is not
 *   even asked to delete a protected object);
 * - after every step: verify --read-data passes and every remaining snapshot restores byte-identical.
 * Concurrency with writers in other processes is in concurrent.test.ts.
 */
import t, { type Test } from 'tap'
import { readdirSync, statSync, writeFileSync, rmSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { backup } from '../backup/index.js'
import { freeze } from '../freeze/index.js'
import { LocalRemote, type Remote } from '../remote/index.js'
import { Repository } from '../repo/index.js'
import { restore } from '../restore/index.js'
import { listSnapshots, loadSnapshot, saveSnapshot } from '../snapshot/index.js'
import { makeTestRepo, seededBytes, writeTree, type TestRepo, readTree } from '../testing/test-repo.js'
import { verify } from '../verify/index.js'
import { listPrunePlans, RepoSession } from '../gc/index.js'
import { forget, prune, type PruneOptions, type PruneReport } from './index.js'
import { IntegrityError, LockedError, UsageError } from '../errors.js'

const root = t.testdir()
let dirs = 0
const HOUR = 3_600_000
const T0 = Date.parse('2026-05-01T00:00:00Z')
const pruner = { host: 'pruner', username: 'tester', program: 'coldstore test' }

/** Source trees as they were at each snapshot, to compare restores with. */
const expected = new Map<string, Map<string, Buffer>>()

async function fresh(t: Test): Promise<TestRepo & { dir: string }> {
  const dir = join(root, `r${++dirs}`)
  const tr = await makeTestRepo(dir) // 1 MiB packs, 16-256 KiB chunks
  t.teardown(() => tr.repo.close())
  return { ...tr, dir }
}

async function snapshot(repo: Repository, src: string, at: number, kind: 'snapshot' | 'freeze' = 'snapshot'): Promise<string> {
  const r = await backup(repo, { paths: [src], hostname: 'h', username: 'u', program: 'test', now: () => new Date(at), kind })
  expected.set(r.id!, readTree(src))
  return r.id!
}

function packs(repoDir: string): string[] {
  const out: string[] = []
  for (const kind of ['data', 'meta']) {
    const d = join(repoDir, kind)
    if (!existsSync(d)) continue
    for (const x of readdirSync(d)) for (const f of readdirSync(join(d, x))) if (!f.startsWith('.')) out.push(`${kind}/${x}/${f}`)
  }
  return out.sort()
}

function listing(repoDir: string, sub = ''): string[] {
  const out: string[] = []
  for (const n of readdirSync(join(repoDir, sub))) {
    const p = join(sub, n)
    if (statSync(join(repoDir, p)).isDirectory()) out.push(...listing(repoDir, p))
    else out.push(`${p} ${statSync(join(repoDir, p)).size}`)
  }
  return out.sort()
}

function opts(at: number, o: Partial<PruneOptions> = {}): PruneOptions {
  return { ...pruner, now: () => new Date(at), ...o }
}

/** verify --read-data passes and every snapshot restores byte-identical to its source then. */
async function intact(t: Test, repo: Repository, what: string): Promise<void> {
  const v = await verify(repo, { readData: 1 })
  t.ok(v.ok, `${what}: verify --read-data passes`, { findings: v.findings.filter((f) => f.severity === 'error') })
  for (const s of await listSnapshots(repo)) {
    const want = expected.get(s.id)
    if (!want) continue
    const target = join(root, `restore-${++dirs}`)
    const r = await restore(repo, { snapshot: s, target })
    t.same(r.errors, [], `${what}: ${s.id.slice(0, 8)} restores without errors`)
    const name = s.paths[0].split('/').at(-1)!
    const got = readTree(join(target, name))
    let same = got.size === want.size
    for (const [p, b] of want) if (!got.get(p)?.equals(b)) same = false
    t.ok(same, `${what}: ${s.id.slice(0, 8)} restores byte-identical (${want.size} files)`)
  }
}

t.test('unreferenced packs are marked, and deleted only by a run after the safety delay', async (t) => {
  const tr = await fresh(t)
  const src = join(tr.dir, 'src')
  writeTree(src, { 'shared.bin': seededBytes('shared', 600_000), 'a.bin': seededBytes('only-a', 2_500_000) })
  const a = await snapshot(tr.repo, src, T0 - 2 * HOUR)
  rmSync(join(src, 'a.bin'))
  writeTree(src, { 'b.bin': seededBytes('only-b', 500_000) })
  const b = await snapshot(tr.repo, src, T0 - HOUR)
  const before = packs(tr.repoDir)

  const f = await forget(tr.repo, { policy: { last: 1 }, now: () => new Date(T0) })
  t.same(f.removed, [a], 'forget removes the older snapshot')
  t.notOk(existsSync(join(tr.repoDir, 'snapshots', a)), 'its object is gone')
  t.same(packs(tr.repoDir), before, 'forget deletes no data')

  const r1 = await prune(tr.repo, opts(T0))
  t.ok(r1.marked && r1.marked.delete.packs > 0, `the first run marks ${r1.marked?.delete.packs} packs`)
  t.same(r1.freed, { packs: 0, bytes: 0, blobs: 0 }, 'and deletes nothing')
  const afterMark = packs(tr.repoDir)
  t.ok(before.every((p) => afterMark.includes(p)), 'every pack is still there')
  t.equal(afterMark.length, before.length + r1.marked!.written.packs, 'beside the copies of repacked packs')
  t.equal((await listPrunePlans(tr.repo)).length, 1, 'a plan object records them')

  const r2 = await prune(tr.repo, opts(T0 + HOUR / 2))
  t.same(r2.deferred.map((d) => d.reason), ['not_due'], 'half an hour later the plan is not due')
  t.equal(r2.deferred[0].deletable_after, new Date(T0 + HOUR).toISOString())
  t.same(r2.freed.packs, 0)
  t.same(packs(tr.repoDir), afterMark)

  const r3 = await prune(tr.repo, opts(T0 + HOUR + 1000))
  t.equal(r3.swept.length, 1, 'after the delay the plan is carried out')
  const m = r1.marked!
  t.same(r3.freed, { packs: m.delete.packs + m.repacked.packs, bytes: m.delete.bytes + m.repacked.bytes, blobs: m.delete.blobs + m.repacked.blobs }, 'exactly what was marked (unused and repacked packs) is freed')
  const after = packs(tr.repoDir)
  t.equal(after.length, before.length - m.delete.packs - m.repacked.packs + m.written.packs)
  t.equal((await listPrunePlans(tr.repo)).length, 0, 'the plan is removed')
  t.equal(r3.marked, null, 'nothing more to mark')
  await intact(t, await tr.reopen(), 'after the sweep')
  void b
})

t.test('a plan is not carried out for packs a snapshot made since needs', async (t) => {
  const tr = await fresh(t)
  const src = join(tr.dir, 'src')
  writeTree(src, { 'x.bin': seededBytes('x', 2_200_000) })
  const a = await snapshot(tr.repo, src, T0 - HOUR)
  const doc = await loadSnapshot(tr.repo, a)
  await forget(tr.repo, { policy: { tags: [['none']] }, now: () => new Date(T0) })
  t.notOk(existsSync(join(tr.repoDir, 'snapshots', a)))
  const r1 = await prune(tr.repo, opts(T0))
  t.ok(r1.marked!.delete.packs > 0)
  // A snapshot needing exactly the marked packs appears (as a writer that had not seen the plan would write it).
  const { id: _id, ...body } = doc
  const again = await saveSnapshot(tr.repo, body)
  expected.set(again, expected.get(a)!)
  const before = packs(tr.repoDir)
  const r2 = await prune(tr.repo, opts(T0 + 2 * HOUR))
  t.equal(r2.swept.length, 1, 'the plan is swept')
  t.equal(r2.swept[0].kept, r1.marked!.delete.packs, 'every marked pack is kept: the new snapshot needs them')
  t.same(r2.freed.packs, 0)
  t.same(packs(tr.repoDir), before)
  await intact(t, await tr.reopen(), 'after the sweep')
})

t.test('partly used packs above the threshold are repacked; the old ones go after the delay', async (t) => {
  const tr = await fresh(t)
  const src = join(tr.dir, 'src')
  // Many small files share packs; removing every other one leaves each pack about half used.
  const files: Record<string, Buffer> = {}
  for (let i = 0; i < 40; i++) files[`f${i}.bin`] = seededBytes(`small-${i}`, 30_000 + i * 101)
  writeTree(src, files)
  await snapshot(tr.repo, src, T0 - 2 * HOUR)
  for (let i = 0; i < 40; i += 2) rmSync(join(src, `f${i}.bin`))
  await snapshot(tr.repo, src, T0 - HOUR)
  const indexBefore = readdirSync(join(tr.repoDir, 'index')).length
  await forget(tr.repo, { policy: { last: 1 }, now: () => new Date(T0) })

  const r1 = await prune(tr.repo, opts(T0))
  t.ok(r1.marked!.repacked.packs > 0, `${r1.marked!.repacked.packs} packs repacked`)
  t.ok(r1.marked!.written.packs > 0 && r1.marked!.written.bytes < r1.marked!.repacked.bytes, 'into fewer bytes')
  t.ok(r1.marked!.written.blobs <= r1.marked!.repacked.blobs)
  t.equal(r1.index.objects_before, indexBefore)
  t.equal(r1.index.objects_after, 1, 'the index is compacted into one object')
  t.equal(readdirSync(join(tr.repoDir, 'index')).length, 1)
  await intact(t, await tr.reopen(), 'after repacking (old packs still there, not indexed)')
  const v = await verify(await tr.reopen(), {})
  t.ok(v.findings.some((f) => f.kind === 'unindexed_pack'), 'verify sees the old packs as unindexed (a warning) until the sweep')

  const r2 = await prune(tr.repo, opts(T0 + HOUR + 1))
  t.equal(r2.freed.packs, r1.marked!.repacked.packs + r1.marked!.delete.packs, 'the sweep deletes the repacked packs')
  const v2 = await verify(await tr.reopen(), { readData: 1 })
  t.same(v2.findings, [], 'no findings at all afterwards')
  await intact(t, await tr.reopen(), 'after the sweep')

  const r3 = await prune(tr.repo, opts(T0 + 3 * HOUR, { repackThreshold: 0.1 }))
  t.equal(r3.marked, null, 'a second round finds nothing to do')
})

t.test('--dry-run changes nothing and reports what the real run does', async (t) => {
  const tr = await fresh(t)
  const src = join(tr.dir, 'src')
  const files: Record<string, Buffer> = {}
  for (let i = 0; i < 30; i++) files[`f${i}.bin`] = seededBytes(`dry-${i}`, 25_000 + i * 77)
  writeTree(src, files)
  await snapshot(tr.repo, src, T0 - 3 * HOUR)
  for (let i = 0; i < 30; i += 3) rmSync(join(src, `f${i}.bin`))
  writeTree(src, { 'new.bin': seededBytes('dry-new', 300_000) })
  await snapshot(tr.repo, src, T0 - 2 * HOUR)
  rmSync(join(src, 'new.bin'))
  await snapshot(tr.repo, src, T0 - HOUR)

  const before = listing(tr.repoDir)
  const fd = await forget(tr.repo, { policy: { last: 1 }, now: () => new Date(T0), dryRun: true })
  t.equal(fd.decision.remove.length, 2)
  t.same(listing(tr.repoDir), before, 'forget --dry-run changes nothing')
  await forget(tr.repo, { policy: { last: 1 }, now: () => new Date(T0) })

  const strip = (r: PruneReport): unknown => JSON.parse(JSON.stringify({ ...r, dry_run: null, marked: r.marked && { ...r.marked, plan: null }, swept: r.swept.map((s) => ({ ...s, plan: null })), deferred: r.deferred.map((d) => ({ ...d, plan: null })) }))
  for (const [step, at] of [['mark', T0], ['sweep', T0 + HOUR + 1]] as const) {
    const snap = listing(tr.repoDir)
    const dry = await prune(tr.repo, opts(at, { dryRun: true }))
    t.same(listing(tr.repoDir), snap, `${step}: the dry run changes nothing`)
    const real = await prune(tr.repo, opts(at))
    t.same(strip(real), strip(dry), `${step}: the real run did what the dry run reported`)
  }
  // Safety delay 0 frees in one run; its dry run says so too.
  writeTree(src, { 'late.bin': seededBytes('dry-late', 1_400_000) })
  const late = await snapshot(tr.repo, src, T0 + 2 * HOUR)
  await tr.repo.remote.delete(`snapshots/${late}`)
  const dry0 = await prune(tr.repo, opts(T0 + 3 * HOUR, { dryRun: true, safetyDelayMs: 0 }))
  const real0 = await prune(tr.repo, opts(T0 + 3 * HOUR, { safetyDelayMs: 0 }))
  t.ok(real0.freed.packs > 0, 'delay 0: deleted in the same run')
  t.same(dry0.freed, real0.freed, 'and the dry run predicted it')
  await intact(t, await tr.reopen(), 'after all')
})

t.test('freezes and everything they need are never removed', async (t) => {
  const tr = await fresh(t)
  const src = join(tr.dir, 'paper')
  writeTree(src, { 'data.bin': seededBytes('paper-data', 2_400_000), 'paper.tex': 'v1' })
  const fr = await snapshot(tr.repo, src, T0 - 5 * HOUR, 'freeze')
  writeTree(src, { 'paper.tex': 'v2', 'extra.bin': seededBytes('paper-extra', 1_300_000) })
  const s1 = await snapshot(tr.repo, src, T0 - 4 * HOUR)
  rmSync(join(src, 'data.bin'))
  const s2 = await snapshot(tr.repo, src, T0 - 3 * HOUR)
  const f = await forget(tr.repo, { policy: { last: 1 }, now: () => new Date(T0) })
  t.same(f.removed, [s1], 'forget removes the older snapshot, not the freeze')
  t.same(f.decision.keep.find((k) => k.id === fr)?.reasons, ['freeze'])
  t.ok(existsSync(join(tr.repoDir, 'snapshots', fr)))
  const r = await prune(tr.repo, opts(T0, { safetyDelayMs: 0, repackThreshold: 0 }))
  t.ok(r.pinned_packs > 0, `${r.pinned_packs} packs pinned by the freeze`)
  t.ok(r.freed.packs > 0, 'what only the forgotten snapshot needed is deleted')
  await intact(t, await tr.reopen(), 'the freeze and the kept snapshot')
  const again = await forget(tr.repo, { policy: { last: 1 }, now: () => new Date(T0 + HOUR) })
  t.same(again.removed, [], 'the freeze stays whatever the policy')
  void s2
})

/** A remote that records delete calls (and passes everything else through). */
function recording(inner: LocalRemote, deleted: string[]): Remote {
  return {
    properties: inner.properties, protection: inner.protection, createWriter: (d) => inner.createWriter(d),
    get: (n, r) => inner.get(n, r), stat: (n) => inner.stat(n), list: (p) => inner.list(p), put: (n, d, o) => inner.put(n, d, o),
    close: () => inner.close(), delete: async (n) => { deleted.push(n); await inner.delete(n) },
  }
}

t.test('a freeze with a retention lock: its objects are never asked to be deleted, even once the retention expired', async (t) => {
  const tr = await fresh(t)
  const src = join(tr.dir, 'proj')
  writeTree(src, { 'a.bin': seededBytes('locked-a', 500_000), 'b.bin': seededBytes('locked-b', 500_000) })
  const fz = await freeze(tr.repo, {
    source: src, event: { type: 'audit', name: null, deliverable: null, description: null, contact: null }, compliance: null,
    retentionYears: 1, legalHold: false, git: null, includeEnvironment: false, includeSetupDocs: false, includeReports: false,
    gitignore: false, excludes: [], configFiles: [], destination: tr.repoDir, nodeVersion: process.version,
    hostname: 'h', username: 'u', program: 'test', now: () => new Date(T0 - HOUR),
  })
  t.ok(fz.protectedObjects > 0, `${fz.protectedObjects} objects made read-only`)
  expected.set(fz.id!, readTree(src))
  // A snapshot sharing one file, then forgotten: its other pack is garbage next to locked ones.
  writeTree(src, { 'c.bin': seededBytes('locked-c', 2_400_000) })
  rmSync(join(src, 'b.bin'))
  const s = await snapshot(tr.repo, src, T0 - HOUR / 2)
  await forget(tr.repo, { policy: { tags: [['none']] }, now: () => new Date(T0) })
  t.notOk(existsSync(join(tr.repoDir, 'snapshots', s)))
  const protectedNames = listing(tr.repoDir).map((l) => l.split(' ')[0]).filter((n) => (statSync(join(tr.repoDir, n)).mode & 0o222) === 0)
  t.ok(protectedNames.some((n) => n.startsWith('data/')) && protectedNames.some((n) => n.startsWith('index/')), 'packs and index objects are read-only')

  const deleted: string[] = []
  const repo = await Repository.open(recording(await LocalRemote.open({ path: tr.repoDir }), deleted), { password: tr.password, cacheDir: join(tr.dir, 'cache-rec') })
  t.teardown(() => repo.close())
  await repo.syncIndex()
  // Two years later the retention has expired; the files are still read-only and prune still keeps them.
  const later = T0 + 2 * 365 * 24 * HOUR
  const r = await prune(repo, opts(later, { safetyDelayMs: 0, repackThreshold: 0 }))
  t.ok(r.freed.packs > 0, 'the forgotten snapshot\'s own data is deleted')
  t.same(deleted.filter((n) => protectedNames.includes(n)), [], 'no protected object was asked to be deleted')
  for (const n of protectedNames) t.ok(existsSync(join(tr.repoDir, n)), `${n} is still there`)
  await intact(t, await tr.reopen(), 'the locked freeze')
})

t.test('forget: filters, grouping and errors', async (t) => {
  const tr = await fresh(t)
  const src = join(tr.dir, 'src')
  writeTree(src, { 'a.txt': 'a' })
  const ids: string[] = []
  for (let i = 0; i < 4; i++) {
    writeFileSync(join(src, 'a.txt'), `a${i}`)
    const r = await backup(tr.repo, { paths: [src], hostname: i % 2 ? 'h2' : 'h1', username: 'u', program: 't', job: i < 2 ? 'docs' : null, now: () => new Date(T0 + i * HOUR) })
    ids.push(r.id!)
  }
  await t.rejects(forget(tr.repo, { policy: {}, now: () => new Date(T0) }), UsageError, 'an empty policy is refused')
  const byHost = await forget(tr.repo, { policy: { last: 1 }, hosts: ['h1'], now: () => new Date(T0 + 9 * HOUR), dryRun: true, groupBy: ['host'] })
  t.equal(byHost.considered, 2, 'only h1 snapshots are considered')
  t.same(byHost.decision.remove.map((r) => r.id), [ids[0]])
  const byJob = await forget(tr.repo, { policy: { last: 1 }, jobs: ['docs'], now: () => new Date(T0 + 9 * HOUR), dryRun: true })
  t.equal(byJob.considered, 2)
  t.same(byJob.decision.remove, [], 'docs on h1 and on h2 are two groups (auto: host and job)')
  let asked = 0
  const declined = await forget(tr.repo, { policy: { last: 1 }, groupBy: [], now: () => new Date(T0 + 9 * HOUR), approve: async () => { asked++; return false } })
  t.equal(asked, 1)
  t.ok(declined.aborted)
  t.equal((await listSnapshots(tr.repo)).length, 4, 'declined: nothing removed')
  const done = await forget(tr.repo, { policy: { last: 1 }, groupBy: [], now: () => new Date(T0 + 9 * HOUR) })
  t.equal(done.removed.length, 3)
  t.same((await listSnapshots(tr.repo)).map((s) => s.id), [ids[3]])
})

t.test('one prune at a time; a stale prune lock does not block; a damaged repository is left alone', async (t) => {
  const tr = await fresh(t)
  const src = join(tr.dir, 'src')
  writeTree(src, { 'a.bin': seededBytes('lock-a', 1_200_000) })
  await snapshot(tr.repo, src, T0 - HOUR)
  const other = await RepoSession.start(tr.repo, { kind: 'prune', operation: 'prune', host: 'elsewhere', username: 'ops', program: 'p', clock: () => new Date(T0) })
  await t.rejects(prune(tr.repo, opts(T0 + 60_000)), LockedError, 'a live prune lock stops a second prune')
  t.ok((await prune(tr.repo, opts(T0 + 2 * HOUR))).dry_run === false, 'two hours later that lock is stale: prune runs')
  await other.end()
  // Damage: a tree pack is gone. prune must not act on a partial view of what is needed.
  writeTree(src, { 'b.bin': seededBytes('lock-b', 1_200_000) })
  await snapshot(tr.repo, src, T0)
  await forget(tr.repo, { policy: { last: 1 }, now: () => new Date(T0 + HOUR) })
  const meta = packs(tr.repoDir).filter((p) => p.startsWith('meta/'))
  for (const m of meta) rmSync(join(tr.repoDir, m))
  const before = listing(tr.repoDir)
  const broken = await tr.reopen()
  t.teardown(() => broken.close())
  await t.rejects(prune(broken, opts(T0 + 3 * HOUR, { safetyDelayMs: 0 })), IntegrityError, 'prune refuses')
  t.same(listing(tr.repoDir).filter((l) => !l.startsWith('locks/')), before.filter((l) => !l.startsWith('locks/')), 'and changed nothing')
})
