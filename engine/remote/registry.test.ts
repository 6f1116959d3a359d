import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { ConfigError, NotFoundError } from '../errors.js'
import { LocalRemote } from './local/index.js'
import { MemoryRemote } from './memory/index.js'
import { describeRemoteUrl, openRemote } from './registry.js'

t.test('openRemote picks the kind from the URL', async (t) => {
  const dir = t.testdir()
  const cases: { url: string; kind: typeof LocalRemote | typeof MemoryRemote }[] = [
    { url: dir, kind: LocalRemote },
    { url: pathToFileURL(dir).href, kind: LocalRemote },
    { url: 'memory://test', kind: MemoryRemote },
    { url: 'MEMORY://test', kind: MemoryRemote },
  ]
  for (const c of cases) {
    const remote = await openRemote(c.url)
    t.ok(remote instanceof c.kind, c.url)
    await remote.close()
  }
})

t.test('openRemote passes create to the kind', async (t) => {
  const target = path.join(t.testdir(), 'new')
  await t.rejects(openRemote(target), NotFoundError)
  const remote = await openRemote(target, { create: true })
  t.equal(remote.properties.location, target)
})

t.test('openRemote rejects unusable URLs with ConfigError', async (t) => {
  // s3:// and b2:// are loaded; they refuse credentials in the URL without repeating them.
  for (const kind of ['s3', 'b2']) {
    const e = await openRemote(`${kind}://user:secret@bucket/prefix`).catch((x: unknown) => x)
    t.ok(e instanceof ConfigError, `${kind}: credentials in the URL`, { found: e })
    t.notMatch(String(e), 'secret', `${kind}: the message carries no credentials`)
  }
  for (const url of ['', 'ftp://host/x', 'constructor://x', 'file://otherhost/x', 'gs://', 'gs://user:secret@bucket/x', 'gs://Bad_Bucket/x', 'gs://bucket/../x', 'gs://bucket/x?storage_class=GLACIER']) {
    const err = await openRemote(url).catch((e: unknown) => e)
    t.ok(err instanceof ConfigError, JSON.stringify(url), { found: err })
  }
  for (const url of ['ftp://user:secret@host/x', 'gs://user:secret@bucket/x']) {
    const err = await openRemote(url).catch((e: unknown) => e)
    t.notMatch(String(err), 'secret', `${url}: messages carry no credentials`)
  }
  // sftp:// is a kind now; URLs it cannot use are refused before any connection is tried.
  for (const url of ['sftp://user:secret@host/x', 'sftp:///no-host', 'sftp://host:99999/x', 'sftp://host/x#frag', 'sftp://host/x?connections=0']) {
    const e = await openRemote(url).catch((x: unknown) => x)
    t.ok(e instanceof ConfigError, url, { found: e })
    t.notMatch(String(e), 'secret', `${url}: no password in the message`)
  }
})

t.test('describeRemoteUrl strips credentials', async (t) => {
  const cases: [string, string][] = [
    ['s3://key:secret@s3.example.com/bucket/path', 's3://s3.example.com/bucket/path'],
    ['sftp://user@host:2222/srv/repo', 'sftp://host:2222/srv/repo'],
    ['sftp://user:p@ss@host/repo', 'sftp://host/repo'],
    ['s3://host/bucket?region=eu&secret_key=abc&token=t#frag', 's3://host/bucket?region=eu&secret_key=***&token=***#frag'],
    ['/srv/backup', '/srv/backup'],
    ['file:///srv/backup', 'file:///srv/backup'],
    ['memory://x', 'memory://x'],
  ]
  for (const [url, want] of cases) t.equal(describeRemoteUrl(url), want, url)
})
