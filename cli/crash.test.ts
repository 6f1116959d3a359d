/**
 * Crash consistency of the built CLI: `coldstore snapshot` and `coldstore freeze` SIGKILLed at seeded,
 * reproducible points, then checked as a user would: `verify --read-data` passes (packs left by the killed
 * run are only warnings), every completed snapshot restores byte-identical, `audit --verify` finds nothing
 * but what an interrupted run explains, and the next run (a snapshot again; `resume` of the interrupted
 * freeze) completes without writing again what the killed run stored (bytes written to the repository
 * counted by fs-hook.mjs).
 *
 * Kill points: by progress, at an exact file-system event of the run below the repository or the cache
 * (fs-hook.mjs numbers every create, write, fsync, rename, link, unlink, mkdir and chmod; named points pick
 * one by kind: after the Nth pack landed, with the index object written and synced but not yet renamed, just
 * before the snapshot object is renamed into place, before the audit entry), and by time (a seeded fraction
 * of an uninterrupted run, measured first). No hook in the engine: production code is not involved.
 *
 * Then power loss on a disk that does not keep its promises: the newest object of each kind (and the last
 * file written) loses its second half after a finished run; verify (or audit --verify) must name it, and
 * the documented next steps (repair index where an index or pack is hit, then a snapshot) write what was lost
 * again, after which the repository verifies and the new snapshot restores byte-identical.
 *
 * Short variant: 3 kill points per operation. COLDSTORE_STRESS=1: 52 per operation.
 */
import t, { type Test } from 'tap'
import { cpSync, mkdirSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTestRepo, seededRandom, writeTree } from '../engine/testing/test-repo.js'
import { ensureBuilt } from './testing/build.js'
import {
  STRESS, cliEnv, compareTrees, exits, jsonOf, randomData, readHookLog, repoObjects, runCli, sandbox, textData,
  type CliResult, type HookLog, type HookSpec,
} from './testing/harness.js'

ensureBuilt(t)
const PASSWORD = 'crash consistency'
const KB = 1024
const MB = 1024 * 1024

const box = sandbox(t, 'crash')
/** The project: a first version (snapshotted into the template), then changed in place to the second. */
const proj = join(box, 'proj')
const v1 = join(box, 'v1-copy', 'proj')
{
  const files: Record<string, Buffer> = {}
  for (let i = 0; i < 3; i++) files[`random/r${i}.bin`] = randomData(`r${i}`, 1 * MB + i * 1013)
  for (let i = 0; i < 3; i++) files[`text/t${i}.txt`] = textData(`t${i}`, 600 * KB + i * 7)
  for (let i = 0; i < 30; i++) files[`small/s${i}.txt`] = textData(`s${i}`, 1000 + i * 97)
  writeTree(proj, files)
  symlinkSync('random/r0.bin', join(proj, 'link'))
  mkdirSync(join(proj, 'empty-dir'))
}
cpSync(proj, v1, { recursive: true, verbatimSymlinks: true })

/** The template: a repository (1 MiB packs, small chunks: many packs and events from little data) with one snapshot of v1, and its cache. */
const template = join(box, 'template')
const tr = await makeTestRepo(template, { password: PASSWORD })
await tr.repo.close()
const templateEnv = cliEnv(template, PASSWORD)
const first = await runCli(['snapshot', proj, '--repo', join(template, 'repo'), '--json'], { env: templateEnv })
const firstId: string = JSON.parse(first.stdout).id
// The second version: a changed file, a removed one, new data (about 10 MB to store, ~10 packs).
writeFileSync(join(proj, 'text/t0.txt'), textData('t0-changed', 650 * KB))
rmSync(join(proj, 'small/s3.txt'))
writeTree(proj, Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`new/n${i}.bin`, randomData(`n${i}`, 1 * MB + 517 * i)])))
writeTree(proj, { 'new/notes.txt': textData('notes', 2 * MB), 'small/s30.txt': textData('s30', 1234) })

