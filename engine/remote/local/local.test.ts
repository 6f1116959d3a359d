import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { ConfigError, NotFoundError, RemoteError } from '../../errors.js'
import { runRemoteSuite } from '../../testing/remote-suite.js'
import { LocalRemote, parseConfig } from './index.js'

await runRemoteSuite(t, (t) => LocalRemote.open({ path: t.testdir(), create: true }))

async function listNames(remote: LocalRemote, prefix: string): Promise<string[]> {
  const names: string[] = []
  for await (const info of remote.list(prefix)) names.push(info.name)
  return names.sort()
}

t.test('open', async (t) => {
  const dir = t.testdir({ file: 'x' })
  await t.rejects(LocalRemote.open({ path: path.join(dir, 'missing') }), NotFoundError, 'missing directory without create')
  const created = await LocalRemote.open({ path: path.join(dir, 'a', 'b'), create: true })
  t.equal(created.properties.location, path.join(dir, 'a', 'b'), 'location is the absolute root')
  t.ok((await fs.stat(path.join(dir, 'a', 'b'))).isDirectory(), 'create makes missing parents')
  await LocalRemote.open({ path: path.join(dir, 'a', 'b'), create: true })
  t.pass('create on an existing directory is fine')
  await t.rejects(LocalRemote.open({ path: path.join(dir, 'file') }), ConfigError, 'a file is not a remote')
  await t.rejects(LocalRemote.open({ path: path.join(dir, 'file'), create: true }), ConfigError, 'nor can one be created over it')
  await t.rejects(LocalRemote.open({ path: path.join(dir, 'file', 'sub'), create: true }), ConfigError, 'nor below it')
})

t.test('parseConfig', async (t) => {
  const cases: { url: string; want?: string }[] = [
    { url: '/srv/backup', want: '/srv/backup' },
    { url: 'backup', want: 'backup' },
    { url: './backup/x', want: './backup/x' },
    { url: 'file:///srv/my%20backup', want: '/srv/my backup' },
    { url: 'file://localhost/srv/b', want: '/srv/b' },
    { url: pathToFileURL('/tmp/a#b').href, want: '/tmp/a#b' },
    { url: '' },
    { url: 'file://otherhost/srv/b' },
    { url: 'file:///srv/b?x=1' },
    { url: 'memory://x' },
    { url: 's3:bucket/path' },
  ]
  for (const c of cases) {
    if (c.want === undefined) t.throws(() => parseConfig(c.url), ConfigError, `${JSON.stringify(c.url)} is rejected`)
    else t.same(parseConfig(c.url), { path: c.want }, JSON.stringify(c.url))
  }
})

t.test('objects are plain files under the root', async (t) => {
  const dir = t.testdir()
  const remote = await LocalRemote.open({ path: dir })
  await remote.put('data/ab/ab12', Buffer.from('hello'))
  t.equal(await fs.readFile(path.join(dir, 'data', 'ab', 'ab12'), 'utf8'), 'hello')
  const mode = (await fs.stat(path.join(dir, 'data', 'ab', 'ab12'))).mode & 0o777
  t.equal(mode & ~0o644, 0, 'at most 0o644 (the umask may remove more)')
  t.same(await fs.readdir(path.join(dir, 'data', 'ab')), ['ab12'], 'no temporary file is left behind')
})

t.test('an interrupted put leaves only a temporary file, which list skips', async (t) => {
  const dir = t.testdir({ data: { ab: { '.tmp-0123abcd': 'partial', ab01: 'whole' } } })
  const remote = await LocalRemote.open({ path: dir })
  t.same(await listNames(remote, ''), ['data/ab/ab01'], 'list of everything')
  t.same(await listNames(remote, 'data/'), ['data/ab/ab01'], 'list of data/')
  t.same(await listNames(remote, 'data/ab/.'), [], 'list of a prefix of the temporary name')
  await t.rejects(remote.put('data/ab/.tmp-x', Buffer.from('x')), TypeError, 'temporary names are reserved')

  const old = new Date(Date.now() - 2 * 3600_000)
  await fs.utimes(path.join(dir, 'data', 'ab', '.tmp-0123abcd'), old, old)
  await fs.writeFile(path.join(dir, 'data', '.tmp-fresh'), 'in progress')
  t.equal(await remote.removeStaleTemp(3600_000), 1, 'removes only temporary files older than the limit')
  t.same((await fs.readdir(path.join(dir, 'data', 'ab'))).sort(), ['ab01'])
  t.same((await fs.readdir(path.join(dir, 'data'))).sort(), ['.tmp-fresh', 'ab'])
})

