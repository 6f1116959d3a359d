import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { backup } from '../backup/index.js'
import { NotFoundError, UsageError } from '../errors.js'
import { makeTestRepo } from '../testing/test-repo.js'
import { JobsView } from './jobs-view.js'
import { SnapshotView } from './snapshot-view.js'

const base = { hostname: 'h', username: 'u', now: () => new Date('2026-06-01T03:00:00Z'), program: 'test' }

async function collect(it: AsyncIterable<Buffer>): Promise<string> {
  const parts: Buffer[] = []
  for await (const b of it) parts.push(b)
  return Buffer.concat(parts).toString()
}

t.test('one folder per job over several repositories', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'photos')
  mkdirSync(src)
  writeFileSync(join(src, 'a.jpg'), 'photo bytes')
  const media = join(dir, 'media')
  mkdirSync(media)
  writeFileSync(join(media, 'film.mkv'), 'film bytes')
  const r1 = await makeTestRepo(join(dir, 'r1'))
  const r2 = await makeTestRepo(join(dir, 'r2'))
  t.teardown(async () => {
    await r1.repo.close()
    await r2.repo.close()
  })
  await backup(r1.repo, { ...base, paths: [src], job: 'photos' })
  await backup(r2.repo, { ...base, paths: [media], job: 'media' })
  await backup(r2.repo, { ...base, paths: [src], job: 'other-job-in-r2' })
  const v = new JobsView([
    { name: 'photos', view: await SnapshotView.open(r1.repo) },
    { name: 'media', view: await SnapshotView.open(r2.repo) },
    { name: 'fresh', view: await SnapshotView.open(r2.repo) },
    { name: 'host', view: null },
  ])
  const names = async (p: string[]): Promise<string[]> => (await v.list(p.map((x) => Buffer.from(x)))).map((e) => e.name.toString())
  t.same(await names([]), ['photos', 'media', 'fresh', 'host'], 'the jobs, not the repositories\' other folders')
  const pf = await names(['photos'])
  t.equal(pf.length, 2)
  t.match(pf[0], /^2026-06-01T03-00-00_[0-9a-f]{8}$/, 'the snapshot folder')
  t.equal(pf[1], 'latest')
  t.same(await names(['media', 'latest']), ['media'])
  t.same(await names(['fresh']), [], 'a job without snapshots is an empty folder')
  t.same(await names(['host']), [], 'so is a job without a browsable repository')
  const e = await v.stat(['photos', 'latest', 'photos', 'a.jpg'].map((x) => Buffer.from(x)))
  t.equal(await collect(v.openNode(e.node!).read()), 'photo bytes', 'files read from their own repository')
  const f = await v.stat(['media', 'latest', 'media', 'film.mkv'].map((x) => Buffer.from(x)))
  t.equal(await collect(v.openNode(f.node!).read()), 'film bytes')
  await t.rejects(v.stat([Buffer.from('other-job-in-r2')]), NotFoundError, 'only configured jobs')
  await t.rejects(v.stat([Buffer.from('..')]), UsageError)
  const walked: string[] = []
  for await (const [p] of v.walk([])) walked.push(p.map((x) => x.toString()).join('/'))
  t.ok(walked.includes('media/latest/media/film.mkv') && walked.includes('fresh') && walked.includes('host'), 'walk covers every job')
})