interface Op {
  name: 'snapshot' | 'freeze'
  args: (repo: string) => string[]
}
const OPS: Op[] = [
  { name: 'snapshot', args: (repo) => ['snapshot', proj, '--repo', repo, '--json'] },
  { name: 'freeze', args: (repo) => ['freeze', proj, repo, '--milestone', 'crash test', '--no-gitignore', '--no-include-git-metadata', '--json'] },
]
// `forget --prune` has its own template and checks (below).

/** A fresh copy of the template: repository, cache and home. */
function copyTemplate(dir: string): { repo: string; env: NodeJS.ProcessEnv; hook: (log: string, kill?: HookSpec['kill']) => HookSpec } {
  cpSync(template, dir, { recursive: true })
  const repo = join(dir, 'repo')
  return {
    repo,
    env: cliEnv(dir, PASSWORD),
    hook: (log, kill) => ({ roots: [{ path: repo }, { path: join(dir, 'cache'), kind: 'cache' }], log, kill }),
  }
}

interface Baseline { ms: number; log: HookLog; kinds: Map<string, number> }

/** A point to kill an operation at: an event of its progress, or a time after the preload ran. */
interface Point { label: string; kill: NonNullable<HookSpec['kill']> }

/** Named points of a backup (snapshot, freeze): the first two are the short variant's. */
function backupPoints(base: Baseline): Point[] {
  const count = (key: string): number => base.kinds.get(key) ?? 0
  const half = Math.ceil(count('rename data') / 2)
  return [
    { label: `after data pack ${half} of ${count('rename data')} landed`, kill: { op: 'rename', kind: 'data', nth: half, when: 'after' } },
    { label: 'just before the snapshot object is renamed into place', kill: { op: 'rename', kind: 'snapshots', nth: 1, when: 'before' } },
    { label: 'the last index object written and synced, not yet renamed', kill: { op: 'fsync', kind: 'index:tmp', nth: count('fsync index:tmp'), when: 'after' } },
    { label: 'snapshot object written, before the audit entry', kill: { op: 'create', kind: 'audit:tmp', nth: 1, when: 'before' } },
  ]
}

/** The named points (the first two in the short variant), then in the long one 38 seeded events and 10 times. */
function pointsFor(base: Baseline, seed: number, named: Point[]): Point[] {
  const rand = seededRandom(seed)
  const timed = (n: number): Point[] => Array.from({ length: n }, (_, i) => {
    const afterMs = Math.round(((i + rand()) / n) * base.ms)
    return { label: `${afterMs} ms into the run (of ${Math.round(base.ms)} ms)`, kill: { afterMs } }
  })
  if (!STRESS) return [named[0], named[1], ...timed(1)]
  // 38 distinct events of the uninterrupted run, seeded, alternately before and after the call; 10 times.
  const total = base.log.events.length
  const chosen = new Set<number>()
  while (chosen.size < Math.min(38, total)) chosen.add(1 + Math.floor(rand() * total))
  const progress = [...chosen].sort((a, b) => a - b).map((n, i): Point => {
    const e = base.log.events[n - 1]
    const when = i % 2 === 0 ? 'before' : 'after'
    return { label: `${when} event ${n}/${total} (${e.op} ${e.kind})`, kill: { event: n, when } }
  })
  return [...named, ...progress, ...timed(10)]
}

/** Totals over every kill point, for RELIABILITY.md. */
const totals = { points: 0, killed: 0, finishedAnyway: 0, reusedPackBytes: 0, rewrittenBytes: 0, snapshotsRestored: 0, truncated: 0 }

/** Restores `id` and compares it with `source` (restored as <target>/proj). */
async function restoresIdentical(t: Test, repo: string, env: NodeJS.ProcessEnv, id: string, source: string, target: string): Promise<void> {
  const r = await runCli(['restore', id, '--repo', repo, '--target', target, '--json'], { env })
  exits(t, r, 0, `restore ${id.slice(0, 8)}`)
  const c = compareTrees(source, join(target, 'proj'))
  t.same(c.differences, [], `snapshot ${id.slice(0, 8)} restores byte-identical (${c.entries} entries)`)
  totals.snapshotsRestored++
}

