/**
 * `coldstore freeze`, `inspect`, `verify <freeze>`, `status` and `resume`, as
 * a user types them: the built CLI in child processes, real git repositories
 * in temp dirs (outside this project's own work tree), real files.
 */
import t, { type Test } from 'tap'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { seededBytes, seededText, writeTree, randomData } from '../engine/testing/test-repo.js'
import { CLI, ensureBuilt } from './testing/build.js'

const PASSWORD = 'correct horse battery staple'
ensureBuilt(t)

interface Result { code: number | null; stdout: string; stderr: string }

/** A sandbox: a HOME, cache and config dirs, and a place for projects and repositories, outside any git work tree. */
function sandbox(t: Test): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(join(tmpdir(), 'coldstore-freeze-cli-'))
  t.teardown(() => {
    spawnSync('chmod', ['-R', 'u+w', dir])
    rmSync(dir, { recursive: true, force: true })
  })
  mkdirSync(join(dir, 'home'))
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'home'), LANG: 'C.UTF-8', COLDSTORE_PASSWORD: PASSWORD,
    XDG_CACHE_HOME: join(dir, 'cache'), XDG_CONFIG_HOME: join(dir, 'config'),
    GIT_AUTHOR_NAME: 'Ana Researcher', GIT_AUTHOR_EMAIL: 'ana@university.edu', GIT_COMMITTER_NAME: 'Ana Researcher', GIT_COMMITTER_EMAIL: 'ana@university.edu',
  }
  return { dir, env }
}

function run(args: readonly string[], o: { env: NodeJS.ProcessEnv; cwd: string }): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: o.env, cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 })
    const out: Buffer[] = []
    const errs: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => errs.push(d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(errs).toString() }))
  })
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

/** A small research project in a git repository: tagged, with an ignored folder and a lock file. */
function gitProject(dir: string, env: NodeJS.ProcessEnv): string {
  const p = join(dir, 'paper')
  writeTree(p, {
    'paper.tex': seededText('tex', 30_000),
    'data/measurements.csv': seededText('csv', 200_000),
    'data/raw.bin': seededBytes('raw', 700_000),
    'figures/fig1.py': 'import matplotlib\n',
    'requirements.txt': 'numpy==2.1.0\nmatplotlib==3.9\n',
    '.gitignore': 'build/\n*.tmp\n',
    'build/paper.pdf': seededBytes('pdf', 50_000),
    'scratch.tmp': 'temporary\n',
  })
  const git = (...a: string[]): void => {
    execFileSync('git', ['-C', p, ...a], { env, stdio: 'ignore' })
  }
  git('init', '-q', '-b', 'main')
  git('add', '-A')
  git('commit', '-q', '-m', 'Version submitted to PNAS')
  git('remote', 'add', 'origin', 'https://ana:ghp_TOKEN123@github.com/ana/paper.git')
  return p
}