t.test('a writer streams into a temporary file in its directory and renames it at commit', async (t) => {
  const dir = t.testdir({})
  const remote = await LocalRemote.open({ path: dir })
  const w = remote.createWriter('data/')
  await w.write(Buffer.from('hello '))
  const temps = (await fs.readdir(path.join(dir, 'data'))).filter((n) => n.startsWith('.tmp-'))
  t.equal(temps.length, 1, 'the bytes are in a temporary file, not in memory')
  t.equal(await fs.readFile(path.join(dir, 'data', temps[0]), 'utf8'), 'hello ')
  await w.write(Buffer.from('world'))
  await w.commit('data/cd/cd34')
  t.equal(await fs.readFile(path.join(dir, 'data', 'cd', 'cd34'), 'utf8'), 'hello world')
  t.same(await fs.readdir(path.join(dir, 'data')), ['cd'], 'the temporary file was renamed')

  const a = remote.createWriter('data/')
  await a.write(Buffer.alloc(1000))
  await a.abort()
  t.same(await fs.readdir(path.join(dir, 'data')), ['cd'], 'abort removes the temporary file')
  t.throws(() => remote.createWriter('../up/'), TypeError, 'the directory must be below the root')
})

t.test('list skips files that are not objects', async (t) => {
  const dir = t.testdir({ 'a b': 'x', 'lost+found': { f: 'x' }, data: { ok: 'x', 'bad name': 'x' } })
  const remote = await LocalRemote.open({ path: dir })
  t.same(await listNames(remote, ''), ['data/ok'])
})

t.test('list walks only the prefix\'s directory', async (t) => {
  // A symlink pointing at itself cannot be statted (ELOOP), so any listing that walks its directory fails:
  // listings that succeed next to one prove that directory was not walked.
  const dir = t.testdir({
    data: { ab: { ab01: 'x' }, cd: { loop: t.fixture('symlink', 'loop') } },
    index: { loop: t.fixture('symlink', 'loop') },
    keys: 'a file, not a directory',
  })
  const remote = await LocalRemote.open({ path: dir })
  t.same(await listNames(remote, 'data/ab/'), ['data/ab/ab01'], 'data/ab/ reads only data/ab/')
  t.same(await listNames(remote, 'data/a'), ['data/ab/ab01'], 'data/a reads only data/ and the matching entries below it')
  await t.rejects(listNames(remote, 'data/'), RemoteError, 'data/ reaches the loop in data/cd/')
  await t.rejects(listNames(remote, ''), RemoteError, 'the whole tree reaches the loops')
  await fs.rm(path.join(dir, 'data', 'cd'), { recursive: true })
  t.same(await listNames(remote, 'data/'), ['data/ab/ab01'], 'data/ does not read index/')
  t.same(await listNames(remote, 'keys/'), [], 'a prefix below a file lists nothing')
  t.same(await listNames(remote, 'missing/'), [], 'a prefix below a missing directory lists nothing')
  for (const prefix of ['../', '/x', 'a//', '../../etc/', 'data/../']) {
    await t.rejects(listNames(remote, prefix), TypeError, `prefix ${JSON.stringify(prefix)} is rejected`)
  }
})

t.test('filesystem errors become RemoteError with the cause', async (t) => {
  const dir = t.testdir({ config: 'x' })
  const remote = await LocalRemote.open({ path: dir })
  // 'config' is a file, so 'config/x' cannot be created: ENOTDIR or EEXIST from the filesystem.
  const err = await remote.put('config/x', Buffer.from('y')).catch((e: unknown) => e)
  t.ok(err instanceof RemoteError, 'RemoteError', { found: err })
  if (err instanceof RemoteError) {
    t.equal(err.transient, false)
    t.equal(err.objectName, 'config/x')
    t.ok(err.cause instanceof Error, 'keeps the filesystem error as cause')
  }
  t.same(await fs.readdir(dir), ['config'], 'nothing is left behind')
})

t.test('a put recreates a directory removed behind its back', async (t) => {
  const dir = t.testdir()
  const remote = await LocalRemote.open({ path: dir })
  await remote.put('data/ab/x', Buffer.from('x'))
  await fs.rm(path.join(dir, 'data'), { recursive: true })
  await remote.put('data/ab/y', Buffer.from('y'))
  t.same(await listNames(remote, ''), ['data/ab/y'])
})

t.test('names cannot escape the root', async (t) => {
  const parent = t.testdir({ root: {} })
  const remote = await LocalRemote.open({ path: path.join(parent, 'root') })
  await t.rejects(remote.put('../escaped', Buffer.from('x')), TypeError)
  t.same(await fs.readdir(parent), ['root'])
})
