/**
 * `coldstore forget`, `prune` and `snapshot --time` as a user types them: the built CLI in child
 * processes, real repositories and files in temp dirs. Exit codes, the exact --json shapes, --dry-run
 * changing nothing, confirmation refused without --yes when stdin is not a terminal, the audit trail
 * accepting recorded removals; and prune (and forget --prune) running while another `coldstore snapshot`
 * or `coldstore freeze` process writes: nothing referenced is lost (verify --read-data passes, every
 * snapshot restores byte-identical).
 */
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { seededBytes, writeTree, readTree, randomData } from '../engine/testing/test-repo.js'
import { CLI, ROOT, ensureBuilt } from './testing/build.js'

const PASSWORD = 'correct horse battery staple'
ensureBuilt(t)

interface Result { code: number | null; stdout: string; stderr: string }

const root = t.testdir()
let n = 0

function env(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', COLDSTORE_PASSWORD: PASSWORD, TZ: 'UTC', ...extra }
}

function start(args: readonly string[], e: NodeJS.ProcessEnv): { child: ChildProcess; result: Promise<Result> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: e, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 })
  const out: Buffer[] = []
  const errs: Buffer[] = []
  child.stdout!.on('data', (d: Buffer) => out.push(d))
  child.stderr!.on('data', (d: Buffer) => errs.push(d))
  const result = new Promise<Result>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(errs).toString() }))
  })
  return { child, result }
}

