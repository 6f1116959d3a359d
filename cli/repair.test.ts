/**
 * `coldstore repair snapshots` as a user runs it after losing a pack: verify names the damage, repair index
 * rebuilds the index, repair snapshots --dry-run reports and writes nothing, repair snapshots writes a new
 * snapshot (tagged repaired, recorded in the audit trail, shown by inspect) that restores without errors,
 * and leaves the damaged snapshot as it was.
 */
import t from 'tap'
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTestRepo, writeTree } from '../engine/testing/test-repo.js'
import { ensureBuilt } from './testing/build.js'
import { cliEnv, compareTrees, exits, jsonOf, randomData, runCli, sandbox, textData } from './testing/harness.js'

ensureBuilt(t)
const PASSWORD = 'repair me'

t.test('repair snapshots after a lost pack', async (t) => {
  const box = sandbox(t, 'repair')
  const proj = join(box, 'proj')
  writeTree(proj, {
    'a.bin': randomData('a', 1_500_000), 'b.bin': randomData('b', 1_500_000), 'c.bin': randomData('c', 1_500_000),
    'notes/n.txt': textData('n', 20_000),
  })
  const tr = await makeTestRepo(box, { password: PASSWORD })
  await tr.repo.close()
  const env = cliEnv(box, PASSWORD)
  const repo = tr.repoDir
  const s = await runCli(['snapshot', proj, '--repo', repo, '--json'], { env })
  exits(t, s, 0, 'snapshot')
  const sid: string = JSON.parse(s.stdout).id
  // Lose one data pack.
  const packDir = readdirSync(join(repo, 'data')).sort()[0]
  const pack = readdirSync(join(repo, 'data', packDir))[0]
  rmSync(join(repo, 'data', packDir, pack))
  const original = readFileSync(join(repo, 'snapshots', sid))

  const v = await runCli(['verify', '--repo', repo, '--json'], { env })
  exits(t, v, 1, 'verify')
  const affected = new Set((jsonOf(t, v, 'verify')?.findings ?? []).flatMap((f: { files?: string[] }) => f.files ?? []).map((f: string) => f.slice(9)))
  t.ok(affected.size > 0, `verify names the files that lost data: ${[...affected].join(', ')}`)
  exits(t, await runCli(['repair', 'index', '--repo', repo], { env }), 0, 'repair index')

  const dry = await runCli(['repair', 'snapshots', '--dry-run', '--repo', repo, '--json'], { env })
  exits(t, dry, 0, 'repair snapshots --dry-run')
  const d = jsonOf(t, dry, 'dry run')
  t.equal(d?.dry_run, true)
  t.equal(d?.snapshots?.[0]?.state, 'repaired')
  t.same(new Set(d?.snapshots?.[0]?.excluded.map((e: { path: string }) => e.path)), affected, 'it would leave out exactly the files verify named')
  t.same(readdirSync(join(repo, 'snapshots')), [sid], 'a dry run writes no snapshot')

  const r = await runCli(['repair', 'snapshots', sid.slice(0, 8), '--repo', repo, '--json'], { env })
  exits(t, r, 0, 'repair snapshots')
  const rep = jsonOf(t, r, 'repair')?.snapshots?.[0]
  t.equal(rep?.state, 'repaired')
  const rid: string = rep?.repaired_id
  t.ok(/^[0-9a-f]{64}$/.test(rid ?? ''), 'names the new snapshot')
  t.ok(readFileSync(join(repo, 'snapshots', sid)).equals(original), 'the damaged snapshot object is left as it was')

  const list = jsonOf(t, await runCli(['snapshots', '--repo', repo, '--json'], { env }), 'snapshots') as { id: string; tags: string[] }[]
  t.same(list.find((x) => x.id === rid)?.tags, ['repaired'], 'the new snapshot is tagged repaired')
  const ins = jsonOf(t, await runCli(['inspect', rid, '--repo', repo, '--json'], { env }), 'inspect')
  t.equal(ins?.repaired?.original, sid, 'inspect shows which snapshot it replaces')
  t.equal(ins?.repaired?.excluded_count, affected.size, 'and how many entries it left out')

  const out = join(box, 'out')
  const rr = await runCli(['restore', rid, '--repo', repo, '--target', out, '--json'], { env })
  exits(t, rr, 0, 'restore of the repaired snapshot')
  const c = compareTrees(proj, join(out, 'proj'))
  t.same(c.differences.sort(), [...affected].map((p) => `${p.slice('proj'.length)}: missing`).sort(), 'everything but the left-out files restores byte-identical')
  const audit = jsonOf(t, await runCli(['audit', '--verify', '--repo', repo, '--json'], { env }), 'audit')
  t.equal(audit?.verify?.ok, true, 'the repaired snapshot is recorded in the audit trail')

  const again = await runCli(['repair', 'snapshots', '--repo', repo], { env })
  exits(t, again, 0, 'repair snapshots again')
  t.match(again.stdout, new RegExp(`snapshot ${sid.slice(0, 8)}: already repaired as ${rid.slice(0, 8)}`))
  t.match(again.stdout, new RegExp(`snapshot ${rid.slice(0, 8)}: intact`))
  exits(t, await runCli(['repair', 'index', sid, '--repo', repo], { env }), 2, 'repair index takes no snapshots')

  // The damaged snapshot's own object is damaged too now: listing shows the rest and names it (seen from
  // another machine: this one's cache keeps the snapshot objects it read, checked against their ids).
  const file = join(repo, 'snapshots', sid)
  writeFileSync(file, readFileSync(file).subarray(0, 100))
  const ls = await runCli(['snapshots', '--repo', repo, '--json'], { env: { ...env, COLDSTORE_CACHE_DIR: join(box, 'other-cache') } })
  exits(t, ls, 0, 'snapshots with a damaged snapshot object')
  t.same((jsonOf(t, ls, 'snapshots') as { id: string }[]).map((x) => x.id), [rid], 'the other snapshots are listed')
  t.match(ls.stderr, new RegExp(`snapshots/${sid} is damaged`), 'the damaged one is named on stderr')
  const r3 = await runCli(['repair', 'snapshots', '--repo', repo, '--json'], { env })
  exits(t, r3, 1, 'repair snapshots with a damaged snapshot object')
  t.same(jsonOf(t, r3, 'repair')?.damaged_snapshot_objects, [sid])
})
