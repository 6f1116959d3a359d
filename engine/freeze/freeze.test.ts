/**
 * Freezes at the engine level, on real files in temp dirs, real git and a
 * local repository: the dry run predicts the real run exactly (first and
 * second freeze, across several packs), a second freeze stores only what
 * changed, protection makes the needed objects read-only and protectedPacks
 * finds them, verifyFreeze catches damage, the manifest is what b3sum hashes,
 * and compliance templates and git capture behave.
 */
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, mkdirSync, rmSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { makeTestRepo, seededBytes, seededText, writeTree } from '../testing/test-repo.js'
import { backup } from '../backup/index.js'
import { loadSnapshot } from '../snapshot/index.js'
import { repairIndex } from '../verify/index.js'
import { SnapshotView } from '../vfs/index.js'
import { LocalRemote } from '../remote/index.js'
import { Repository } from '../repo/index.js'
import { UsageError } from '../errors.js'
import {
  FREEZE_INFO_FOLDER, adoptUnindexedPacks, canonicalManifest, captureGit, checkRequiredFields, escapeManifestPath, findComplianceTemplate, freeze,
  isLockFile, manifestDigest, parseComplianceTemplates, protectedPacks, packsOfSnapshot, verifyFreeze, type FreezeOptions,
} from './index.js'

const HAS_B3SUM = spawnSync('b3sum', ['--version']).status === 0

function opts(source: string, o: Partial<FreezeOptions> = {}): FreezeOptions {
  return {
    source,
    event: { type: 'milestone', name: 'PNAS submission', deliverable: null, description: null, contact: 'researcher@university.edu' },
    compliance: null, retentionYears: null, legalHold: false, git: null,
    includeEnvironment: true, includeSetupDocs: true, includeReports: true,
    gitignore: false, excludes: [], configFiles: [], destination: '/somewhere', nodeVersion: 'v20.0.0',
    hostname: 'testhost', username: 'tester', program: 'coldstore test', now: () => new Date('2026-11-22T10:00:00Z'),
    workers: 2,
    ...o,
  }
}

/** The fields a dry run predicts and the real run reports. */
function predicted(s: { files: number; dirs: number; bytes: number; new_files: number; changed_files: number; unchanged_files: number; new_chunks: number; new_raw_bytes?: number; new_stored_bytes?: number }) {
  return {
    files: s.files, dirs: s.dirs, bytes: s.bytes, new_files: s.new_files, changed_files: s.changed_files, unchanged_files: s.unchanged_files,
    new_chunks: s.new_chunks, new_raw_bytes: s.new_raw_bytes, new_stored_bytes: s.new_stored_bytes,
  }
}

function makeProject(dir: string): void {
  const files: Record<string, Buffer | string> = {}
  for (let i = 0; i < 6; i++) files[`data/random-${i}.bin`] = seededBytes(`r${i}`, 300_000 + i * 1111)
  for (let i = 0; i < 5; i++) files[`text/notes-${i}.txt`] = seededText(`t${i}`, 200_000 + i * 77)
  for (let i = 0; i < 30; i++) files[`small/s${i}.txt`] = seededText(`s${i}`, 100 + i * 50)
  files['data/copy-of-random-0.bin'] = seededBytes('r0', 300_000) // a duplicate: stored once
  files['requirements.txt'] = 'numpy==2.1.0\n'
  files['analysis/renv.lock'] = '{"R": {"Version": "4.4.1"}}\n'
  writeTree(dir, files)
}

