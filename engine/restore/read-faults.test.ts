/**
 * Corrupted and truncated reads from the remote (FaultyRemote: one read of a seeded kind, at a seeded call,
 * loses its tail or has a byte inverted) during restore, verify --read-data and browsing (the vfs the
 * WebDAV server serves): the damage is always detected (authentication, id and hash checks) and reported,
 * as a restore error, a verify finding or a thrown IntegrityError, and never turns into wrong bytes: every
 * file a restore reports as restored, and every byte browsing yields, equals the source.
 *
 * Objects: data packs and metadata packs (ranged reads of blobs, whole reads by verify), index objects,
 * snapshot objects, key files and the config (read when the repository is opened). Positions are inside
 * what is read (below the smallest read of that kind), so every injected fault hits bytes that are used.
 *
 * Short variant: every (operation, object kind, fault) once, 36 trials. COLDSTORE_STRESS=1: 10 times each.
 */
import t from 'tap'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { backup } from '../backup/index.js'
import { restore } from './index.js'
import { verify } from '../verify/index.js'
import { listSnapshots } from '../snapshot/index.js'
import { SnapshotView } from '../vfs/index.js'
import { LocalRemote } from '../remote/index.js'
import { FaultyRemote, type Fault } from '../remote/wrappers/faulty.js'
import { Repository } from '../repo/index.js'
import { makeTestRepo, seededBytes, seededRandom, seededText, writeTree } from '../testing/test-repo.js'

const STRESS = process.env.COLDSTORE_STRESS === '1'
const root = t.testdir()
const src = join(root, 'src')
const files: Record<string, Buffer> = {
  'a.bin': seededBytes('a', 600_000),
  'b.bin': seededBytes('b', 450_000),
  'docs/notes.txt': seededText('notes', 300_000),
  'docs/deep/x.txt': seededText('x', 40_000),
}
for (let i = 0; i < 10; i++) files[`small/s${i}.txt`] = seededText(`s${i}`, 500 + 300 * i)
writeTree(src, files)
const tr = await makeTestRepo(join(root, 'base'))
const opts = { hostname: 'h', username: 'u', program: 'test', now: () => new Date('2026-05-01T00:00:00Z') }
await backup(tr.repo, { ...opts, paths: [src] })
await tr.repo.close()

