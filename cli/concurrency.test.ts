/**
 * Concurrent writers: N `coldstore snapshot` processes into one repository at once (N = 4; COLDSTORE_STRESS=1:
 * 8, three rounds), each with a source of its own and data shared with the others, as hosts with their own
 * caches and as processes sharing one cache. Afterwards the repository verifies with --read-data, every
 * snapshot restores byte-identical, shared data is stored once, and the audit trail holds one entry per
 * snapshot in a single chain.
 *
 * A snapshot running while `prune` runs is tested in cli/forget-prune.test.ts, two daemons on one
 * configuration in cli/jobs.test.ts (see RELIABILITY.md).
 */
import t from 'tap'
import { cpSync } from 'node:fs'
import { join } from 'node:path'
import { makeTestRepo, writeTree } from '../engine/testing/test-repo.js'
import { ensureBuilt } from './testing/build.js'
import { STRESS, cliEnv, compareTrees, exits, jsonOf, randomData, runCli, sandbox, textData } from './testing/harness.js'

ensureBuilt(t)
const PASSWORD = 'many writers'
const N = STRESS ? 8 : 4
const ROUNDS = STRESS ? 3 : 1

for (const caches of ['one cache per process', 'one shared cache'] as const) {
  t.test(`${N} snapshots at once into one repository, ${caches}`, async (t) => {
    const box = sandbox(t, 'concurrent')
    const shared = randomData('shared', 3_000_000)
    const sources = Array.from({ length: N }, (_, i) => join(box, `host${i}`, 'proj'))
    const tr = await makeTestRepo(box, { password: PASSWORD })
    await tr.repo.close()
    const envs = sources.map((_, i) => cliEnv(caches === 'one shared cache' ? box : join(box, `host${i}`), PASSWORD))
    const made: { id: string; source: string; snapshotOf: string }[] = []
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, src] of sources.entries()) {
        writeTree(src, { 'shared.bin': shared, [`own-${round}.bin`]: randomData(`own${i}-${round}`, 1_500_000), 'notes.txt': textData(`notes${i}-${round}`, 50_000) })
      }
      const runs = await Promise.all(sources.map((src, i) => runCli(['snapshot', src, '--repo', tr.repoDir, '--json'], { env: envs[i] })))
      for (const [i, r] of runs.entries()) {
        exits(t, r, 0, `round ${round + 1}, writer ${i + 1}`)
        const doc = jsonOf(t, r, 'snapshot')
        if (doc?.id) made.push({ id: doc.id, source: sources[i], snapshotOf: `round ${round + 1}` })
      }
      // Each round's sources are copied aside: a later round changes them.
      for (const m of made.filter((x) => x.snapshotOf === `round ${round + 1}`)) {
        const copy = join(box, 'copies', m.id, 'proj')
        cpSync(m.source, copy, { recursive: true })
        m.source = copy
      }
    }
    t.equal(made.length, N * ROUNDS, `${N * ROUNDS} snapshots written`)
    const env = envs[0]
    const v = await runCli(['verify', '--read-data', '--repo', tr.repoDir, '--json'], { env })
    exits(t, v, 0, 'verify --read-data')
    const findings = (jsonOf(t, v, 'verify')?.findings ?? []) as { kind: string; severity: string }[]
    t.same(findings.filter((f) => f.severity === 'error'), [], 'no errors')
    for (const m of made) {
      const out = join(box, 'out', m.id.slice(0, 12))
      exits(t, await runCli(['restore', m.id, '--repo', tr.repoDir, '--target', out], { env }), 0, `restore ${m.id.slice(0, 8)}`)
      t.same(compareTrees(m.source, join(out, 'proj')).differences, [], `${m.id.slice(0, 8)} (${m.snapshotOf}) restores byte-identical`)
    }
    // Shared data: written by several at once, it may be stored more than once (each writer packs what it has
    // not seen yet), but never more often than there are writers; later rounds store it no more.
    const stats = (jsonOf(t, await runCli(['snapshots', '--repo', tr.repoDir, '--json'], { env }), 'snapshots') as { stats: { added_data_bytes: number } }[])
    const added = stats.reduce((n, s) => n + (s.stats.added_data_bytes ?? 0), 0)
    const own = N * ROUNDS * (1_500_000 + 50_000)
    t.ok(added <= own + N * shared.length + 200_000, `data written ${added} bytes: each writer's own data plus at most one copy of the shared data per writer`)
    const audit = jsonOf(t, await runCli(['audit', '--verify', '--repo', tr.repoDir, '--json'], { env }), 'audit')
    t.equal(audit?.verify?.ok, true, 'the audit trail verifies: concurrent appends formed one chain')
    t.equal((audit?.entries ?? []).filter((e: { operation: string }) => e.operation === 'snapshot').length, N * ROUNDS, 'one entry per snapshot')
    t.comment(`figures: concurrency ${JSON.stringify({ caches, writers: N, rounds: ROUNDS, snapshots: made.length, data_bytes_written: added })}`)
  })
}
