/**
 * Hostile and odd input through the built CLI (the engine side: engine/backup/hostile.test.ts):
 *  - names made to attack a terminal or a line-based reader (escape sequences, newlines, carriage returns,
 *    bytes that are not UTF-8): text output keeps one entry per line and sends no control character to the
 *    terminal, `ls --json` keeps the exact bytes, restore recreates them byte-identical;
 *  - permission-denied files and folders: the tests run as root, who can read everything, so the CLI runs
 *    as `nobody` (uid/gid 65534, spawned with dropped privileges): exit code 3, every unreadable entry
 *    named, everything else stored and restorable;
 *  - many empty files with bounded memory: 100,000 (COLDSTORE_STRESS=1: 1,000,000) in folders of 1,000,
 *    snapshotted through bin/coldstore; the peak RSS (VmHWM) of the process is reported and bounded.
 */
import t from 'tap'
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { makeTestRepo, writeTree } from '../engine/testing/test-repo.js'
import { ensureBuilt } from './testing/build.js'
import { STRESS, cliEnv, compareTrees, exits, jsonOf, peakRss, runCli, sandbox } from './testing/harness.js'

ensureBuilt(t)
const PASSWORD = 'odd input'
const isRoot = process.getuid?.() === 0
const NOBODY = 65534

/** Names that would rewrite a terminal or split a line, and some that are not UTF-8. */
const EVIL: Buffer[] = [
  Buffer.from('title-\x1b]0;pwned\x07'),
  Buffer.from('red-\x1b[31mRED\x1b[0m'),
  Buffer.from('clear-\x1b[2J\x1b[H'),
  Buffer.from('two\nlines'),
  Buffer.from('over\rwrite'),
  Buffer.from('bell\x07'),
  Buffer.from('c1-\u009b31m'),
  Buffer.from([0x6c, 0x61, 0x74, 0x69, 0x6e, 0x31, 0xe9]), // latin1 é
  Buffer.from([0xff, 0x1b, 0x5b, 0x33, 0x31, 0x6d]), // not UTF-8, with an escape inside
]

t.test('names that attack terminals and line-based readers', async (t) => {
  const box = sandbox(t, 'evil-names')
  const proj = join(box, 'proj')
  mkdirSync(join(proj, 'sub'), { recursive: true })
  for (const [i, n] of EVIL.entries()) writeFileSync(Buffer.concat([Buffer.from(`${proj}/sub/`), n]), `evil ${i}\n`)
  writeFileSync(join(proj, 'plain.txt'), 'plain\n')
  const tr = await makeTestRepo(box, { password: PASSWORD })
  await tr.repo.close()
  const env = cliEnv(box, PASSWORD)
  const s = await runCli(['snapshot', proj, '--repo', tr.repoDir], { env })
  exits(t, s, 0, 'snapshot')
  const ls = await runCli(['ls', 'latest', '--recursive', '--repo', tr.repoDir], { env })
  exits(t, ls, 0, 'ls --recursive')
  const lines = ls.stdout.split('\n').filter((l) => l !== '')
  t.equal(lines.length, EVIL.length + 3, 'one line per entry (proj/, sub/, plain.txt and the evil names)')
  t.notOk(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(ls.stdout), 'no control character reaches the terminal')
  t.ok(lines.some((l) => l.includes('title-\\x1b]0;pwned\\x07')), `escapes are shown, not sent: ${lines.find((l) => l.includes('title')) ?? ''}`)
  t.ok(lines.some((l) => l.includes('two\\x0alines')), 'a newline in a name stays on its line')
  const long = await runCli(['ls', 'latest', '--recursive', '--long', '--repo', tr.repoDir], { env })
  t.notOk(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(long.stdout), 'ls --long: no control character either')
  const js = jsonOf(t, await runCli(['ls', 'latest', '--recursive', '--json', '--repo', tr.repoDir], { env }), 'ls --json') as { path: string; path_b64?: string }[]
  const exact = new Set(js.map((e) => (e.path_b64 ? Buffer.from(e.path_b64, 'base64') : Buffer.from(e.path)).toString('hex')))
  for (const n of EVIL) t.ok(exact.has(Buffer.concat([Buffer.from('proj/sub/'), n]).toString('hex')), `ls --json keeps ${JSON.stringify(n.toString('latin1'))} exact`)
  const out = join(box, 'out')
  exits(t, await runCli(['restore', 'latest', '--repo', tr.repoDir, '--target', out], { env }), 0, 'restore')
  t.same(compareTrees(proj, join(out, 'proj')).differences, [], 'restored byte-identical, names exact')
  const diff = await runCli(['diff', s.stdout.match(/snapshot ([0-9a-f]{8})/)?.[1] ?? 'latest', 'latest', '--repo', tr.repoDir], { env })
  t.notOk(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(diff.stdout + diff.stderr), 'diff: no control character')
})