t.test('the dry run predicts the real run exactly, also for a second freeze after changes', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir) // 1 MiB packs, small chunks: the freeze spans several packs
  const repo = tr.repo
  t.teardown(() => repo.close())
  const src = join(dir, 'project')
  makeProject(src)

  const dry1 = await freeze(repo, opts(src, { dryRun: true }))
  t.equal(dry1.id, null, 'a dry run writes no snapshot')
  t.notOk(existsSync(join(tr.repoDir, 'snapshots')) && readdirSync(join(tr.repoDir, 'snapshots')).length > 0, 'nothing stored by the dry run')
  const real1 = await freeze(repo, opts(src))
  t.ok(real1.id, 'the real run writes a freeze')
  t.same(predicted(real1.snapshot.stats), predicted(dry1.snapshot.stats), 'first freeze: prediction equals the report')
  t.ok(real1.snapshot.stats.added_data_bytes! > 1024 * 1024, 'the first freeze filled more than one pack')
  t.equal(real1.snapshot.stats.files, 6 + 5 + 30 + 1 + 2 + 4, 'source files plus the 4 generated files')
  t.equal(real1.meta.verification.manifest_files, 6 + 5 + 30 + 1 + 2, 'the manifest holds the source files only')
  t.ok(real1.snapshot.stats.new_raw_bytes! < real1.snapshot.stats.bytes, 'the duplicate file was stored once')

  const doc = await loadSnapshot(repo, real1.id!)
  t.equal(doc.kind, 'freeze')
  t.equal((doc.meta as { event: { name: string } }).event.name, 'PNAS submission')
  const env = (doc.meta as { environment: { lock_files: { path: string }[]; runtimes: Record<string, string> } }).environment
  t.same(env.lock_files.map((l) => l.path), ['project/analysis/renv.lock', 'project/requirements.txt'], 'lock files found among the frozen files')
  t.equal(env.runtimes.node, 'v20.0.0')

  // A small change: one file edited, one added, one renamed.
  writeFileSync(join(src, 'text/notes-1.txt'), Buffer.concat([readFileSync(join(src, 'text/notes-1.txt')), Buffer.from('one more line\n')]))
  writeFileSync(join(src, 'added.csv'), 'a,b\n1,2\n')
  renameSync(join(src, 'data/random-3.bin'), join(src, 'data/random-3-renamed.bin'))
  const dry2 = await freeze(repo, opts(src, { dryRun: true }))
  const real2 = await freeze(repo, opts(src))
  t.same(predicted(real2.snapshot.stats), predicted(dry2.snapshot.stats), 'second freeze: prediction equals the report')
  const s2 = real2.snapshot.stats
  t.equal(s2.changed_files, 2, 'the edited file and the renamed one (its ctime changed: read again, its chunks found stored)')
  t.equal(s2.new_files, 1 + 4, 'the added file and the generated files are new')
  t.ok(s2.new_raw_bytes! < 150_000, `only the change is stored (${s2.new_raw_bytes} bytes new of ${s2.bytes})`)
  t.ok(s2.new_raw_bytes! > 0)
  t.not(real2.meta.verification.manifest_digest, real1.meta.verification.manifest_digest, 'the manifest digest follows the content')

  // Nothing changed: the report says nothing but the (unchanged) trees and generated files are known.
  const dry3 = await freeze(repo, opts(src, { dryRun: true }))
  const real3 = await freeze(repo, opts(src))
  t.same(predicted(real3.snapshot.stats), predicted(dry3.snapshot.stats), 'third freeze: prediction equals the report')
  t.equal(real3.snapshot.stats.new_chunks, 0, 'an identical freeze stores nothing new')

  const v = await verifyFreeze(repo, await loadSnapshot(repo, real2.id!))
  t.ok(v.ok, 'the freeze verifies')
  t.equal(v.manifest.match, true)
  t.equal(v.files.checked, s2.files)
  t.equal(v.files.failed, 0)
})