/** verify --read-data: ok, and only unindexed packs (left by a killed run) as warnings. */
async function verifiesClean(t: Test, repo: string, env: NodeJS.ProcessEnv, what: string): Promise<number> {
  const r = await runCli(['verify', '--read-data', '--repo', repo, '--json'], { env })
  exits(t, r, 0, `${what}: verify --read-data`)
  const v = jsonOf(t, r, 'verify')
  const other = (v?.findings ?? []).filter((f: { kind: string; severity: string }) => f.kind !== 'unindexed_pack' || f.severity !== 'warning')
  t.same(other, [], `${what}: no findings but unindexed packs (warnings)`)
  return (v?.findings ?? []).length
}

/** audit --verify: no errors, except an unrecorded snapshot when the kill came between the snapshot object and its entry. */
async function auditExplained(t: Test, repo: string, env: NodeJS.ProcessEnv, newIds: Set<string>, what: string): Promise<void> {
  const r = await runCli(['audit', '--verify', '--repo', repo, '--json'], { env })
  const a = jsonOf(t, r, 'audit --verify')
  const errors = ((a?.verify?.findings ?? []) as { kind: string; severity: string; snapshot_id?: string; snapshotId?: string }[]).filter((f) => f.severity === 'error')
  const unexplained = errors.filter((f) => !(f.kind === 'unrecorded_snapshot' && newIds.has(f.snapshotId ?? f.snapshot_id ?? '')))
  t.same(unexplained, [], `${what}: audit --verify finds nothing an interrupted run does not explain`)
}