t.test('permission-denied files and folders, as an unprivileged user', async (t) => {
  if (!isRoot) {
    t.pass('not root: the unprivileged-user run needs root to drop to nobody', { skip: 'runs as root only (tests run as root here and in CI)' })
    return
  }
  const box = sandbox(t, 'perm')
  chmodSync(box, 0o755) // mkdtemp makes it 0700: nobody could not even reach the repository
  const proj = join(box, 'proj')
  writeTree(proj, {
    'readable.txt': 'fine\n', 'secret.txt': 'no\n', 'locked/inside.txt': 'hidden\n', 'noexec/child.txt': 'unreachable\n',
    'list-only/x.txt': 'x\n', 'ok/deep/y.txt': 'y\n',
  })
  writeFileSync(Buffer.concat([Buffer.from(`${proj}/`), EVIL[0]]), 'evil\n')
  const tr = await makeTestRepo(box, { password: PASSWORD })
  await tr.repo.close()
  const env = cliEnv(box, PASSWORD)
  spawnSync('chown', ['-R', `${NOBODY}:${NOBODY}`, box])
  chmodSync(join(proj, 'secret.txt'), 0o000)
  chmodSync(Buffer.concat([Buffer.from(`${proj}/`), EVIL[0]]), 0o000)
  chmodSync(join(proj, 'locked'), 0o000)
  chmodSync(join(proj, 'noexec'), 0o644) // listable, but its entries cannot be looked at
  chmodSync(join(proj, 'list-only'), 0o311) // enterable, not listable
  const r = await runCli(['snapshot', proj, '--repo', tr.repoDir, '--json'], { env, uid: NOBODY, gid: NOBODY })
  exits(t, r, 3, 'snapshot as nobody: written, some entries unreadable')
  const doc = jsonOf(t, r, 'snapshot')
  const errs = new Map(((doc?.errors ?? []) as { path: string; message: string }[]).map((e) => [e.path, e.message]))
  t.ok(doc?.id, 'the snapshot was written')
  for (const p of ['proj/secret.txt', 'proj/locked', 'proj/list-only', 'proj/noexec/child.txt']) t.ok(errs.has(p), `${p} is named: ${errs.get(p) ?? 'not reported'}`)
  t.ok(errs.has(`proj/${EVIL[0].toString()}`), 'so is the unreadable file with an escape sequence in its name')
  t.match(errs.get('proj/secret.txt') ?? '', /EACCES|permission denied/i)
  const text = await runCli(['snapshot', proj, '--repo', tr.repoDir], { env, uid: NOBODY, gid: NOBODY })
  exits(t, text, 3, 'the same in text mode')
  t.notOk(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(text.stderr), 'warnings send no control character to the terminal')
  t.match(text.stderr, /warning: proj\/title-\\x1b\]0;pwned\\x07: /, 'the name is shown escaped')

  const out = join(box, 'out')
  exits(t, await runCli(['restore', doc.id, '--repo', tr.repoDir, '--target', out, '--json'], { env, uid: NOBODY, gid: NOBODY }), 0, 'restore as nobody')
  for (const f of ['readable.txt', 'ok/deep/y.txt']) t.ok(lstatSync(join(out, 'proj', f)).isFile(), `${f} restored`)
  t.same(readdirSync(join(out, 'proj', 'noexec')), [], 'the folder whose entries could not be looked at is restored empty')
  exits(t, await runCli(['verify', '--read-data', '--repo', tr.repoDir], { env, uid: NOBODY, gid: NOBODY }), 0, 'verify --read-data')
})

t.test(`${STRESS ? '1,000,000' : '100,000'} empty files with bounded memory`, async (t) => {
  const box = sandbox(t, 'many')
  const count = STRESS ? 1_000_000 : 100_000
  const proj = join(box, 'proj')
  const t0 = performance.now()
  for (let d = 0; d < count / 1000; d++) {
    const dir = join(proj, `d${String(d).padStart(4, '0')}`)
    mkdirSync(dir, { recursive: true })
    for (let f = 0; f < 1000; f++) closeSync(openSync(join(dir, `f${f}`), 'w'))
  }
  t.comment(`created ${count} empty files in ${Math.round(performance.now() - t0)} ms`)
  const tr = await makeTestRepo(box, { password: PASSWORD })
  await tr.repo.close()
  const env = cliEnv(box, PASSWORD)
  const measured = async (args: string[], what: string): Promise<{ peak: number; ms: number; out: string }> => {
    let pid = 0
    let peak = 0
    const poll = setInterval(() => (peak = Math.max(peak, peakRss(pid))), 100)
    const r = await runCli(args, { env, launcher: true, timeoutMs: 1_800_000, onSpawn: (p) => (pid = p) })
    clearInterval(poll)
    exits(t, r, 0, what)
    return { peak, ms: r.ms, out: r.stdout }
  }
  const first = await measured(['snapshot', proj, '--repo', tr.repoDir, '--json'], 'first snapshot')
  const doc = jsonOf(t, { ...first, code: 0, signal: null, stdout: first.out, stderr: '' }, 'snapshot')
  t.equal(doc?.stats?.files, count, `${count} files stored`)
  const again = await measured(['snapshot', proj, '--repo', tr.repoDir, '--json'], 'unchanged re-run')
  t.equal(JSON.parse(again.out).stats.unchanged_files, count, 'all unchanged on the re-run')
  const ls = await measured(['ls', 'latest', '--recursive', '--repo', tr.repoDir], 'ls --recursive')
  t.equal(ls.out.split('\n').filter(Boolean).length, count + count / 1000 + 1, 'ls lists every file and folder')
  // Bounded: the peak does not grow with the number of files (folders of 1,000 are held one at a time).
  const bound = 400 * 1024 * 1024
  for (const [what, m] of [['first snapshot', first], ['re-run', again], ['ls', ls]] as const) {
    t.ok(m.peak > 0 && m.peak < bound, `${what}: peak RSS ${(m.peak / 1048576).toFixed(0)} MiB < ${bound / 1048576} MiB (${Math.round(m.ms)} ms)`)
  }
  t.comment(`figures: many-files ${JSON.stringify({ files: count, first_peak_mib: +(first.peak / 1048576).toFixed(1), first_ms: Math.round(first.ms), rerun_peak_mib: +(again.peak / 1048576).toFixed(1), rerun_ms: Math.round(again.ms), ls_peak_mib: +(ls.peak / 1048576).toFixed(1), ls_ms: Math.round(ls.ms) })}`)
})