t.test('retention and legal hold: the objects a freeze needs become read-only; protectedPacks finds them', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir)
  const repo = tr.repo
  t.teardown(() => repo.close())
  const src = join(dir, 'project')
  makeProject(src)
  const other = join(dir, 'other')
  writeTree(other, { 'x.bin': seededBytes('other', 500_000) })
  const snap = await backup(repo, { paths: [other], hostname: 'h', username: 'u', program: 'p', now: () => new Date() })
  const plain = await freeze(repo, opts(src, { includeReports: false, includeSetupDocs: false }))
  t.equal(plain.meta.immutability, null, 'no retention asked: nothing recorded')
  t.equal(plain.protectedObjects, 0)
  const now = new Date('2026-11-22T10:00:00Z')
  let info = await protectedPacks(repo, now)
  t.same(info.protectedFreezes, [], 'a freeze without retention protects no packs')
  t.same(info.freezes, [plain.id], 'but it is listed as a freeze')

  writeFileSync(join(src, 'results.csv'), 'final\n')
  const held = await freeze(repo, opts(src, { retentionYears: 7, legalHold: false, now: () => now }))
  t.equal(held.meta.immutability!.enforced, true, 'a local remote enforces it')
  t.equal(held.meta.immutability!.retain_until, '2033-11-22T10:00:00.000Z')
  t.ok(held.protectedObjects > 3)
  const mode = (p: string): number => statSync(join(tr.repoDir, p)).mode & 0o777
  t.equal(mode(`snapshots/${held.id}`), 0o444, 'the snapshot object is read-only')
  t.equal(mode(`snapshots/${plain.id}`) & 0o200, 0o200, 'a freeze without retention stays writable')
  const needed = await packsOfSnapshot(repo, held.snapshot)
  for (const p of needed) t.equal(mode(p), 0o444, `${p} is read-only`)
  const snapPacks = await packsOfSnapshot(repo, snap.snapshot)
  const onlySnapshot = [...snapPacks].filter((p) => !needed.has(p))
  t.ok(onlySnapshot.length > 0, 'the other snapshot has packs of its own')
  for (const p of onlySnapshot) t.equal(mode(p) & 0o200, 0o200, `${p} (not needed by the freeze) stays writable`)

  info = await protectedPacks(repo, now)
  t.same(info.protectedFreezes, [held.id])
  t.same([...info.packs].sort(), [...needed].sort(), 'protectedPacks lists exactly the packs the protected freeze needs')
  const later = await protectedPacks(repo, new Date('2034-01-01T00:00:00Z'))
  t.same(later.protectedFreezes, [], 'after the retention period the freeze no longer protects its packs')

  // repair index rewrites the index but leaves the protected index objects in place.
  const protectedIndexes = readdirSync(join(tr.repoDir, 'index')).filter((n) => (statSync(join(tr.repoDir, 'index', n)).mode & 0o222) === 0)
  t.ok(protectedIndexes.length >= 1, 'index objects naming the freeze\'s packs are read-only')
  const rep = await repairIndex(repo)
  for (const n of protectedIndexes) t.ok(existsSync(join(tr.repoDir, 'index', n)), `protected index/${n.slice(0, 12)} kept by repair`)
  t.notOk(rep.removed.some((n) => protectedIndexes.includes(n.slice('index/'.length))), 'repair reports only what it removed')
  t.ok((await verifyFreeze(repo, await loadSnapshot(repo, held.id!))).ok, 'the freeze verifies after the repair')

  const hold = await freeze(repo, opts(src, { legalHold: true, includeReports: false, now: () => now }))
  const farLater = await protectedPacks(repo, new Date('2100-01-01T00:00:00Z'))
  t.same(farLater.protectedFreezes, [hold.id], 'a legal hold has no end date')
  t.equal(hold.meta.immutability!.retain_until, null)
})

t.test('a remote without the protection capability records "not enforced"', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir)
  const repo = tr.repo
  t.teardown(() => repo.close())
  const src = join(dir, 'project')
  writeTree(src, { 'a.txt': 'a\n' })
  // The same repository seen through a remote that cannot enforce immutability (as SFTP would be).
  const inner = repo.remote
  const bare = { properties: inner.properties, put: inner.put.bind(inner), get: inner.get.bind(inner), stat: inner.stat.bind(inner), list: inner.list.bind(inner), delete: inner.delete.bind(inner), close: inner.close.bind(inner), createWriter: inner.createWriter?.bind(inner) }
  const view = Object.create(repo, { remote: { value: bare } }) as Repository
  const r = await freeze(view, opts(src, { retentionYears: 3 }))
  t.equal(r.meta.immutability!.enforced, false)
  t.match(r.meta.immutability!.note, /cannot enforce/)
  t.equal(r.protectedObjects, 0)
  t.equal(statSync(join(tr.repoDir, 'snapshots', r.id!)).mode & 0o200, 0o200, 'nothing was made read-only')
})

