/**
 * `coldstore restore --interactive` through a real pseudo-terminal
 * (util-linux `script`), with the built CLI: pick job, snapshot and paths,
 * restore; quit restores nothing; without a terminal it is a usage error.
 */
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { backup, closeRepository } from '../engine/index.js'
import { makeTestRepo, seededBytes, writeTree } from '../engine/testing/test-repo.js'
import { CLI, PASSWORD, cli, ensureBuilt, haveTool, run } from '../server/testing/fixture.js'

ensureBuilt(t)

t.test('pick job, snapshot and paths on a terminal', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  const files = { 'big.bin': seededBytes('b', 300_000), 'keep/a.txt': 'a\n', 'keep/b.txt': 'b\n', 'skip/c.txt': 'c\n', 'other.txt': 'o\n' }
  writeTree(src, files)
  const tr = await makeTestRepo(dir, { password: PASSWORD })
  const base = { hostname: 'h', username: 'u', program: 'test', paths: [src] }
  await backup(tr.repo, { ...base, job: 'alpha', now: () => new Date('2026-01-01T00:00:00Z') })
  await backup(tr.repo, { ...base, job: 'beta', now: () => new Date('2026-01-02T00:00:00Z') })
  await closeRepository(tr.repo)
  const env = { PATH: process.env.PATH, HOME: dir, COLDSTORE_PASSWORD: PASSWORD, COLDSTORE_CACHE_DIR: tr.cacheDir, COLDSTORE_REPO: tr.repoDir, TERM: 'dumb' }

  const noTty = await cli(['restore', '--interactive', '--target', join(dir, 'x')], env)
  t.equal(noTty.code, 2, 'no terminal: usage error')
  t.match(noTty.stderr, /needs a terminal/)
  const noRef = await cli(['restore', '--target', join(dir, 'x')], env)
  t.equal(noRef.code, 2, 'no snapshot and no --interactive: usage error')
  t.match(noRef.stderr, /give a snapshot to restore/)
  const both = await cli(['restore', 'latest', '--interactive', '--target', join(dir, 'x')], env)
  t.equal(both.code, 2, '<ref> with --interactive: usage error')

  if (!haveTool(t, 'script', 'bsdutils')) return
  const target = join(dir, 'restored')
  const inTerminal = (input: string) => run('script', ['-qfec', `${process.execPath} ${CLI} restore --interactive --target ${target}`, '/dev/null'], { env, input })
  // Job 2 (beta), snapshot 1, open src (1), select big.bin (1) and keep/ (2); other.txt and skip/ stay out.
  const r = await inTerminal('2\n1\n1\n+1,2\nr\ny\n')
  const text = r.stdout.toString()
  t.equal(r.code, 0, text)
  t.match(text, /1\) alpha/)
  t.match(text, /2\) beta/)
  t.match(text, /2026-01-02T00-00-00_[0-9a-f]{8}/, 'beta\'s snapshot listed')
  t.match(text, /restored 3 files/)
  t.ok(readFileSync(join(target, 'src', 'big.bin')).equals(files['big.bin']), 'big.bin byte-identical')
  t.equal(readFileSync(join(target, 'src', 'keep', 'a.txt'), 'utf8'), 'a\n')
  t.equal(readFileSync(join(target, 'src', 'keep', 'b.txt'), 'utf8'), 'b\n')
  t.notOk(existsSync(join(target, 'src', 'skip')), 'unselected folder not restored')
  t.notOk(existsSync(join(target, 'src', 'other.txt')), 'unselected file not restored')

  const q = await inTerminal('1\nq\n')
  t.equal(q.code, 0)
  t.match(q.stdout.toString(), /nothing restored/)
  const declined = await inTerminal('1\n1\n1\n+3\nr\nn\nq\n')
  t.match(declined.stdout.toString(), /nothing restored/, 'answering n restores nothing')
  t.notOk(existsSync(join(target, 'src', 'other.txt')))
})
