import t from 'tap'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FormatError } from '../errors.js'
import { parseConfig } from './config.js'
import { makeTestRepo } from '../testing/test-repo.js'
import { backup } from '../backup/index.js'

const base = { hostname: 'h', username: 'u', now: () => new Date(), program: 'test' }

t.test('new repositories cut with gear32z-fastcdc; gear32-fastcdc repositories keep their rule', async (t) => {
  const dir = t.testdir()
  const z = await makeTestRepo(join(dir, 'z'), { password: null })
  t.teardown(() => z.repo.close())
  t.equal(z.repo.config.chunker.algorithm, 'gear32z-fastcdc')
  t.equal(z.repo.gear[0], 0)
  const old = await makeTestRepo(join(dir, 'old'), { password: null, chunkerAlgorithm: 'gear32-fastcdc' })
  t.teardown(() => old.repo.close())
  t.equal(old.repo.config.chunker.algorithm, 'gear32-fastcdc')
  t.not(old.repo.gear[0], 0, 'first algorithm: gear[0] as derived')
  // Reopened, the stored algorithm is what counts.
  const again = await old.reopen()
  t.teardown(() => again.close())
  t.same(again.gear, old.repo.gear)
  // Both store and read a file with zero-filled pages.
  const src = join(dir, 'src')
  const page = Buffer.alloc(4096, 7)
  page.fill(0, 1000, 3000)
  writeTree(src, Buffer.concat(Array.from({ length: 100 }, () => page)))
  for (const r of [z, old]) {
    const res = await backup(r.repo, { ...base, paths: [src] })
    t.ok(res.id)
  }
})

t.test('a config naming an unknown chunker algorithm is refused, not misread', async (t) => {
  const dir = t.testdir()
  const r = await makeTestRepo(dir, { password: null })
  await r.repo.close()
  const path = join(r.repoDir, 'config')
  const good = readFileSync(path)
  t.equal(parseConfig(good).chunker.algorithm, 'gear32z-fastcdc')
  const c = JSON.parse(good.toString())
  c.chunker.algorithm = 'gear64-future'
  t.throws(() => parseConfig(Buffer.from(JSON.stringify(c))), FormatError)
  t.throws(() => parseConfig(Buffer.from(JSON.stringify(c))), /unknown chunker algorithm "gear64-future".*upgrade coldstore/)
  writeFileSync(path, JSON.stringify(c))
  await t.rejects(r.reopen(), /unknown chunker algorithm/)
  c.chunker.algorithm = 'gear32-fastcdc'
  t.equal(parseConfig(Buffer.from(JSON.stringify(c))).chunker.algorithm, 'gear32-fastcdc')
})

function writeTree(dir: string, content: Buffer): void {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'pages.db'), content)
}