/** Bytes of complete packs in `repo` that the template did not have. */
function newPackBytes(repo: string, before: Map<string, number>): number {
  let n = 0
  for (const [name, size] of repoObjects(repo)) if (/^(data|meta)\//.test(name) && !before.has(name)) n += size
  return n
}

const templateObjects = repoObjects(join(template, 'repo'))

for (const [opIndex, op] of OPS.entries()) {
  t.test(`${op.name}: SIGKILL at seeded points`, async (t) => {
    // 1. An uninterrupted run, logged: its duration, its events, what it writes.
    const bdir = join(box, `${op.name}-baseline`)
    const b = copyTemplate(bdir)
    const blog = join(bdir, 'events.log')
    const br = await runCli(op.args(b.repo), { env: b.env, hook: b.hook(blog) })
    exits(t, br, 0, 'uninterrupted run')
    const log = readHookLog(blog)
    const kinds = new Map<string, number>()
    for (const e of log.events) kinds.set(`${e.op} ${e.kind}`, (kinds.get(`${e.op} ${e.kind}`) ?? 0) + 1)
    const base: Baseline = { ms: log.elapsedMs, log, kinds }
    t.ok(log.finished && (kinds.get('rename data') ?? 0) >= 6, `the run writes many packs (${kinds.get('rename data')} data packs, ${log.events.length} events, ${log.repoBytes} bytes)`)
    t.comment(`uninterrupted ${op.name}: ${Math.round(br.ms)} ms (${log.elapsedMs} ms after start-up), ${log.events.length} file-system events, ${log.repoBytes} bytes written to the repository`)

    const points = pointsFor(base, 8080 + opIndex, backupPoints(base))
    for (const [i, p] of points.entries()) {
      await t.test(`kill ${i + 1}/${points.length}: ${p.label}`, async (t) => {
        const dir = join(box, `${op.name}-${i}`)
        const c = copyTemplate(dir)
        const klog = join(dir, 'kill.log')
        const killed = await runCli(op.args(c.repo), { env: c.env, hook: c.hook(klog, p.kill) })
        totals.points++
        const kl = readHookLog(klog)
        if (killed.signal === 'SIGKILL') {
          totals.killed++
          t.comment(`killed ${kl.killedAt ? `at event ${kl.killedAt.n} (${kl.killedAt.op} ${kl.killedAt.kind})` : `after ${kl.events.length} events`}`)
        } else {
          // A time point later than this run's end: nothing to recover, the checks below still hold.
          exits(t, killed, 0, 'the run ended before its kill point')
          totals.finishedAnyway++
        }
        const left = newPackBytes(c.repo, templateObjects)

        // 2. After the kill: the repository verifies (packs the killed run left are warnings).
        await verifiesClean(t, c.repo, c.env, 'after the kill')

        // 3. The next run: a freeze interrupted after recording its operation is resumed; anything else runs again.
        let next: CliResult
        const nlog = join(dir, 'next.log')
        const interrupted = op.name === 'freeze'
          ? ((jsonOf(t, await runCli(['status', '--json'], { env: c.env }), 'status')?.operations ?? []) as { id: string; state: string }[]).find((o) => o.state === 'interrupted')
          : undefined
        if (interrupted) next = await runCli(['resume', interrupted.id], { env: c.env, cwd: dir, hook: c.hook(nlog) })
        else next = await runCli(op.args(c.repo), { env: c.env, hook: c.hook(nlog) })
        exits(t, next, 0, interrupted ? `resume ${interrupted.id}` : 'the next run')
        const nextId = (jsonOf(t, next, 'the next run') as { id?: string } | null)?.id ?? ''
        const written = readHookLog(nlog).repoBytes
        // What the killed run left in complete packs is not written again: besides what the killed run had not
        // stored yet, only the index object, the snapshot object, the audit entry and new trees are.
        const slack = 64 * KB
        t.ok(written <= log.repoBytes - left + slack,
          `the next run writes ${written} bytes <= ${log.repoBytes} (uninterrupted) - ${left} (left in packs by the killed run) + ${slack}`)
        totals.reusedPackBytes += left
        totals.rewrittenBytes += Math.max(0, written - (log.repoBytes - left))

        // 4. Everything verifies, every snapshot (the earlier one, the killed run's if it wrote one, the new one) restores byte-identical.
        await verifiesClean(t, c.repo, c.env, 'after the next run')
        const list = (jsonOf(t, await runCli(['snapshots', '--repo', c.repo, '--json'], { env: c.env }), 'snapshots') ?? []) as { id: string }[]
        const ids = list.map((s) => s.id)
        t.ok(ids.includes(firstId) && ids.includes(nextId), 'the earlier snapshot and the new one are listed')
        const killedIds = new Set(ids.filter((id) => id !== firstId && id !== nextId))
        t.ok(killedIds.size <= 1, 'besides them, at most the killed run\'s own snapshot')
        for (const id of ids) await restoresIdentical(t, c.repo, c.env, id, id === firstId ? v1 : proj, join(dir, `out-${id.slice(0, 8)}`))
        await auditExplained(t, c.repo, c.env, killedIds, 'after the next run')
        rmSync(dir, { recursive: true, force: true })
      })
    }
  })
}

/**
 * `forget --keep-last 1 --prune` (safety delay 0: mark, then sweep in a second pass; every partly needed pack
 * repacked): three snapshots whose data shares packs, two of them forgotten. Killed at seeded points of its
 * progress (after the snapshot objects are removed, with the plan written, mid-sweep, around the index rewrite)
 * and by time; after each kill the repository verifies, every snapshot still listed restores byte-identical,
 * the audit trail holds nothing the interrupted run does not explain, and the same command run again
 * completes, leaving the repository no larger than an uninterrupted run does.
 */
t.test('forget --prune: SIGKILL at seeded points', async (t) => {
  const gproj = join(box, 'gc-src', 'proj')
  const copies: string[] = []
  const gtemplate = join(box, 'gc-template')
  const gtr = await makeTestRepo(gtemplate, { password: PASSWORD })
  await gtr.repo.close()
  const genv = cliEnv(gtemplate, PASSWORD)
  const ids: string[] = []
  for (let v = 0; v < 3; v++) {
    // Many small files per version, read one after another into the same packs: forgetting a version leaves
    // packs partly needed, which prune repacks.
    for (let i = 0; i < 40; i++) writeTree(gproj, { [`v${v}/f${i}.bin`]: randomData(`gc${v}-${i}`, 30 * KB + i * 101) })
    // Half of the version before is dropped: the newest snapshot needs half of each older pack.
    if (v > 0) for (let i = 0; i < 40; i += 2) rmSync(join(gproj, `v${v - 1}`, `f${i}.bin`))
    writeTree(gproj, { 'shared.txt': textData(`shared${v}`, 40 * KB) })
    const r = await runCli(['snapshot', gproj, '--repo', join(gtemplate, 'repo'), '--json'], { env: genv })
    ids.push(JSON.parse(r.stdout).id)
    const copy = join(box, `gc-v${v}`, 'proj')
    cpSync(gproj, copy, { recursive: true })
    copies.push(copy)
  }
  const sourceOf = new Map(ids.map((id, i) => [id, copies[i]]))
  const args = (repo: string): string[] => ['forget', '--keep-last', '1', '--prune', '--safety-delay', '0', '--repack-threshold', '0%', '--yes', '--repo', repo, '--json']
  const copy = (dir: string): { repo: string; env: NodeJS.ProcessEnv; hook: (log: string, kill?: HookSpec['kill']) => HookSpec } => {
    cpSync(gtemplate, dir, { recursive: true })
    const repo = join(dir, 'repo')
    return { repo, env: cliEnv(dir, PASSWORD), hook: (log, kill) => ({ roots: [{ path: repo }, { path: join(dir, 'cache'), kind: 'cache' }], log, kill }) }
  }
  const size = (repo: string): number => [...repoObjects(repo).values()].reduce((n, x) => n + x, 0)

  const bdir = join(box, 'gc-baseline')
  const b = copy(bdir)
  const blog = join(bdir, 'events.log')
  exits(t, await runCli(args(b.repo), { env: b.env, hook: b.hook(blog) }), 0, 'uninterrupted forget --prune')
  const log = readHookLog(blog)
  const kinds = new Map<string, number>()
  for (const e of log.events) kinds.set(`${e.op} ${e.kind}`, (kinds.get(`${e.op} ${e.kind}`) ?? 0) + 1)
  const finalSize = size(b.repo)
  t.ok((kinds.get('unlink data') ?? 0) > 0 && (kinds.get('rename data') ?? 0) + (kinds.get('rename meta') ?? 0) > 0, `it deletes packs and repacks (${kinds.get('unlink data')} data packs deleted, ${log.events.length} events); ${size(join(gtemplate, 'repo'))} → ${finalSize} bytes`)
  const base: Baseline = { ms: log.elapsedMs, log, kinds }
  const named: Point[] = [
    { label: 'with the prune plan written', kill: { op: 'rename', kind: 'prune', nth: 1, when: 'after' } },
    { label: 'after the first pack the sweep deletes', kill: { op: 'unlink', kind: 'data', nth: 1, when: 'after' } },
    { label: 'the forgotten snapshots half removed', kill: { op: 'unlink', kind: 'snapshots', nth: 1, when: 'after' } },
    { label: 'before the rewritten index is renamed into place', kill: { op: 'rename', kind: 'index', nth: 1, when: 'before' } },
  ]
  const points = pointsFor(base, 9090, named)
  for (const [i, p] of points.entries()) {
    await t.test(`kill ${i + 1}/${points.length}: ${p.label}`, async (t) => {
      const dir = join(box, `gc-${i}`)
      const c = copy(dir)
      const klog = join(dir, 'kill.log')
      const killed = await runCli(args(c.repo), { env: c.env, hook: c.hook(klog, p.kill) })
      totals.points++
      const kl = readHookLog(klog)
      if (killed.signal === 'SIGKILL') {
        totals.killed++
        t.comment(`killed ${kl.killedAt ? `at event ${kl.killedAt.n} (${kl.killedAt.op} ${kl.killedAt.kind})` : `after ${kl.events.length} events`}`)
      } else {
        exits(t, killed, 0, 'the run ended before its kill point')
        totals.finishedAnyway++
      }
      await verifiesClean(t, c.repo, c.env, 'after the kill')
      const listed = ((jsonOf(t, await runCli(['snapshots', '--repo', c.repo, '--json'], { env: c.env }), 'snapshots') ?? []) as { id: string }[]).map((x) => x.id)
      t.ok(listed.includes(ids[2]), 'the kept snapshot is listed')
      for (const id of listed) await restoresIdentical(t, c.repo, c.env, id, sourceOf.get(id)!, join(dir, `out-${id.slice(0, 8)}`))
      const a = jsonOf(t, await runCli(['audit', '--verify', '--repo', c.repo, '--json'], { env: c.env }), 'audit --verify')
      t.same(((a?.verify?.findings ?? []) as { severity: string }[]).filter((f) => f.severity === 'error'), [], 'audit --verify: no errors')
      const next = await runCli(args(c.repo), { env: c.env })
      exits(t, next, 0, 'the same command again')
      await verifiesClean(t, c.repo, c.env, 'after the next run')
      const after = ((jsonOf(t, await runCli(['snapshots', '--repo', c.repo, '--json'], { env: c.env }), 'snapshots') ?? []) as { id: string }[]).map((x) => x.id)
      t.same(after, [ids[2]], 'only the kept snapshot is left')
      await restoresIdentical(t, c.repo, c.env, ids[2], copies[2], join(dir, 'out-after'))
      const left = size(c.repo)
      t.ok(left <= finalSize * 1.05 + 64 * KB, `the repository ends at ${left} bytes (an uninterrupted run: ${finalSize})`)
      rmSync(dir, { recursive: true, force: true })
    })
  }
})

/** The newest complete object of a kind (by modification time, then name). */
function newest(repo: string, prefix: string): string | null {
  let best: { name: string; m: bigint } | null = null
  for (const name of repoObjects(repo).keys()) {
    if (!name.startsWith(prefix)) continue
    const m = statSync(join(repo, name), { bigint: true }).mtimeNs
    if (!best || m > best.m || (m === best.m && name > best.name)) best = { name, m }
  }
  return best?.name ?? null
}

t.test('power loss: the newest object of each kind loses its second half', async (t) => {
  // A finished run of the second version on a copy of the template, then one object cut in half. The last
  // file a run writes is its audit entry: that case is the audit one.
  for (const kind of ['data', 'meta', 'index', 'snapshots', 'audit'] as const) {
    await t.test(`newest ${kind} object`, async (t) => {
      const dir = join(box, `power-${kind}`)
      const c = copyTemplate(dir)
      const s = await runCli(OPS[0].args(c.repo), { env: c.env })
      exits(t, s, 0, 'snapshot')
      const sid: string = JSON.parse(s.stdout).id
      if (kind === 'audit') t.equal(newest(c.repo, ''), newest(c.repo, 'audit/'), 'the last file written is the newest audit entry')
      const name = newest(c.repo, `${kind}/`)!
      const size = statSync(join(c.repo, name)).size
      truncateSync(join(c.repo, name), Math.floor(size / 2))
      totals.truncated++
      t.comment(`truncated ${name} from ${size} to ${Math.floor(size / 2)} bytes`)
      const id = name.slice(name.lastIndexOf('/') + 1)

      if (kind === 'audit') {
        // Before anything else runs: every command appends to the audit trail (and the append restores the entry).
        const a = jsonOf(t, await runCli(['audit', '--verify', '--repo', c.repo, '--json'], { env: c.env }), 'audit --verify')
        const errs = ((a?.verify?.findings ?? []) as { kind: string; severity: string; name?: string; snapshotId?: string }[]).filter((f) => f.severity === 'error')
        t.ok(errs.some((f) => f.kind === 'altered_entry' && f.name === name), `audit --verify names the damaged entry ${name}`)
        t.same(errs.filter((f) => !(f.kind === 'altered_entry' && f.name === name) && !(f.kind === 'unrecorded_snapshot' && f.snapshotId === sid)), [],
          'and nothing else but the snapshot that entry recorded')
      } else {
        const vr = await runCli(['verify', '--read-data', '--repo', c.repo, '--json'], { env: c.env })
        const findings = (jsonOf(t, vr, 'verify')?.findings ?? []) as { kind: string; severity: string; object?: string; packId?: string; snapshotId?: string; files?: string[] }[]
        exits(t, vr, 1, 'verify --read-data fails')
        const expected = { data: 'pack_size_mismatch', meta: 'pack_size_mismatch', index: 'damaged_index', snapshots: 'damaged_snapshot' }[kind]
        t.ok(findings.some((f) => f.kind === expected && f.severity === 'error' && (f.packId === id || f.snapshotId === id || f.object === name)),
          `a ${expected} finding names ${name}: ${JSON.stringify(findings.map((f) => [f.kind, f.object ?? f.packId ?? f.snapshotId])).slice(0, 300)}`)
        if (kind === 'data') t.ok(findings.some((f) => f.kind === 'missing_blob' && (f.files ?? []).length > 0), 'the files that lost data are named')
      }
      // The documented way back: `repair index` when a pack or an index object is damaged, then the next snapshot.
      if (kind !== 'snapshots' && kind !== 'audit') {
        const rep = await runCli(['repair', 'index', '--repo', c.repo], { env: c.env })
        exits(t, rep, kind === 'index' ? 0 : 1, 'repair index (exit 1 names an unreadable pack)')
      }
      const again = await runCli(OPS[0].args(c.repo), { env: c.env })
      exits(t, again, 0, 'the next snapshot')
      const aid: string = JSON.parse(again.stdout).id
      // Data and trees in the lost half are stored again (an index object is rebuilt by repair index from the packs).
      if (kind === 'data' || kind === 'meta') t.ok(JSON.parse(again.stdout).stats.added_bytes > 0, 'it wrote again what was lost')
      const v2 = jsonOf(t, await runCli(['verify', '--read-data', '--repo', c.repo, '--json'], { env: c.env }), 'verify after')
      const left = ((v2?.findings ?? []) as { kind: string; severity: string; snapshotId?: string; packId?: string }[])
        .filter((f) => !(f.severity === 'warning' && f.kind === 'unindexed_pack' && f.packId === id))
        // A damaged snapshot object stays damaged (objects are never rewritten): the one finding left.
        .filter((f) => !(kind === 'snapshots' && f.kind === 'damaged_snapshot' && f.snapshotId === id))
      t.same(left, [], 'after the next run nothing else is wrong')
      if (kind === 'audit') {
        const a = jsonOf(t, await runCli(['audit', '--verify', '--repo', c.repo, '--json'], { env: c.env }), 'audit --verify after')
        t.equal(a?.verify?.ok, true, 'the next run restored the audit entry from its claim')
      }
      await restoresIdentical(t, c.repo, c.env, aid, proj, join(dir, 'out-next'))
      // Blobs are content-addressed: what the next run stored again heals the damaged run's snapshot too.
      if (kind !== 'snapshots') await restoresIdentical(t, c.repo, c.env, sid, proj, join(dir, 'out-damaged-run'))
      if (STRESS) await restoresIdentical(t, c.repo, c.env, firstId, v1, join(dir, 'out-first'))
      rmSync(dir, { recursive: true, force: true })
    })
  }
})

t.teardown(() => {
  t.comment(`figures: crash ${JSON.stringify({ stress: STRESS, ...totals })}`)
})