/** One repository and cache; `run(args)` runs the CLI on it. A second cache plays another host. */
class Repo {
  readonly dir: string
  readonly repo: string
  readonly home: string
  constructor() {
    this.dir = join(root, `r${++n}`)
    this.repo = join(this.dir, 'repo')
    this.home = join(this.dir, 'home')
    mkdirSync(this.home, { recursive: true })
  }
  args(args: readonly string[], cache = 'cache'): string[] {
    return [...args, '--repo', this.repo, '--cache-dir', join(this.dir, cache)]
  }
  run(args: readonly string[], o: { cache?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
    return start(this.args(args, o.cache), env(this.home, o.env)).result
  }
}

function exits(t: Test, r: Result, code: number, what: string): boolean {
  return t.equal(r.code, code, `${what}: exit ${code}`, r.code === code ? {} : { output: `stdout:\n${r.stdout.slice(0, 3000)}\nstderr:\n${r.stderr.slice(0, 3000)}` })
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function json(t: Test, r: Result, what: string): any {
  try {
    return JSON.parse(r.stdout)
  } catch (e) {
    t.fail(`${what}: stdout is not one JSON document: ${(e as Error).message}`, { stdout: r.stdout.slice(0, 2000), stderr: r.stderr.slice(0, 2000) })
    return {}
  }
}

function listing(dir: string, sub = ''): string[] {
  const out: string[] = []
  if (!existsSync(join(dir, sub))) return out
  for (const x of readdirSync(join(dir, sub))) {
    const p = join(sub, x)
    const st = statSync(join(dir, p))
    if (st.isDirectory()) out.push(...listing(dir, p))
    else out.push(`${p} ${st.size}`)
  }
  return out.sort()
}

async function init(t: Test, r: Repo): Promise<void> {
  exits(t, await r.run(['init']), 0, 'init')
}

async function snapshot(t: Test, r: Repo, src: string, time: string, extra: string[] = []): Promise<string> {
  const s = await r.run(['snapshot', src, '--time', time, '--json', ...extra])
  exits(t, s, 0, `snapshot at ${time}`)
  return json(t, s, 'snapshot').id as string
}

/** verify --read-data and a byte-identical restore of every snapshot (`expected`: id → source files then). */
async function intact(t: Test, r: Repo, expected: Map<string, Map<string, Buffer>>, what: string): Promise<void> {
  exits(t, await r.run(['verify', '--read-data']), 0, `${what}: verify --read-data`)
  const list = json(t, await r.run(['snapshots', '--json']), 'snapshots') as { id: string; paths: string[] }[]
  for (const s of list) {
    const want = expected.get(s.id)
    if (!t.ok(want, `${what}: ${s.id.slice(0, 8)} is a snapshot the test made`) || !want) continue
    const target = join(r.dir, `restore-${++n}`)
    exits(t, await r.run(['restore', s.id, '--target', target]), 0, `${what}: restore ${s.id.slice(0, 8)}`)
    const got = readTree(join(target, s.paths[0].split('/').at(-1)!))
    const same = got.size === want.size && [...want].every(([p, b]) => got.get(p)?.equals(b))
    t.ok(same, `${what}: ${s.id.slice(0, 8)} restores byte-identical (${want.size} files)`)
  }
}

t.test('snapshot --time, forget --dry-run --json, confirmation, forget --yes, the audit trail', async (t) => {
  const r = new Repo()
  await init(t, r)
  const src = join(r.dir, 'docs')
  writeTree(src, { 'a.txt': 'one' })
  const times = ['2026-03-01T10:00:00Z', '2026-03-02T09:00:00Z', '2026-03-02T18:00:00Z', '2026-03-09T10:00:00+02:00']
  const ids: string[] = []
  for (const [i, time] of times.entries()) {
    writeFileSync(join(src, 'a.txt'), `version ${i}`)
    ids.push(await snapshot(t, r, src, time))
  }
  const list = json(t, await r.run(['snapshots', '--json']), 'snapshots') as { id: string; time: string }[]
  t.same(list.map((s) => s.time), times.map((x) => new Date(x).toISOString()), 'snapshot --time records the given times')
  exits(t, await r.run(['snapshot', src, '--time', '2026-03-01 10:00']), 2, 'a time without a zone is refused')
  exits(t, await r.run(['snapshot', src, '--time', 'yesterday']), 2, 'a time that is not ISO 8601 is refused')

  const before = listing(r.repo)
  const dry = await r.run(['forget', '--keep-daily', '2', '--dry-run', '--json'])
  exits(t, dry, 0, 'forget --dry-run --json')
  const d = json(t, dry, 'forget')
  t.same(Object.keys(d), ['keep', 'remove'], 'the document has exactly keep and remove')
  t.ok(d.keep.every((k: object) => JSON.stringify(Object.keys(k)) === '["id","time","reasons"]'), 'each kept entry has exactly id, time, reasons')
  t.ok(d.remove.every((k: object) => JSON.stringify(Object.keys(k)) === '["id","time"]'), 'each removed entry has exactly id, time')
  t.same(d.keep.map((k: { id: string; reasons: string[] }) => [k.id, k.reasons]), [[ids[3], ['daily snapshot']], [ids[2], ['daily snapshot']]])
  t.same(d.remove.map((k: { id: string }) => k.id), [ids[1], ids[0]], 'the older one of 03-02, and 03-01')
  t.same(listing(r.repo), before, '--dry-run changes nothing')

  const text = await r.run(['forget', '--keep-daily', '2', '--dry-run'])
  t.match(text.stdout, /keep {4}\w{8} {2}2026-03-09 08:00:00 {2}daily snapshot/, 'the text shows what is kept and why, in the local zone (TZ=UTC here)')
  t.match(text.stdout, /would remove 2 of 4 snapshots/)

  const refused = await r.run(['forget', '--keep-daily', '2'])
  exits(t, refused, 2, 'without --yes and without a terminal, forget refuses')
  t.match(refused.stderr, /pass --yes/)
  t.same(listing(r.repo), before, 'and removes nothing')

  const done = await r.run(['forget', '--keep-daily', '2', '--yes', '--json'])
  exits(t, done, 0, 'forget --yes')
  t.same(json(t, done, 'forget').remove.map((k: { id: string }) => k.id), [ids[1], ids[0]])
  t.notOk(existsSync(join(r.repo, 'snapshots', ids[0])), 'the snapshot object is gone')
  const audit = await r.run(['audit', '--verify', '--json'])
  exits(t, audit, 0, 'audit --verify accepts the recorded removals')
  const entries = json(t, await r.run(['audit', '--json']), 'audit')
  const fe = (entries.entries ?? entries).find((e: { operation: string }) => e.operation === 'forget')
  t.same([...fe.removed].sort(), [ids[0], ids[1]].sort(), 'the forget entry lists what it removed')
  // Removing another snapshot behind coldstore's back is still tampering.
  rmSync(join(r.repo, 'snapshots', ids[2]))
  exits(t, await r.run(['audit', '--verify']), 1, 'a snapshot removed without a forget is detected')

  const nothing = await r.run(['forget', '--keep-daily', '5'])
  exits(t, nothing, 0, 'nothing to remove: no confirmation needed')
})

t.test('forget: usage errors exit 2', async (t) => {
  const r = new Repo()
  await init(t, r)
  const src = join(r.dir, 'src')
  writeTree(src, { 'a.txt': 'a' })
  await snapshot(t, r, src, '2026-01-01T00:00:00Z')
  for (const [args, what] of [
    [[], 'no rule'],
    [['--keep-daily', 'many'], 'a count that is not a number'],
    [['--keep-daily', '-2'], 'a count below -1'],
    [['--keep-within', '3w'], 'an unknown duration unit'],
    [['--keep-last', '1', '--group-by', 'colour'], 'an unknown group field'],
    [['--keep-last', '1', '--time-zone', 'Mars/Base'], 'an unknown time zone'],
    [['--keep-last', '1', '--prune', '--safety-delay', '5m'], 'an ambiguous safety delay'],
    [['--keep-last', '1', '--prune', '--repack-threshold', '150%'], 'a threshold above 100 %'],
  ] as [string[], string][]) {
    const x = await r.run(['forget', ...args, '--yes'])
    exits(t, x, 2, what)
    t.match(x.stderr, /coldstore: /, `${what}: says why`)
  }
  const unlimited = await r.run(['forget', '--keep-daily', 'unlimited', '--dry-run', '--json'])
  exits(t, unlimited, 0, '"unlimited" is a count')
  t.equal(json(t, unlimited, 'forget').keep.length, 1)
})

t.test('prune: --dry-run changes nothing, --json shape, the delay, confirmation, what it freed', async (t) => {
  const r = new Repo()
  await init(t, r)
  const src = join(r.dir, 'data')
  writeTree(src, { 'keep.bin': randomData('cli-keep', 3_000_000), 'old.bin': randomData('cli-old', 20_000_000) })
  const old = await snapshot(t, r, src, '2026-04-01T00:00:00Z')
  rmSync(join(src, 'old.bin'))
  const kept = await snapshot(t, r, src, '2026-04-02T00:00:00Z')
  const expected = new Map([[kept, readTree(src)]])
  exits(t, await r.run(['forget', '--keep-last', '1', '--yes']), 0, 'forget')
  t.notOk(existsSync(join(r.repo, 'snapshots', old)))

  const before = listing(r.repo)
  const dry = await r.run(['prune', '--dry-run', '--json'])
  exits(t, dry, 0, 'prune --dry-run')
  const d = json(t, dry, 'prune --dry-run')
  t.equal(d.dry_run, true)
  for (const k of ['swept', 'deferred', 'marked', 'freed', 'index', 'pinned_packs']) t.ok(k in d, `the report has ${k}`)
  const markedBytes = d.marked.delete.bytes + d.marked.repacked.bytes - d.marked.written.bytes
  t.ok(markedBytes >= 20_000_000, `it would mark the forgotten file's data: ${d.marked.delete.packs} unused packs, ${d.marked.repacked.packs} repacked (${markedBytes} bytes less)`)
  t.same(listing(r.repo), before, 'prune --dry-run changes nothing')

  const mark = await r.run(['prune', '--json'])
  exits(t, mark, 0, 'prune marks and repacks without asking: it deletes nothing')
  const m = json(t, mark, 'prune')
  t.same(m.freed, { packs: 0, bytes: 0, blobs: 0 })
  t.same([m.marked.delete, m.marked.repacked, m.marked.written], [d.marked.delete, d.marked.repacked, d.marked.written], 'what the dry run said it would mark and repack')

  const notYet = await r.run(['prune', '--json'])
  t.equal(json(t, notYet, 'prune').deferred[0]?.reason, 'not_due', 'a second run right away: the plan is not due')

  const later = new Date(Date.now() + 2 * 3_600_000).toISOString()
  const refused = await r.run(['prune', '--now', later])
  exits(t, refused, 2, 'a run that would delete refuses without --yes and a terminal')
  const sweep = await r.run(['prune', '--now', later, '--yes', '--json'])
  exits(t, sweep, 0, 'prune --yes after the delay')
  const s = json(t, sweep, 'prune')
  const md = m.marked.delete
  const mr = m.marked.repacked
  t.same(s.freed, { packs: md.packs + mr.packs, bytes: md.bytes + mr.bytes, blobs: md.blobs + mr.blobs }, 'it frees what was marked and repacked')
  t.match((await r.run(['prune', '--now', later, '--yes'])).stdout, /freed 0 packs/, 'the text says what it freed')
  exits(t, await r.run(['audit', '--verify']), 0, 'audit --verify')
  await intact(t, r, expected, 'after prune')
})

t.test('forget --prune --safety-delay 0 frees at once; --json adds the prune report', async (t) => {
  const r = new Repo()
  await init(t, r)
  const src = join(r.dir, 'data')
  writeTree(src, { 'x.bin': randomData('cli-x', 18_000_000) })
  await snapshot(t, r, src, '2026-04-01T00:00:00Z')
  writeTree(src, { 'x.bin': randomData('cli-y', 2_000_000) })
  const kept = await snapshot(t, r, src, '2026-04-02T00:00:00Z')
  const x = await r.run(['forget', '--keep-last', '1', '--prune', '--safety-delay', '0', '--yes', '--json'])
  exits(t, x, 0, 'forget --prune')
  const doc = json(t, x, 'forget --prune')
  t.same(Object.keys(doc), ['keep', 'remove', 'prune'], 'keep, remove and prune')
  t.ok(doc.prune.freed.bytes >= 18_000_000, `prune freed ${doc.prune.freed.bytes} bytes`)
  await intact(t, r, new Map([[kept, readTree(src)]]), 'after forget --prune')
})

/**
 * Starts a CLI command that writes and, once its first progress line shows it is running (its lock is
 * written), stops it with SIGSTOP, as a suspended laptop or a slow link would hold it mid-run: the prunes
 * then run exactly while it is in the middle. `resume()` sends SIGCONT.
 */
async function writing(r: Repo, args: string[], cache: string): Promise<{ result: Promise<Result>; resume: () => void }> {
  const { child, result } = start(r.args(args, cache), env(r.home, { COLDSTORE_PROGRESS_INTERVAL_MS: '20' }))
  await new Promise<void>((resolve, reject) => {
    const onData = (b: Buffer): void => {
      if (/files/.test(b.toString())) {
        child.stderr!.off('data', onData)
        resolve()
      }
    }
    child.stderr!.on('data', onData)
    child.once('close', () => reject(new Error('the writer ended before showing progress')))
  })
  child.kill('SIGSTOP')
  return { result, resume: () => { child.kill('SIGCONT') } }
}

t.test('prune and forget --prune while another process takes a snapshot that reuses forgotten data', async (t) => {
  const r = new Repo()
  await init(t, r)
  const src = join(r.dir, 'media')
  writeTree(src, { 'film.bin': randomData('cli-film', 24_000_000) })
  const first = await snapshot(t, r, src, '2026-05-01T00:00:00Z')
  exits(t, await r.run(['forget', '--keep-tag', 'none', '--yes']), 0, 'forget the only snapshot')
  t.notOk(existsSync(join(r.repo, 'snapshots', first)))
  // Another host (its own cache) snapshots the same folder plus new data: it reuses the forgotten chunks.
  // New data, big and small files.
  const small: Record<string, Buffer> = {}
  for (let i = 0; i < 300; i++) small[`notes/n${i}.txt`] = seededBytes(`note-${i}`, 700 + (i % 50))
  writeTree(src, { 'more.bin': randomData('cli-more', 40_000_000), ...small })
  const expected = new Map<string, Map<string, Buffer>>()
  const files = readTree(src)
  const other = await writing(r, ['snapshot', src, '--json'], 'cache-other')
  // Prune repeatedly while it is stopped mid-run (zero delay: each run marks and deletes what no writer is in the way of).
  for (let i = 0; i < 3; i++) {
    const p = await r.run(['prune', '--safety-delay', '0', '--yes', '--json'])
    exits(t, p, 0, `prune ${i + 1} during the snapshot`)
    const x = json(t, p, 'prune')
    if (i === 0) t.ok(x.marked?.delete.bytes >= 24_000_000, `prune marks the forgotten data (${x.marked?.delete.bytes} bytes)`)
    t.same(x.deferred.map((d: { reason: string }) => d.reason), ['writers'], `prune ${i + 1}: the sweep waits for the writer`)
    t.same(x.freed.packs, 0, `prune ${i + 1}: deletes nothing`)
  }
  other.resume()
  const o = await other.result
  exits(t, o, 0, 'the other snapshot')
  expected.set(json(t, o, 'snapshot').id, files)
  exits(t, await r.run(['forget', '--keep-last', '1', '--prune', '--safety-delay', '0', '--yes']), 0, 'forget --prune afterwards')
  await intact(t, r, expected, 'after the concurrent snapshot')
})

t.test('forget --prune while another process freezes: the freeze and its data stay', async (t) => {
  const r = new Repo()
  await init(t, r)
  const src = join(r.dir, 'paper')
  writeTree(src, { 'data.bin': randomData('cli-paper', 24_000_000), 'paper.tex': 'draft' })
  await snapshot(t, r, src, '2026-05-01T00:00:00Z')
  writeTree(src, { 'paper.tex': 'final', 'figures.bin': randomData('cli-fig', 30_000_000) })
  const files = readTree(src)
  const fr = await writing(r, ['freeze', '--milestone', 'submission', '--json', src, r.repo], 'cache-freeze')
  for (let i = 0; i < 2; i++) {
    const x = await r.run(['forget', '--keep-tag', 'none', '--prune', '--safety-delay', '0', '--yes', '--json'])
    exits(t, x, 0, `forget --prune ${i + 1} during the freeze`)
    t.same(json(t, x, 'forget').prune.deferred.map((d: { reason: string }) => d.reason), ['writers'], `forget --prune ${i + 1}: the sweep waits for the freeze`)
  }
  fr.resume()
  const f = await fr.result
  exits(t, f, 0, 'the freeze')
  const id = json(t, f, 'freeze').id as string
  t.ok(id, 'the freeze has an id')
  const after = await r.run(['forget', '--keep-tag', 'none', '--prune', '--safety-delay', '0', '--yes', '--json'])
  exits(t, after, 0, 'forget --prune after the freeze')
  const doc = json(t, after, 'forget')
  t.same(doc.keep.map((k: { id: string; reasons: string[] }) => [k.id, k.reasons]), [[id, ['freeze']]], 'the freeze is kept, as a freeze')
  t.ok(doc.prune.pinned_packs > 0, 'its packs are pinned')
  exits(t, await r.run(['verify', id]), 0, 'verify <freeze> passes')
  await intact(t, r, new Map([[id, files]]), 'after the concurrent freeze')
})
