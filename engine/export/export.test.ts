/**
 * Pieces of export/ checked against the real tools: manifest lines as b3sum
 * and sha256sum print them (names with backslashes and newlines), and the git
 * lookups of --github-release (tag at HEAD, origin URL forms) on real git
 * repositories.
 */
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { blake3 } from '@napi-rs/blake-hash'
import { readdirSync } from 'node:fs'
import { UsageError } from '../errors.js'
import { backup } from '../backup/index.js'
import { findSnapshot } from '../snapshot/index.js'
import { makeTestRepo, seededBytes, writeTree } from '../testing/test-repo.js'
import { exportSnapshot, gitOriginRepo, gitTagAtHead, manifestLine, parseGithubRemote, parseManifestLine, verifyPackage } from './index.js'

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

function need(t: Test, cmd: string): boolean {
  if (which(cmd)) return true
  if (process.env.CI === 'true') t.fail(`${cmd} is not installed (CI installs it in .ci/run)`)
  else t.pass('skipped', { skip: `${cmd} is not installed` })
  return false
}

const root = t.testdir()

t.test('manifest lines are what b3sum and sha256sum print, and parse back', async (t) => {
  const names = ['plain.txt', 'back\\slash.txt', 'new\nline.txt', 'both\\and\nboth', 'ünïcødé ☃.txt', 'two  spaces.txt']
  const dir = join(root, 'names')
  mkdirSync(dir)
  for (const n of names) {
    writeFileSync(join(dir, n), `content of ${n}`)
    const data = Buffer.from(`content of ${n}`)
    const b3 = manifestLine(blake3(data).toString('hex'), n)
    const sha = manifestLine(createHash('sha256').update(data).digest('hex'), n)
    t.same(parseManifestLine(b3.slice(0, -1)), { digest: blake3(data).toString('hex'), path: n }, `${JSON.stringify(n)} round-trips`)
    if (need(t, 'b3sum')) {
      const r = spawnSync('b3sum', ['--', n], { cwd: dir, encoding: 'utf8' })
      t.equal(b3, r.stdout, `b3sum prints the same line for ${JSON.stringify(n)}`)
    }
    if (need(t, 'sha256sum')) {
      const r = spawnSync('sha256sum', ['--', n], { cwd: dir, encoding: 'utf8' })
      t.equal(sha, r.stdout, `sha256sum prints the same line for ${JSON.stringify(n)}`)
    }
  }
  t.equal(parseManifestLine('not a digest line'), null)
  t.equal(parseManifestLine(`\\${'0'.repeat(64)}  bad\\escape`), null, 'an unknown escape is refused')
})

t.test('GitHub owner and repository from remote URLs', async (t) => {
  const want = { owner: 'acme', repo: 'thesis' }
  for (const url of [
    'https://github.com/acme/thesis.git',
    'https://github.com/acme/thesis',
    'https://user:secret@github.com/acme/thesis.git',
    'git@github.com:acme/thesis.git',
    'git@github.com:acme/thesis',
    'ssh://git@github.com/acme/thesis.git',
    'ssh://git@github.com:22/acme/thesis.git',
    'https://github.example.org/acme/thesis.git/',
  ]) {
    t.same(parseGithubRemote(url), want, url)
  }
  t.same(parseGithubRemote('git@github.com:acme/my.dotted.repo.git'), { owner: 'acme', repo: 'my.dotted.repo' })
  for (const bad of ['/srv/git/thesis.git', 'https://github.com/acme', 'https://github.com/a/b/c']) {
    t.throws(() => parseGithubRemote(bad), UsageError, `refused: ${bad}`)
  }
})

t.test('tag at HEAD and origin from a real git repository', async (t) => {
  if (!need(t, 'git')) return
  const dir = join(root, 'git')
  mkdirSync(dir)
  const env = { ...process.env, GIT_AUTHOR_NAME: 'A', GIT_AUTHOR_EMAIL: 'a@example.org', GIT_COMMITTER_NAME: 'A', GIT_COMMITTER_EMAIL: 'a@example.org' }
  const git = (...args: string[]): void => {
    const r = spawnSync('git', args, { cwd: dir, env, encoding: 'utf8' })
    t.equal(r.status, 0, `git ${args.join(' ')}`, { stderr: r.stderr })
  }
  await t.rejects(gitTagAtHead(dir), /not a git working tree|no tag/, 'outside a repository')
  git('init', '-q')
  writeFileSync(join(dir, 'f'), 'x')
  git('add', 'f')
  git('commit', '-q', '-m', 'one')
  await t.rejects(gitTagAtHead(dir), /has no tag/)
  await t.rejects(gitOriginRepo(dir), /no git remote named origin/)
  git('tag', '-a', 'v2.1', '-m', 'release 2.1')
  t.equal(await gitTagAtHead(dir), 'v2.1', 'an annotated tag')
  git('remote', 'add', 'origin', 'https://github.com/acme/thesis.git')
  t.match(await gitOriginRepo(dir), { owner: 'acme', repo: 'thesis', url: 'https://github.com/acme/thesis.git' })
})

t.test('an export that fails midway leaves neither a package nor temporary files', async (t) => {
  const dir = join(root, 'interrupted')
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  writeTree(join(dir, 'src'), { 'one.bin': seededBytes('one', 300_000), 'two.bin': seededBytes('two', 300_000) })
  await backup(tr.repo, { paths: [join(dir, 'src')], hostname: 'h', username: 'u', program: 'test', now: () => new Date() })
  const snapshot = await findSnapshot(tr.repo, 'latest')
  const outDir = join(dir, 'out')
  mkdirSync(outDir)
  const output = join(outDir, 'p.tar.zst')
  let calls = 0
  await t.rejects(exportSnapshot(tr.repo, {
    snapshot, output, program: 'test', now: () => new Date(),
    onProgress: () => {
      if (++calls === 2) throw new Error('interrupted by the test')
    },
  }), /interrupted by the test/)
  t.ok(calls >= 2, 'the export had started writing')
  t.same(readdirSync(outDir), [], 'no package, no temporary files')

  // The same export, complete, verifies.
  const r = await exportSnapshot(tr.repo, { snapshot, output, program: 'test', now: () => new Date() })
  t.equal(r.files, 2)
  t.same(readdirSync(outDir), ['p.tar.zst'])
  const v = await verifyPackage(output)
  t.match(v, { ok: true, files: 2, checked_blake3: 2, checked_sha256: 2, manifest_blake3: r.manifest_blake3 })
})