t.test('the academic golden path: tag, dry run, freeze, verify, inspect', async (t) => {
  const { dir, env } = sandbox(t)
  const p = gitProject(dir, env)
  execFileSync('git', ['-C', p, 'tag', 'v1.0-submission'], { env })
  const dest = join(dir, 'freezes')
  const args = ['freeze', '--milestone', 'PNAS submission', '--include-git-metadata', '--include-environment', '--contact', 'researcher@university.edu']

  const dry = await run([...args, '--dry-run', '.', dest], { env, cwd: p })
  exits(t, dry, 0, 'dry run')
  t.match(dry.stdout, /dry run: milestone "PNAS submission" would store 6 files/, 'the dry run says what it would store (ignored files left out)')
  t.notOk(existsSync(dest), 'the dry run created nothing at the destination')

  const real = await run([...args, '.', dest], { env, cwd: p })
  exits(t, real, 0, 'freeze')
  t.match(real.stderr, /created encrypted repository/, 'the repository is created on first use')
  const m = /freeze ([0-9a-f]{8}) saved \(milestone "PNAS submission"\): 6 files/.exec(real.stdout)
  t.ok(m, 'the freeze reports its id, event and files')
  t.match(real.stdout, /tags v1\.0-submission, clean/)
  const id = m?.[1] ?? 'missing'

  const verify = await run(['verify', id, '--repo', dest], { env, cwd: p })
  exits(t, verify, 0, 'verify')
  t.match(verify.stdout, /coldstore freeze verification report/)
  t.match(verify.stdout, /files: +6 re-read .*, 6 match their BLAKE3, 0 do not/)
  t.match(verify.stdout, /\(recorded at freeze time\): match/)
  t.match(verify.stdout, /result: +PASS/)
  const vj = json(t, await run(['verify', id, '--repo', dest, '--json'], { env, cwd: p }), 'verify --json')
  t.equal(vj.ok, true)
  t.equal(vj.freeze.files.checked, 6)
  t.equal(vj.freeze.manifest.match, true)

  const inspect = await run(['inspect', id, '--repo', dest], { env, cwd: p })
  exits(t, inspect, 0, 'inspect')
  const y = parseYaml(inspect.stdout)
  const head = execFileSync('git', ['-C', p, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim()
  t.equal(y.kind, 'freeze')
  t.same(y.event, { type: 'milestone', name: 'PNAS submission', deliverable: null, description: null, contact: 'researcher@university.edu' })
  t.equal(y.git.commit, head)
  t.equal(y.git.branch, 'main')
  t.same(y.git.tags, ['v1.0-submission'])
  t.equal(y.git.dirty, false)
  t.same(y.git.remotes, [{ name: 'origin', url: 'https://github.com/ana/paper.git' }], 'remote URL without the token')
  t.notMatch(inspect.stdout, /ghp_TOKEN123/)
  t.equal(y.environment.runtimes.node, process.version)
  t.same(y.environment.lock_files.map((l: { path: string }) => l.path), ['paper/requirements.txt'])
  t.equal(y.environment.lock_files[0].blake3, execFileSync('b3sum', ['--no-names', join(p, 'requirements.txt')], { encoding: 'utf8' }).trim(), 'lock file hash is its BLAKE3')
  t.equal(y.sizes.files, 6)
  t.equal(y.immutability, null)
  t.equal(y.selection.gitignore, true, '.gitignore respected by default in a git repository')
  const ij = json(t, await run(['inspect', id, '--repo', dest, '--json'], { env, cwd: p }), 'inspect --json')
  t.same(ij, y, 'inspect --json holds what the YAML shows')

  const ls = json(t, await run(['ls', id, '--repo', dest, '--recursive', '--json'], { env, cwd: p }), 'ls')
  const paths = (ls as { path: string }[]).map((e) => e.path)
  t.notOk(paths.some((x) => x.includes('build') || x.endsWith('.tmp') || x.includes('.git/')), 'ignored files and .git are not in the freeze')

  // --no-gitignore includes everything (and .git).
  const all = json(t, await run([...args, '--no-gitignore', '--json', '--dry-run', '.', dest], { env, cwd: p }), 'no-gitignore')
  t.ok(all.report.files > 8, `--no-gitignore includes ignored files and .git (${all.report.files} files)`)
})

t.test('hand-off with SETUP.md, and reports inside the freeze that b3sum checks', async (t) => {
  const { dir, env } = sandbox(t)
  const p = gitProject(dir, env)
  const dest = join(dir, 'repo')
  const r = await run(['freeze', '--handoff', 'transfer-to-alice', '--include-setup-docs', '--include-reports', '--contact', 'alice@university.edu', '--json', '.', dest], { env, cwd: p })
  exits(t, r, 0, 'hand-off freeze')
  const j = json(t, r, 'freeze --json')
  t.equal(j.event.type, 'handoff')
  t.same(j.generated, { folder: 'coldstore-freeze', files: ['SETUP.md', 'files.b3', 'freeze.yaml', 'manifest.tsv'] })
  const target = join(dir, 'restored')
  exits(t, await run(['restore', j.id, '--repo', dest, '--target', target], { env, cwd: dir }), 0, 'restore')
  const setup = readFileSync(join(target, 'coldstore-freeze', 'SETUP.md'), 'utf8')
  t.match(setup, /# Freeze: handoff "transfer-to-alice"/)
  t.match(setup, /alice@university\.edu/)
  t.match(setup, new RegExp(`coldstore restore <freeze id> --repo ${dest}`))
  t.match(setup, new RegExp(j.manifest_digest))
  const check = spawnSync('b3sum', ['--check', 'coldstore-freeze/files.b3'], { cwd: target, encoding: 'utf8' })
  t.equal(check.status, 0, 'b3sum --check passes on the restored files')
  t.equal((check.stdout.match(/: OK$/gm) ?? []).length, 6)
  t.equal(execFileSync('b3sum', ['--no-names', 'coldstore-freeze/manifest.tsv'], { cwd: target, encoding: 'utf8' }).trim(), j.manifest_digest, 'b3sum of manifest.tsv is the manifest digest')
  const fy = parseYaml(readFileSync(join(target, 'coldstore-freeze', 'freeze.yaml'), 'utf8'))
  t.equal(fy.event.name, 'transfer-to-alice')
  t.equal(fy.verification.manifest_digest, j.manifest_digest)
})

t.test('compliance: required fields, retention and legal hold made read-only on disk', async (t) => {
  const { dir, env } = sandbox(t)
  const p = gitProject(dir, env)
  const dest = join(dir, 'repo')
  const base = ['freeze', '--audit', '--compliance', 'SOX', '--retention-years', '7', '--legal-hold']
  const missing = await run([...base, '.', dest], { env, cwd: p })
  exits(t, missing, 2, 'SOX without --contact')
  t.match(missing.stderr, /compliance template SOX requires contact/)
  t.notOk(existsSync(dest), 'nothing created')
  const noDesc = await run([...base, '--contact', 'cfo@corp.example', '.', dest], { env, cwd: p })
  exits(t, noDesc, 2, 'SOX without --description')
  t.match(noDesc.stderr, /requires description/)
  exits(t, await run(['freeze', '--compliance', 'PCI-DSS', '.', dest], { env, cwd: p }), 2, 'unknown template')

  const r = await run([...base, '--contact', 'cfo@corp.example', '--description', 'FY2026 year-end audit', '--json', '.', dest], { env, cwd: p })
  exits(t, r, 0, 'SOX freeze')
  const j = json(t, r, 'freeze --json')
  t.equal(j.event.type, 'audit')
  t.equal(j.immutability.enforced, true)
  t.equal(j.immutability.legal_hold, true)
  t.equal(j.immutability.retention_years, 7)
  t.ok(j.immutability.protected_objects >= 4)
  t.equal(statSync(join(dest, 'snapshots', j.id)).mode & 0o777, 0o444, 'the freeze object is read-only')
  const packs: string[] = []
  for (const kind of ['data', 'meta']) for (const d of readdirSync(join(dest, kind))) for (const f of readdirSync(join(dest, kind, d))) packs.push(join(dest, kind, d, f))
  t.ok(packs.length >= 2)
  for (const f of packs) t.equal(statSync(f).mode & 0o222, 0, `${f.slice(dest.length)} is read-only`)
  const y = parseYaml((await run(['inspect', j.id, '--repo', dest], { env, cwd: p })).stdout)
  t.equal(y.compliance.template, 'SOX')
  t.match(y.immutability.status, /^enforced: read-only files/)
  t.equal(y.immutability.snapshot_object_protected_now, true)
  t.match(y.immutability.retain_until, /^20\d\d-/)

  // A user template (compliance.yaml in the config dir) adds to the shipped ones.
  mkdirSync(join(dir, 'config', 'coldstore'), { recursive: true })
  writeFileSync(join(dir, 'config', 'coldstore', 'compliance.yaml'), 'templates:\n  LAB-SOP-12:\n    title: Lab data SOP 12\n    retention_years: 2\n    requires: [deliverable]\n')
  const lab = await run(['freeze', '--compliance', 'lab-sop-12', '.', dest], { env, cwd: p })
  exits(t, lab, 2, 'user template without its required field')
  t.match(lab.stderr, /requires deliverable: give --deliverable/)
  const labOk = json(t, await run(['freeze', '--compliance', 'lab-sop-12', '--deliverable', 'D4.2', '--json', '.', dest], { env, cwd: p }), 'user template')
  t.equal(labOk.event.type, 'deliverable')
  t.equal(labOk.immutability.retention_years, 2, 'the template sets the default retention')
})

t.test('a second freeze after a small change: the dry run equals the real run, and only the change is stored', async (t) => {
  const { dir, env } = sandbox(t)
  const p = gitProject(dir, env)
  const dest = join(dir, 'repo')
  exits(t, await run(['init', '--repo', dest], { env, cwd: dir }), 0, 'init')
  const args = ['freeze', '--milestone', 'v1', '--include-environment', '--include-setup-docs', '--include-reports', '--json', '.', dest]
  const dry1 = json(t, await run([...args, '--dry-run'], { env, cwd: p }), 'dry run 1')
  const real1 = json(t, await run(args, { env, cwd: p }), 'freeze 1')
  t.equal(dry1.exact, true)
  t.same(real1.report, dry1.report, 'first freeze into an empty repository: prediction = report')

  writeFileSync(join(p, 'paper.tex'), readFileSync(join(p, 'paper.tex'), 'utf8') + '\\section{Response to reviewers}\n')
  writeFileSync(join(p, 'data', 'new-run.csv'), seededText('new', 5000))
  const args2 = args.map((x) => (x === 'v1' ? 'v2' : x))
  const dry2 = json(t, await run([...args2, '--dry-run'], { env, cwd: p }), 'dry run 2')
  const real2 = json(t, await run(args2, { env, cwd: p }), 'freeze 2')
  t.same(real2.report, dry2.report, 'second freeze: prediction = report (files, bytes, new blobs, new bytes, stored bytes)')
  t.equal(real2.report.changed_files, 1)
  t.equal(real2.report.unchanged_files, 5)
  t.ok(real2.report.new_bytes < 60_000, `only the change is new (${real2.report.new_bytes} of ${real2.report.bytes} bytes)`)
  t.ok(real2.git.dirty, 'the uncommitted change shows as dirty')

  const text = await run(args2.filter((x) => x !== '--json'), { env, cwd: p })
  exits(t, text, 0, 'identical freeze')
  t.match(text.stdout, /0 new, 0 changed, 11 unchanged/, 'the generated files are unchanged too')
  t.match(text.stdout, /new in the repository after deduplication: 0 B \(0 bytes\) in 0 blobs/, 'the report says nothing new was stored')
  t.match(text.stdout, /nothing new, everything was already stored/)
})

t.test('.coldstore.yaml project defaults over the global config, flags over both', async (t) => {
  const { dir, env } = sandbox(t)
  const p = join(dir, 'project')
  writeTree(p, { 'a.txt': 'a\n', 'cache/big.bin': seededBytes('c', 10_000), 'keep/b.txt': 'b\n', 'notes.log': 'log\n' })
  mkdirSync(join(dir, 'config', 'coldstore'), { recursive: true })
  writeFileSync(join(dir, 'config', 'coldstore', 'coldstore.yaml'), 'freeze:\n  contact: global@uni.edu\n  description: from the global file\n  exclude: ["*.log"]\n')
  writeFileSync(join(p, '.coldstore.yaml'), 'exclude: [cache]\ncontact: project@uni.edu\ninclude_environment: true\n')
  const dest = join(dir, 'repo')
  const j = json(t, await run(['freeze', '--json', '--dry-run', '.', dest], { env, cwd: p }), 'dry run with defaults')
  t.equal(j.event.contact, 'project@uni.edu', 'the project file overrides the global one')
  t.equal(j.event.description, 'from the global file', 'what the project file does not set comes from the global one')
  t.equal(j.report.files, 3, 'excludes of both files apply (a.txt, keep/b.txt, .coldstore.yaml)')
  const j2 = json(t, await run(['freeze', '--json', '--contact', 'flag@uni.edu', '--exclude', 'keep', '--dry-run', '.', dest], { env, cwd: p }), 'flags')
  t.equal(j2.event.contact, 'flag@uni.edu', 'a flag overrides both files')
  t.equal(j2.report.files, 2)
  writeFileSync(join(p, '.coldstore.yaml'), 'contcat: typo@uni.edu\n')
  const bad = await run(['freeze', '--dry-run', '.', dest], { env, cwd: p })
  exits(t, bad, 2, 'unknown setting')
  t.match(bad.stderr, /unknown freeze setting "contcat"/)
})

t.test('bad input: clear errors, exit 2, nothing written', async (t) => {
  const { dir, env } = sandbox(t)
  const p = join(dir, 'project')
  writeTree(p, { 'a.txt': 'a\n' })
  const cases: [string, string[], RegExp][] = [
    ['undefined named remote', ['freeze', '.', 'cold://nature-2024/'], /'cold:\/\/' is not a remote kind .*no remotes are defined in the configuration file/],
    ['credentials in an s3 URL', ['freeze', '.', 's3://key:secret@bucket/x'], /credentials|secret key|access key/i],
    ['unknown remote kind', ['freeze', '.', 'ftp://host/x'], /'ftp:\/\/' is not a remote kind/],
    ['two events', ['freeze', '--milestone', 'a', '--handoff', 'b', '.', join(dir, 'r')], /give one event/],
    ['source is a file', ['freeze', 'a.txt', join(dir, 'r')], /must be a folder/],
    ['missing source', ['freeze', 'nope', join(dir, 'r')], /cannot read source nope/],
    ['negative retention', ['freeze', '--retention-years', '-3', '.', join(dir, 'r')], /--retention-years takes a whole number/],
  ]
  for (const [what, args, msg] of cases) {
    const r = await run(args, { env, cwd: p })
    exits(t, r, 2, what)
    t.match(r.stderr, msg, `${what}: message`)
    t.notMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`)
  }
  t.notOk(existsSync(join(dir, 'r')), 'no repository was created by a refused freeze')
  const other = join(dir, 'documents')
  writeTree(other, { 'letter.txt': 'dear\n' })
  const notRepo = await run(['freeze', '.', other], { env, cwd: p })
  exits(t, notRepo, 2, 'a non-empty folder that is not a repository')
  t.same(readdirSync(other), ['letter.txt'], 'nothing was added to it')
  const noPw = await run(['freeze', '.', join(dir, 'new')], { env: { ...env, COLDSTORE_PASSWORD: undefined }, cwd: p })
  exits(t, noPw, 2, 'no password to create the repository')
  t.match(noPw.stderr, /a password is needed to create the repository/)
})

t.test('a freeze killed mid-run shows as interrupted in status; resume completes it without uploading again', async (t) => {
  const { dir, env } = sandbox(t)
  const p = join(dir, 'big-project')
  const files: Record<string, Buffer> = {}
  for (let i = 0; i < 10; i++) files[`run-${i}.bin`] = randomData(`big${i}`, 8 * 1024 * 1024 + i)
  writeTree(p, files)
  const dest = join(dir, 'repo')
  exits(t, await run(['init', '--repo', dest], { env, cwd: dir }), 0, 'init') // 16 MiB packs: the freeze writes 5
  const packsNow = (): string[] => {
    const d = join(dest, 'data')
    if (!existsSync(d)) return []
    return readdirSync(d).filter((x) => !x.startsWith('.')).flatMap((s) => readdirSync(join(d, s)).filter((f) => !f.startsWith('.tmp')).map((f) => `${s}/${f}`))
  }
  const child = spawn(process.execPath, [CLI, 'freeze', '--milestone', 'big', '--legal-hold', '.', dest], { env, cwd: p, stdio: 'ignore' })
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
  let killed = false
  const deadline = Date.now() + 120_000
  while (Date.now() < deadline) {
    // Two packs: the first is then surely recorded in the local cache (a pack renamed into place a moment before
    // the kill, but not yet recorded, is left unindexed and stored again: what crash.test.ts allows).
    if (packsNow().length >= 2) {
      child.kill('SIGKILL')
      killed = true
      break
    }
    if (child.exitCode !== null) break
    await new Promise((r) => setTimeout(r, 10))
  }
  await exited
  t.ok(killed, 'the freeze was killed after two packs were stored')
  const before = packsNow()
  t.ok(before.length >= 2 && before.length < 5, `killed mid-run (${before.length} of 5 data packs stored)`)
  t.notOk(existsSync(join(dest, 'snapshots')) && readdirSync(join(dest, 'snapshots')).length > 0, 'no freeze object yet')

  const st = json(t, await run(['status', '--json'], { env, cwd: dir }), 'status')
  const op = st.operations?.[0]
  t.equal(op?.state, 'interrupted', 'status shows the killed freeze as interrupted')
  t.same(op?.argv, ['freeze', '--milestone', 'big', '--legal-hold', '.', dest])
  const stText = await run(['status'], { env, cwd: dir })
  t.match(stText.stdout, new RegExp(`${op?.id}  freeze  interrupted`))
  t.match(stText.stdout, new RegExp(`continue with: coldstore resume ${op?.id}`))

  const resumed = await run(['resume', op?.id ?? 'x'], { env, cwd: dir })
  exits(t, resumed, 0, 'resume')
  t.match(resumed.stdout, /freeze [0-9a-f]{8} saved \(milestone "big"\): 10 files/)
  const m = /\((\d+) bytes\) compressed and sealed/.exec(resumed.stdout)
  const stored = Number(m?.[1] ?? -1)
  const total = 10 * 8 * 1024 * 1024
  const after = packsNow()
  for (const x of before) t.ok(after.includes(x), `pack ${x.slice(0, 12)} from the killed run is still there`)
  // The packs of the killed run that the freeze uses are read-only now (legal hold): their bytes were not stored again.
  const reused = before.filter((x) => (statSync(join(dest, 'data', x)).mode & 0o222) === 0)
  const reusedBytes = reused.reduce((s, x) => s + statSync(join(dest, 'data', x)).size, 0)
  t.same(reused, before, 'every pack of the killed run is part of the freeze (also one it had not recorded)')
  t.ok(stored > 0 && stored + reusedBytes <= total * 1.01 + 1024 * 1024,
    `the resumed run stored only what was missing: ${stored} bytes new + ${reusedBytes} in reused packs for ${total} bytes of files`)
  const dataBytes = after.reduce((s, x) => s + statSync(join(dest, 'data', x)).size, 0)
  t.ok(dataBytes <= total * 1.01 + 1024 * 1024, `the repository holds the data once (${dataBytes} bytes of packs for ${total} bytes)`)
  const st2 = json(t, await run(['status', '--json'], { env, cwd: dir }), 'status after')
  t.equal(st2.operations[0].id, op?.id)
  t.equal(st2.operations[0].state, 'done')
  t.equal(st2.operations[0].attempts, 2)
  const id = st2.operations[0].result.freeze
  const v = await run(['verify', id, '--repo', dest, '--read-data'], { env, cwd: dir })
  exits(t, v, 0, 'the resumed freeze verifies')
  t.match(v.stdout, /10 re-read .*, 10 match/)
  t.notMatch(v.stdout, /unindexed/, 'no pack of the killed run is left unindexed')
  exits(t, await run(['resume', op?.id ?? 'x'], { env, cwd: dir }), 2, 'resuming a finished operation')
  exits(t, await run(['resume', 'nonsense'], { env, cwd: dir }), 2, 'resuming an unknown id')
  // Legal hold: the packs the freeze needs are read-only (a pack the killed run renamed into place but never
  // recorded is not needed, its chunks having been stored again: at most one such).
  const readOnly = after.filter((x) => (statSync(join(dest, 'data', x)).mode & 0o222) === 0).length
  t.ok(readOnly >= after.length - 1 && readOnly >= 5, `legal hold: ${readOnly} of ${after.length} data packs read-only`)
})
