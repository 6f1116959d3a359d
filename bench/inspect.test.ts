import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { backup, initRepository, openRepository, TEST_KDF } from '../engine/index.js'
import { attribute, duplicates } from './inspect.js'

t.test('attribute names the new chunks of a snapshot by category; duplicates finds none', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'project')
  mkdirSync(join(src, 'logs'), { recursive: true })
  mkdirSync(join(src, 'src', 'p'), { recursive: true })
  writeFileSync(join(src, 'logs', 'a.log'), 'line\n'.repeat(1000))
  writeFileSync(join(src, 'src', 'p', 'x.c'), 'int x;\n')
  const url = join(dir, 'repo')
  await initRepository(url, { password: 'pw', kdf: TEST_KDF, hostname: 'h', username: 'u', now: new Date() })
  const repo = await openRepository({ url, password: 'pw', cacheDir: join(dir, 'cache') })
  t.teardown(() => repo.close())
  const base = { hostname: 'h', username: 'u', program: 'test', paths: [src] }
  const a = await backup(repo, { ...base, now: () => new Date('2026-01-01T00:00:00Z') })
  writeFileSync(join(src, 'logs', 'a.log'), 'line\n'.repeat(1000) + 'appended\n')
  writeFileSync(join(src, 'src', 'p', 'y.c'), 'int y;\n')
  const b = await backup(repo, { ...base, now: () => new Date('2026-01-02T00:00:00Z') })
  const rows = await attribute(repo, a.id!, b.id!)
  t.same(rows.map((r) => r.category).sort(), ['logs', 'src'])
  const logs = rows.find((r) => r.category === 'logs')!
  t.equal(logs.chunks, 1)
  t.equal(logs.rawBytes, 5009)
  t.same(logs.examples, ['logs/a.log'])
  t.same(rows.find((r) => r.category === 'src')!.examples, ['src/p/y.c'], 'the unchanged x.c is not new')
  t.same(await attribute(repo, b.id!, b.id!), [], 'nothing new relative to itself')
  const d = await duplicates(repo)
  t.equal(d.duplicates, 0)
  t.equal(d.unique, d.entries)
  t.ok(d.entries >= 5, `${d.entries} blobs indexed`)
})