t.test('verifyFreeze re-reads every file and reports damage', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir, { password: null })
  const repo = tr.repo
  t.teardown(() => repo.close())
  const src = join(dir, 'project')
  writeTree(src, { 'a.bin': seededBytes('a', 200_000), 'b.txt': seededText('b', 50_000) })
  const r = await freeze(repo, opts(src))
  const good = await verifyFreeze(repo, await loadSnapshot(repo, r.id!))
  t.ok(good.ok)
  t.equal(good.manifest.recorded_digest, r.meta.verification.manifest_digest)
  // Damage the data pack holding a.bin's first chunk.
  const node = (await packsOfSnapshot(repo, r.snapshot))
  const dataPack = [...node].find((p) => p.startsWith('data/'))!
  const path = join(tr.repoDir, dataPack)
  chmodSync(path, 0o644)
  const bytes = readFileSync(path)
  bytes[10] ^= 0xff
  writeFileSync(path, bytes)
  const bad = await verifyFreeze(repo, await loadSnapshot(repo, r.id!))
  t.equal(bad.ok, false, 'damage fails the report')
  t.ok(bad.files.failed >= 1)
  t.equal(bad.problems[0].problem, 'unreadable')
  t.match(bad.problems[0].path, /^project\//)
})

t.test('the manifest: canonical lines, escapes, and b3sum agrees with the digest', async (t) => {
  const entries = [
    { path: Buffer.from('p/b.txt'), blake3: 'bb'.repeat(32), size: 2 },
    { path: Buffer.from('p/a\tb\\c\nd'), blake3: 'aa'.repeat(32), size: 10 },
    { path: Buffer.from([0x70, 0x2f, 0xff, 0x41]), blake3: 'cc'.repeat(32), size: 0 },
  ]
  t.equal(escapeManifestPath(Buffer.from('a\tb\\c\nd\re')).toString(), 'a\\tb\\\\c\\nd\\re')
  const m = canonicalManifest(entries)
  t.same(m, Buffer.concat([
    Buffer.from(`p/a\\tb\\\\c\\nd\t${'aa'.repeat(32)}\t10\np/b.txt\t${'bb'.repeat(32)}\t2\n`),
    Buffer.from([0x70, 0x2f, 0xff, 0x41]), Buffer.from(`\t${'cc'.repeat(32)}\t0\n`),
  ]), 'sorted by the bytes of the escaped path, one line per file')
  if (!HAS_B3SUM) {
    t.fail('b3sum is not installed (Debian package b3sum)')
    return
  }
  const dir = t.testdir({ 'manifest.tsv': m })
  const out = execFileSync('b3sum', ['--no-names', join(dir, 'manifest.tsv')], { encoding: 'utf8' }).trim()
  t.equal(manifestDigest(entries), out, 'the manifest digest is what b3sum prints for the manifest')
})