type Op = 'restore' | 'verify' | 'browse'
interface Kind { name: string; re: RegExp }
const KINDS: Kind[] = [
  { name: 'data pack', re: /^data\// },
  { name: 'metadata pack', re: /^meta\// },
  { name: 'index object', re: /^index\// },
  { name: 'snapshot object', re: /^snapshots\// },
  { name: 'key file', re: /^keys\// },
  { name: 'config', re: /^config$/ },
]

/**
 * Runs `op` on the repository through `remote` with a cache of its own. Resolves to the problems it
 * reported (empty when it claims success) after checking that everything it claims to have produced is
 * byte-identical to the source. `sizes` records the length of every read (for the clean runs).
 */
async function runOp(op: Op, remote: FaultyRemote, dir: string, decodeWorkers: number): Promise<{ problems: string[]; wrong: string[] }> {
  const problems: string[] = []
  const wrong: string[] = []
  let repo: Repository
  try {
    repo = await Repository.open(remote, { password: tr.password, cacheDir: join(dir, 'cache') })
  } catch (err) {
    return { problems: [`open: ${(err as Error).message}`], wrong }
  }
  try {
    if (op === 'verify') {
      // As `coldstore verify` does: it reads the index objects itself, without loading them into the cache.
      const v = await verify(repo, { readData: 1 })
      for (const f of v.findings) problems.push(`${f.kind}: ${f.message}`)
      return { problems, wrong }
    }
    try {
      await repo.syncIndex()
    } catch (err) {
      return { problems: [`index: ${(err as Error).message}`], wrong }
    }
    let snaps
    try {
      snaps = await listSnapshots(repo)
    } catch (err) {
      return { problems: [`snapshots: ${(err as Error).message}`], wrong }
    }
    if (op === 'restore') {
      const out = join(dir, 'out')
      const r = await restore(repo, { snapshot: snaps[0], target: out, decodeWorkers })
      const failed = new Set(r.errors.map((e) => e.path))
      for (const e of r.errors) problems.push(`restore: ${e.path}: ${e.message}`)
      for (const [rel, want] of Object.entries(files)) {
        const p = `src/${rel}`
        if (failed.has(p) || [...failed].some((f) => p.startsWith(`${f}/`))) continue
        let got: Buffer | null = null
        try {
          got = readFileSync(join(out, p))
        } catch {
          // absent without an error naming it or a folder above it
        }
        if (!got || !got.equals(want)) wrong.push(p)
      }
      return { problems, wrong }
    }
    // Browse: list every folder of the snapshot and read every file, as the WebDAV server does.
    const view = await SnapshotView.open(repo, { cache: { maxBytes: 1 << 20 } })
    try {
      for await (const [path, e] of view.walk([])) {
        if (e.type !== 'file') continue
        const rel = path.map((p) => p.toString()).join('/')
        const m = /\/src\/(.*)$/.exec(rel)
        const want = m ? files[m[1]] : undefined
        const parts: Buffer[] = []
        try {
          for await (const c of view.openNode(e.node!).read()) parts.push(c)
        } catch (err) {
          problems.push(`read ${rel}: ${(err as Error).message}`)
          continue
        }
        if (want && !Buffer.concat(parts).equals(want)) wrong.push(rel)
      }
    } catch (err) {
      problems.push(`browse: ${(err as Error).message}`)
    }
    return { problems, wrong }
  } finally {
    await repo.close()
  }
}

/** How many reads of each kind an operation makes, and the smallest read of that kind (clean runs). */
async function measure(op: Op): Promise<Map<string, { calls: number; minBytes: number }>> {
  const counts = new Map<string, { calls: number; minBytes: number }>()
  const inner = await LocalRemote.open({ path: tr.repoDir })
  const sizes = new Map<string, number[]>()
  // A wrapper recording each read's length by kind, inside a FaultyRemote whose counting faults do nothing else.
  const recording = {
    properties: inner.properties,
    get: async (name: string, range?: { offset: number; length: number }) => {
      const b = await inner.get(name, range)
      for (const k of KINDS) if (k.re.test(name)) sizes.set(k.name, [...(sizes.get(k.name) ?? []), b.length])
      return b
    },
    put: inner.put.bind(inner), stat: inner.stat.bind(inner), list: inner.list.bind(inner), delete: inner.delete.bind(inner), close: inner.close.bind(inner),
  }
  const r = await runOp(op, new FaultyRemote(recording), join(root, `measure-${op}`), 0)
  t.same([r.problems, r.wrong], [[], []], `a clean ${op} reports nothing and is correct`)
  for (const k of KINDS) {
    const s = sizes.get(k.name) ?? []
    counts.set(k.name, { calls: s.length, minBytes: s.length ? Math.min(...s) : 0 })
  }
  return counts
}

const totals = { trials: 0, applied: 0, detected: 0, reread: 0, wrongBytes: 0 }

for (const op of ['restore', 'verify', 'browse'] as const) {
  t.test(`${op}: corrupted and truncated reads are detected, never wrong bytes`, async (t) => {
    const counts = await measure(op)
    const rand = seededRandom(4242 + op.length)
    const rounds = STRESS ? 10 : 1
    for (const k of KINDS) {
      const c = counts.get(k.name)!
      if (c.calls === 0) {
        t.comment(`${op} reads no ${k.name}`)
        continue
      }
      for (let round = 0; round < rounds; round++) {
        for (const mode of ['flip', 'truncate'] as const) {
          const call = 1 + Math.floor(rand() * c.calls)
          const at = Math.floor(rand() * Math.max(1, c.minBytes))
          let applied = false
          const fault: Fault = {
            method: 'get', name: k.re, call,
            delay: () => {
              applied = true
              return Promise.resolve()
            },
            ...(mode === 'flip' ? { flipByteAt: at } : { truncateTo: at }),
          }
          const label = `${k.name}: read ${call} of ${c.calls}, ${mode === 'flip' ? `byte ${at} inverted` : `cut to ${at} bytes`}`
          const dir = join(root, `${op}-${totals.trials}`)
          const r = await runOp(op, new FaultyRemote(await LocalRemote.open({ path: tr.repoDir }), [fault]), dir, round % 2)
          totals.trials++
          t.same(r.wrong, [], `${label}: no wrong bytes`)
          totals.wrongBytes += r.wrong.length
          if (applied) {
            totals.applied++
            if (r.problems.length > 0) {
              totals.detected++
              t.pass(`${label}: detected (${r.problems[0].slice(0, 140)})`)
            } else if (op === 'restore') {
              // Restore reads each folder listing twice (a counting pass, then the restore): a listing that fails its
              // check in the first pass is read again in the second. Nothing was reported, and every file is restored
              // byte-identical (checked above): the damaged read was discarded, not used.
              totals.reread++
              t.pass(`${label}: discarded and read again (every file restored byte-identical)`)
            } else {
              t.fail(`${label}: detected (nothing reported)`)
            }
          }
        }
      }
    }
  })
}

t.test('the fault positions are inside what is read', async (t) => {
  // The smallest reads bound the positions: check they are real reads (a key file and the config are whole files).
  t.ok(statSync(join(tr.repoDir, 'config')).size > 100)
  t.ok(totals.applied >= totals.trials * 0.9, `the faults were applied (${totals.applied} of ${totals.trials})`)
  t.comment(`figures: read-faults ${JSON.stringify({ stress: STRESS, ...totals })}`)
})