t.test('compliance templates: shipped file, user overrides, required fields', async (t) => {
  const shipped = readFileSync(new URL('../../compliance/templates.yaml', import.meta.url), 'utf8')
  const user = 'templates:\n  sox:\n    retention_years: 10\n    requires: [contact]\n  ISO27001:\n    title: ISO 27001\n    retention_years: 3\n    legal_hold: true\n    requires: [contact, deliverable]\n'
  const all = parseComplianceTemplates([{ path: 'templates.yaml', text: shipped }, { path: 'user.yaml', text: user }])
  for (const n of ['21CFR11', 'GDPR', 'HIPAA']) t.ok(all.has(n.toLowerCase()), `${n} is shipped`)
  const sox = findComplianceTemplate(all, 'SOX')
  t.equal(sox.retentionYears, 10, 'the user file overrides a shipped template (names are case-insensitive)')
  t.same(sox.requires, ['contact'])
  const iso = findComplianceTemplate(all, 'iso27001')
  t.equal(iso.legalHold, true, 'the user file adds templates')
  t.throws(() => findComplianceTemplate(all, 'PCI'), UsageError)
  const shippedSox = findComplianceTemplate(parseComplianceTemplates([{ path: 't', text: shipped }]), 'sox')
  t.equal(shippedSox.retentionYears, 7)
  t.throws(() => checkRequiredFields(shippedSox, { contact: 'a@b' }), /requires description: give --description/)
  t.doesNotThrow(() => checkRequiredFields(shippedSox, { contact: 'a@b', description: 'FY26' }))
  t.throws(() => checkRequiredFields(iso, { contact: 'a@b' }), /requires deliverable/)
  t.throws(() => parseComplianceTemplates([{ path: 'bad.yaml', text: 'templates:\n  X:\n    requires: [phone]\n' }]), /bad.yaml: template X: requires must list/)
  t.throws(() => parseComplianceTemplates([{ path: 'bad.yaml', text: 'templates:\n  X:\n    retention_years: -1\n' }]), UsageError)
  t.throws(() => parseComplianceTemplates([{ path: 'bad.yaml', text: 'templates: [1, 2]\n' }]), UsageError)
})

t.test('git state: commit, branch, tags, dirty files, remotes without credentials, detached HEAD', async (t) => {
  // Outside the project's own git work tree (tap's test dirs are inside it).
  const dir = mkdtempSync(join(tmpdir(), 'coldstore-git-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const repoDir = join(dir, 'work')
  mkdirSync(join(repoDir, 'sub'), { recursive: true })
  const git = (...args: string[]): string => execFileSync('git', ['-C', repoDir, ...args], {
    encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 'Ana Researcher', GIT_AUTHOR_EMAIL: 'ana@uni.edu', GIT_COMMITTER_NAME: 'Ana', GIT_COMMITTER_EMAIL: 'ana@uni.edu', GIT_AUTHOR_DATE: '2026-05-02T10:00:00Z', GIT_COMMITTER_DATE: '2026-05-02T10:00:00Z' },
  })
  t.equal(await captureGit(repoDir), null, 'not a repository yet')
  git('init', '-q', '-b', 'main')
  writeFileSync(join(repoDir, 'paper.tex'), 'x\n')
  writeFileSync(join(repoDir, 'sub', 'fig.py'), 'y\n')
  git('add', '-A')
  git('commit', '-q', '-m', 'Submission version')
  git('tag', 'v1.0-submission')
  git('tag', 'pnas')
  git('remote', 'add', 'origin', 'https://ana:ghp_secret123@github.com/ana/paper.git')
  git('remote', 'add', 'mirror', 'git@gitlab.com:ana/paper.git')
  const head = git('rev-parse', 'HEAD').trim()
  const g = (await captureGit(repoDir))!
  t.equal(g.commit, head)
  t.equal(g.branch, 'main')
  t.same(g.tags, ['pnas', 'v1.0-submission'])
  t.equal(g.dirty, false)
  t.same(g.remotes, [{ name: 'mirror', url: 'git@gitlab.com:ana/paper.git' }, { name: 'origin', url: 'https://github.com/ana/paper.git' }].sort((a, b) => (a.name < b.name ? -1 : 1)))
  t.notMatch(JSON.stringify(g), /ghp_secret123/, 'no credentials anywhere')
  t.same(g.last_commit, { author: 'Ana Researcher', email: 'ana@uni.edu', time: '2026-05-02T10:00:00+00:00', subject: 'Submission version' })
  const indexBefore = statSync(join(repoDir, '.git', 'index')).mtimeMs
  writeFileSync(join(repoDir, 'paper.tex'), 'changed\n')
  writeFileSync(join(repoDir, 'new file.txt'), 'n\n')
  const d = (await captureGit(join(repoDir, 'sub')))!
  t.equal(d.subdir, 'sub', 'a source inside the repository records where')
  t.equal(d.dirty, true)
  t.same(d.dirty_files, ['new file.txt', 'paper.tex'])
  t.equal(statSync(join(repoDir, '.git', 'index')).mtimeMs, indexBefore, 'capturing does not rewrite .git/index')
  git('checkout', '-q', '--detach', 'HEAD')
  t.equal((await captureGit(repoDir))!.branch, null, 'detached HEAD: no branch')
})

t.test('lock files are recognised by name', async (t) => {
  for (const n of ['package-lock.json', 'poetry.lock', 'requirements.txt', 'requirements-dev.txt', 'Cargo.lock', 'renv.lock', 'environment.yml', 'go.sum']) t.ok(isLockFile(n), n)
  for (const n of ['package.json', 'lock.txt', 'requirements.md', 'Cargo.toml']) t.notOk(isLockFile(n), n)
})

t.test('a source named like the generated folder is refused', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const src = join(dir, FREEZE_INFO_FOLDER)
  writeTree(src, { 'a.txt': 'a' })
  await t.rejects(freeze(tr.repo, opts(src)), UsageError)
  await t.rejects(freeze(tr.repo, opts(join(src, 'a.txt'))), /must be a folder/)
})

t.test('freezes appear in the browsing view under freezes/, named by their event', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const src = join(dir, 'project')
  writeTree(src, { 'a.txt': 'a\n' })
  await freeze(tr.repo, opts(src, { includeReports: false, includeSetupDocs: true, now: () => new Date('2026-05-02T10:00:00Z') }))
  await freeze(tr.repo, opts(src, {
    event: { type: 'audit', name: null, deliverable: null, description: null, contact: null },
    includeReports: false, includeSetupDocs: false, now: () => new Date('2026-06-01T00:00:00Z'),
  }))
  const view = await SnapshotView.open(tr.repo, { now: () => new Date('2026-07-01T00:00:00Z'), refreshMs: 5000 })
  t.same((await view.list([Buffer.from('freezes')])).map((e) => e.name.toString()), ['PNAS submission_2026-05-02T10-00-00', 'audit_2026-06-01T00-00-00'])
  t.same((await view.list([Buffer.from('freezes'), Buffer.from('PNAS submission_2026-05-02T10-00-00')])).map((e) => e.name.toString()), [FREEZE_INFO_FOLDER, 'project'],
    'the freeze holds the project and its generated folder')
})

t.test('adoptUnindexedPacks takes up packs no index or cache knows, so they are not stored again', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir)
  const src = join(dir, 'project')
  makeProject(src)
  const first = await backup(tr.repo, { paths: [src], hostname: 'h', username: 'u', program: 'p', now: () => new Date() })
  await tr.repo.close()
  // As if the run had been killed after uploading its packs: no index objects, and a cache that never saw them.
  for (const n of readdirSync(join(tr.repoDir, 'index'))) rmSync(join(tr.repoDir, 'index', n))
  rmSync(join(tr.repoDir, 'snapshots'), { recursive: true })
  const repo = await Repository.open(await LocalRemote.open({ path: tr.repoDir }), { password: tr.password, cacheDir: join(dir, 'fresh-cache') })
  t.teardown(() => repo.close())
  await repo.syncIndex()
  const packFiles = ['data', 'meta'].flatMap((k) => readdirSync(join(tr.repoDir, k)).flatMap((d) => readdirSync(join(tr.repoDir, k, d))))
  const adopted = await adoptUnindexedPacks(repo)
  t.equal(adopted.packs, packFiles.length, 'every pack is adopted')
  t.equal(adopted.bytes, first.snapshot.stats.added_data_bytes! + first.snapshot.stats.added_meta_bytes!)
  t.same(await adoptUnindexedPacks(repo), { packs: 0, bytes: 0 }, 'adopting again finds nothing new')
  const again = await backup(repo, { paths: [src], hostname: 'h', username: 'u', program: 'p', now: () => new Date() })
  t.equal(again.snapshot.stats.new_chunks, 0, 'nothing is stored again')
  t.equal(readdirSync(join(tr.repoDir, 'index')).length, 1, 'the adopted packs are indexed at the end of the run')
})
