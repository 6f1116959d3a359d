/**
 * GcsRemote against the GCS JSON API emulator in ./testing/emulator.ts (started by each test on 127.0.0.1).
 *
 * There is no Cloud Storage here: what these tests see of storage classes, holds, object retention,
 * preconditions and resumable sessions is the emulator's behaviour, which follows what Cloud Storage answers
 * (status codes, JSON bodies, the 403 bodies of held and retained objects as measured) but is not the service.
 * The client (@google-cloud/storage 7.22) is the real one, talking HTTP to the emulator.
 */
import { spawn } from 'node:child_process'
import { createCipheriv, createHash } from 'node:crypto'
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError, ExistsError, NotFoundError, RemoteError } from '../../errors.js'
import { runRemoteSuite } from '../../testing/remote-suite.js'
import { writeTree } from '../../testing/test-repo.js'
import { StagedObjectWriter } from '../staged-writer.js'
import { openRemote } from '../registry.js'
import { RetryingRemote } from '../wrappers/retrying.js'
import type { KindContext } from '../registry.js'
import type { ObjectInfo, Remote } from '../remote.js'
import { GcsRemote, parseConfig, type GcsConfig } from './index.js'
import { GcsEmulator, md5Base64, startGcsEmulator, type RecordedRequest } from './testing/emulator.js'

const BUCKET = 'coldstore-test'
const KiB = 1024
const MiB = 1024 * KiB

type ErrorClass = abstract new (...args: never[]) => Error

/** Deterministic incompressible bytes (an AES-256-CTR keystream keyed by `seed`): fast enough for tens of MiB. */
function seededBytes(seed: string, size: number): Buffer {
  const key = createHash('sha256').update(seed).digest()
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size))
}

/** Opens a GcsRemote on `gs://coldstore-test/<prefix>` of `emulator`, closed when `t` ends. */
async function openGcs(t: Test, emulator: GcsEmulator, query = '', o: { prefix?: string; bucket?: string; ctx?: Partial<KindContext> } = {}): Promise<GcsRemote> {
  const url = `gs://${o.bucket ?? BUCKET}/${o.prefix ?? 'repo'}?endpoint=${emulator.endpoint}${query ? `&${query}` : ''}`
  const remote = await GcsRemote.open(parseConfig(url), { create: false, env: {}, ...o.ctx })
  t.teardown(() => remote.close())
  return remote
}

/** The error `promise` rejects with (fails the test when it resolves). */
async function rejection(t: Test, promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await promise
  } catch (err) {
    return err
  }
  t.fail(`${what}: resolved instead of rejecting`)
  return undefined
}

async function rejectsWith(t: Test, promise: Promise<unknown>, cls: ErrorClass, what: string): Promise<unknown> {
  const err = await rejection(t, promise, what)
  t.ok(err instanceof cls, `${what}: ${cls.name}`, { found: err })
  return err
}

async function collect(remote: Remote, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = []
  for await (const info of remote.list(prefix)) out.push(info)
  return out.sort((a, b) => (a.name < b.name ? -1 : 1))
}

function ops(emulator: GcsEmulator, operation?: RecordedRequest['operation']): RecordedRequest[] {
  return emulator.requests.filter((r) => operation === undefined || r.operation === operation)
}

t.test('parseConfig', async (t) => {
  const ok: { url: string; settings?: Record<string, string>; want: Partial<GcsConfig> }[] = [
    {
      url: 'gs://my-bucket/backups/host1',
      want: {
        url: 'gs://my-bucket/backups/host1', bucket: 'my-bucket', prefix: 'backups/host1/', dataClass: 'STANDARD', hotClass: 'STANDARD',
        retentionMode: 'Unlocked', chunkSizeBytes: 8 * MiB, resumableThresholdBytes: 8 * MiB, listPageSize: 1000,
      },
    },
    { url: 'gs://my-bucket', want: { url: 'gs://my-bucket', prefix: '' } },
    { url: 'gs://my-bucket/', want: { prefix: '' } },
    { url: 'GS://b.example.com/a/b/', want: { bucket: 'b.example.com', prefix: 'a/b/' } },
    { url: 'gs://bucket/x?storage_class=archive&hot_storage_class=Standard', want: { dataClass: 'ARCHIVE', hotClass: 'STANDARD' } },
    // A query parameter wins over the named remote's setting.
    { url: 'gs://bucket/x?storage_class=NEARLINE', settings: { storage_class: 'COLDLINE', project_id: 'proj-1' }, want: { dataClass: 'NEARLINE', projectId: 'proj-1' } },
    {
      url: 'gs://bucket/x?endpoint=http://127.0.0.1:4443/&retention_mode=LOCKED&chunk_size=262144&resumable_threshold=1&list_page_size=7&location=EU',
      want: { endpoint: 'http://127.0.0.1:4443', retentionMode: 'Locked', chunkSizeBytes: 262144, resumableThresholdBytes: 1, listPageSize: 7, location: 'EU' },
    },
    { url: 'gs://bucket/a%2Db', want: { prefix: 'a-b/' } },
  ]
  for (const c of ok) t.match(parseConfig(c.url, c.settings), c.want, c.url)

  const bad = [
    's3://bucket/x', 'gs://', 'gs:///x', 'gs://UPPER/x', 'gs://ab/x', 'gs://-bucket/x', 'gs://bucket/a//b', 'gs://bucket/a/../b', 'gs://bucket/./b',
    'gs://bucket/a b', 'gs://bucket/x#frag', 'gs://bucket/%zz', 'gs://bucket/x?storage_class=GLACIER', 'gs://bucket/x?hot_storage_class=DEEP_ARCHIVE',
    'gs://bucket/x?chunk_size=1000', 'gs://bucket/x?chunk_size=0', 'gs://bucket/x?list_page_size=0', 'gs://bucket/x?list_page_size=1001',
    'gs://bucket/x?resumable_threshold=0', 'gs://bucket/x?endpoint=ftp://host', 'gs://bucket/x?endpoint=http://host/path', 'gs://bucket/x?retention_mode=governance',
  ]
  for (const url of bad) t.throws(() => parseConfig(url), ConfigError, url)
  const err = (() => {
    try {
      parseConfig('gs://user:hunter2@bucket/x')
    } catch (e) {
      return e
    }
    return null
  })()
  t.ok(err instanceof ConfigError, 'credentials in the URL are refused')
  t.notMatch(String(err), 'hunter2', 'and the message does not repeat them')
})

t.test('the emulator answers as GCS does (raw HTTP)', async (t) => {
  const emulator = await startGcsEmulator(t)
  const api = `${emulator.endpoint}/storage/v1/b/${BUCKET}/o`
  const upload = (name: string, body: string): Promise<Response> =>
    fetch(`${emulator.endpoint}/upload/storage/v1/b/${BUCKET}/o?uploadType=media&name=${encodeURIComponent(name)}`, { method: 'POST', body })
  for (const name of ['a/1', 'a/2', 'b/1', 'c']) t.equal((await upload(name, 'abcd')).status, 200, `upload ${name}`)

  const page = async (query: string): Promise<{ items?: { name: string }[]; prefixes?: string[]; nextPageToken?: string }> => (await fetch(`${api}?${query}`)).json()
  const flat = await page('delimiter=/')
  t.same([flat.prefixes, flat.items?.map((i) => i.name)], [['a/', 'b/'], ['c']], 'delimiter: prefixes and the objects beside them')
  const seen: string[] = []
  let token = ''
  for (let i = 0; i < 5; i++) {
    const p = await page(`delimiter=/&maxResults=1${token ? `&pageToken=${token}` : ''}`)
    seen.push(...(p.prefixes ?? []), ...(p.items ?? []).map((x) => x.name))
    if (!p.nextPageToken) break
    token = p.nextPageToken
  }
  t.same(seen, ['a/', 'b/', 'c'], 'one entry per page, prefixes counted as entries')
  t.same(await page('prefix=a/&fields=items(name)'), { items: [{ name: 'a/1' }, { name: 'a/2' }] }, 'prefix and a partial response')

  const media = `${api}/c?alt=media`
  const ranged = await fetch(media, { headers: { range: 'bytes=1-2' } })
  t.same([ranged.status, ranged.headers.get('content-range'), await ranged.text()], [206, 'bytes 1-2/4', 'bc'], 'a range: 206 and Content-Range')
  t.match(ranged.headers.get('x-goog-hash'), /^crc32c=.+,md5=.+$/, 'x-goog-hash of the whole object')
  t.equal((await fetch(media, { headers: { range: 'bytes=4-' } })).status, 416, 'a range at the end: 416')

  t.equal((await fetch(`${api}/c`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: '{"temporaryHold":true}' })).status, 200, 'hold set')
  const overwrite = await upload('c', 'other')
  const body = (await overwrite.json()) as { error: { code: number; errors: { reason: string }[]; message: string } }
  t.equal(overwrite.status, 403, 'an overwrite of a held object: 403')
  t.equal(body.error.errors[0].reason, 'forbidden')
  t.equal(body.error.message, `Object '${BUCKET}/c' is under active Temporary hold and cannot be deleted, overwritten or archived until hold is removed.`)
  t.equal((await fetch(`${api}/c`, { method: 'DELETE' })).status, 403, 'a delete too')
  t.equal((await fetch(`${api}/c?ifGenerationMatch=0`, { method: 'DELETE' })).status, 412, 'a failed precondition answers 412 before the hold\'s 403')
  t.equal((await fetch(`${api}/a%2F1`, { method: 'DELETE' })).status, 204, 'an unheld delete: 204')
  t.equal((await fetch(`${api}/a%2F1`, { method: 'DELETE' })).status, 404, 'then 404')

  const boundary = 'xyz'
  const multipart = [`--${boundary}`, 'Content-Type: application/json', '', JSON.stringify({ name: 'bad', md5Hash: md5Base64(Buffer.from('not this')) }), `--${boundary}`, 'Content-Type: application/octet-stream', '', 'data', `--${boundary}--`].join('\r\n')
  const bad = await fetch(`${emulator.endpoint}/upload/storage/v1/b/${BUCKET}/o?uploadType=multipart`, { method: 'POST', headers: { 'content-type': `multipart/related; boundary=${boundary}` }, body: multipart })
  t.equal(bad.status, 400, 'a multipart upload whose MD5 does not match: 400')
  t.equal(emulator.object(BUCKET, 'bad'), undefined, 'and no object')
  t.equal((await fetch(`${emulator.endpoint}/storage/v1/b/nope/o`)).status, 404, 'a missing bucket: 404')
})

t.test('conformance suite (against the emulator), with paged listings', async (t) => {
  await runRemoteSuite(t, async (t) => {
    const emulator = await startGcsEmulator(t)
    // Three objects per listing page, so every listing of the suite pages.
    return openGcs(t, emulator, 'list_page_size=3')
  })
})

t.test('conformance suite at the bucket root, with resumable uploads from 256 KiB', async (t) => {
  await runRemoteSuite(t, async (t) => {
    const emulator = await startGcsEmulator(t)
    return openGcs(t, emulator, `resumable_threshold=${256 * KiB}&chunk_size=${256 * KiB}`, { prefix: '' })
  })
})

t.test('openRemote opens gs:// URLs with settings and env', async (t) => {
  const emulator = await startGcsEmulator(t)
  const remote = await openRemote(`gs://${BUCKET}/via-registry`, { settings: { endpoint: emulator.endpoint, storage_class: 'COLDLINE' }, env: {} })
  t.teardown(() => remote.close())
  t.ok(remote instanceof RetryingRemote, 'a GcsRemote in the wrapper stack (network kinds are wrapped)')
  t.equal(remote.properties.location, `gs://${BUCKET}/via-registry`)
  t.equal(remote.archive?.dataClass, 'COLDLINE', 'settings reach the kind')
  await remote.put('data/ab/x', Buffer.from('x'))
  t.same(emulator.objectNames(BUCKET), ['via-registry/data/ab/x'], 'names are stored under the prefix')
})

t.test('storage classes: data packs in the data class, everything else hot', async (t) => {
  // The bucket's own default class is COLDLINE: hot objects must still be STANDARD, so classes are set explicitly.
  const emulator = await startGcsEmulator(t, { buckets: [{ name: BUCKET, storageClass: 'COLDLINE' }] })
  const remote = await openGcs(t, emulator, `storage_class=ARCHIVE&resumable_threshold=${MiB}&chunk_size=${MiB}`)
  const archive = remote.archive
  t.match(archive, { provider: 'gcs', dataClass: 'ARCHIVE', hotClass: 'STANDARD', dataNeedsRestore: false })
  const small = seededBytes('small', 1000)
  const hot = ['config', 'keys/k1', 'index/i1', 'snapshots/s1', 'meta/ab/m1', 'audit/1-a', 'locks/l1']
  for (const name of [...hot, 'data/ab/p1']) await remote.put(name, small)
  const bigFile = join(t.testdir(), 'pack')
  writeFileSync(bigFile, seededBytes('pack', 3 * MiB + 5))
  await remote.putFile('data/cd/p2', bigFile)
  t.equal(ops(emulator, 'upload.start').length, 1, 'the 3 MiB pack went up as a resumable upload')

  for (const name of hot) t.equal(emulator.object(BUCKET, `repo/${name}`)?.storageClass, 'STANDARD', `${name}: STANDARD on the server`)
  for (const name of ['data/ab/p1', 'data/cd/p2']) t.equal(emulator.object(BUCKET, `repo/${name}`)?.storageClass, 'ARCHIVE', `${name}: ARCHIVE on the server`)

  const listed = await collect(remote, '')
  t.same(listed.map((i) => [i.name, i.storageClass]), [...hot, 'data/ab/p1', 'data/cd/p2'].sort().map((n) => [n, n.startsWith('data/') ? 'ARCHIVE' : 'STANDARD']), 'list reports each class')
  t.same(await remote.stat('data/cd/p2'), { name: 'data/cd/p2', size: 3 * MiB + 5, storageClass: 'ARCHIVE' }, 'stat reports the class')
  t.same(await archive?.state('data/ab/p1'), { storageClass: 'ARCHIVE', readable: true, restore: 'none' }, 'ARCHIVE objects are readable at once')
  t.same(await archive?.state('config'), { storageClass: 'STANDARD', readable: true, restore: 'none' })
  await rejectsWith(t, archive?.state('data/ab/missing') ?? Promise.resolve(), NotFoundError, 'state of a missing object')
  t.ok((await remote.get('data/ab/p1')).equals(small), 'get of an ARCHIVE object works without a restore')
  emulator.clearRequests()
  await archive?.requestRestore('data/ab/p1', { tier: 'Bulk', days: 1 })
  t.same(emulator.requests, [], 'requestRestore sends nothing: GCS needs no restore')

  // Listing the snapshots never touches a cold object.
  emulator.clearRequests()
  t.same((await collect(remote, 'snapshots/')).map((i) => i.name), ['snapshots/s1'])
  t.same(emulator.requests.map((r) => [r.operation, r.query.prefix, r.listed]), [['objects.list', 'repo/snapshots/', ['repo/snapshots/s1']]], 'one listing of repo/snapshots/, which returned only the snapshot')
})

t.test('listing pages with pageToken and asks only for name, size and class', async (t) => {
  const emulator = await startGcsEmulator(t)
  const remote = await openGcs(t, emulator, 'list_page_size=2')
  const names = ['data/a/1', 'data/a/2', 'data/b/3', 'data/c/4', 'data/c/5', 'index/x', 'datas/y']
  for (const n of names) await remote.put(n, Buffer.from(n))
  // Not valid object names: skipped by list (e.g. a folder placeholder made by the console).
  await fetch(`${emulator.endpoint}/upload/storage/v1/b/${BUCKET}/o?uploadType=media&name=${encodeURIComponent('repo/data/folder/')}`, { method: 'POST', body: '' })
  emulator.clearRequests()
  const got = await collect(remote, 'data/')
  t.same(got.map((i) => i.name), ['data/a/1', 'data/a/2', 'data/b/3', 'data/c/4', 'data/c/5'], 'every data/ object, and nothing else')
  t.same(got.map((i) => i.size), [8, 8, 8, 8, 8])
  const lists = ops(emulator, 'objects.list')
  t.equal(lists.length, 3, 'three pages of two (the folder placeholder is one of the six)')
  t.same(lists.map((r) => r.query.maxResults), ['2', '2', '2'])
  t.equal(lists[0].query.pageToken, undefined, 'the first page has no token')
  t.ok(lists[1].query.pageToken && lists[2].query.pageToken, 'later pages send the token of the page before')
  t.same(lists.map((r) => r.query.fields), Array(3).fill('items(name,size,storageClass),nextPageToken'), 'partial responses')
})

t.test('holds and object retention (enforced by the emulator as GCS does)', async (t) => {
  const emulator = await startGcsEmulator(t, { buckets: [{ name: BUCKET, objectRetention: true }, { name: 'plain-bucket' }, { name: 'policy-bucket', retentionPeriodSeconds: 3600 }] })
  const remote = await openGcs(t, emulator)
  const protection = remote.protection
  t.equal(protection.enforcedByRemote, true)
  t.match(protection.mechanism, /temporary hold.*object retention \(Unlocked mode\)/)
  const a = seededBytes('a', 500)
  const b = seededBytes('b', 600)
  await remote.put('snapshots/s1', a)
  await remote.put('data/ab/p1', b)
  await remote.put('data/ab/free', b)

  t.test('a legal hold is a temporary hold', async (t) => {
    await protection.protect(['snapshots/s1'], { retainUntil: null, legalHold: true })
    t.equal(emulator.object(BUCKET, 'repo/snapshots/s1')?.temporaryHold, true, 'temporaryHold set on the server')
    t.equal(await protection.isProtected('snapshots/s1'), true)
    t.equal(await protection.isProtected('data/ab/free'), false, 'an object without holds or retention')
    t.equal(await protection.isProtected('data/ab/missing'), false, 'a missing object')
    const err = await rejectsWith(t, remote.delete('snapshots/s1'), RemoteError, 'delete of a held object')
    t.equal((err as RemoteError).transient, false, 'not transient')
    t.match(String(err), /under active Temporary hold/, 'says why')
    t.ok(emulator.object(BUCKET, 'repo/snapshots/s1'), 'still there')
    const raw = await fetch(`${emulator.endpoint}/storage/v1/b/${BUCKET}/o/${encodeURIComponent('repo/snapshots/s1')}`, { method: 'DELETE' })
    t.equal(raw.status, 403, 'the server refuses the delete to anyone')
    const generation = emulator.object(BUCKET, 'repo/snapshots/s1')?.generation
    await remote.put('snapshots/s1', a)
    t.equal(emulator.object(BUCKET, 'repo/snapshots/s1')?.generation, generation, 'a put of the same bytes resolves and replaces nothing')
    await rejectsWith(t, remote.put('snapshots/s1', b), ExistsError, 'a put of other bytes')
    emulator.clearRequests()
    await protection.protect(['snapshots/s1'], { retainUntil: null, legalHold: true })
    t.same(ops(emulator, 'objects.patch'), [], 'protecting again changes nothing (idempotent)')
  })

  t.test('retention until a time, never shortened', async (t) => {
    const until = new Date(Date.now() + 3600_000)
    await protection.protect(['data/ab/p1'], { retainUntil: until, legalHold: false })
    t.same(emulator.object(BUCKET, 'repo/data/ab/p1')?.retention, { mode: 'Unlocked', retainUntilTime: until.toISOString() }, 'object retention set')
    t.equal(emulator.object(BUCKET, 'repo/data/ab/p1')?.temporaryHold, undefined, 'no hold without legalHold')
    t.equal(await protection.isProtected('data/ab/p1'), true)
    const err = await rejectsWith(t, remote.delete('data/ab/p1'), RemoteError, 'delete of a retained object')
    t.match(String(err), /retention/)
    t.equal((err as RemoteError).transient, false)
    emulator.clearRequests()
    await protection.protect(['data/ab/p1'], { retainUntil: new Date(until.getTime() - 60_000), legalHold: false })
    t.same(ops(emulator, 'objects.patch'), [], 'an earlier time changes nothing')
    const later = new Date(until.getTime() + 3600_000)
    await protection.protect(['data/ab/p1'], { retainUntil: later, legalHold: false })
    t.equal(emulator.object(BUCKET, 'repo/data/ab/p1')?.retention?.retainUntilTime, later.toISOString(), 'a later time extends it')
    // Past the time (on the emulator's clock) the object can go.
    emulator.now = () => new Date(later.getTime() + 1000)
    await remote.delete('data/ab/p1')
    t.equal(emulator.object(BUCKET, 'repo/data/ab/p1'), undefined, 'deleted once the retention has passed')
    emulator.now = () => new Date()
  })

  t.test('Locked mode', async (t) => {
    const locked = await openGcs(t, emulator, 'retention_mode=locked', { prefix: 'locked' })
    t.match(locked.protection.mechanism, /Locked mode/)
    await locked.put('data/ab/p', b)
    const until = new Date(Date.now() + 3600_000)
    await locked.protection.protect(['data/ab/p'], { retainUntil: until, legalHold: true })
    t.same(emulator.object(BUCKET, 'locked/data/ab/p')?.retention, { mode: 'Locked', retainUntilTime: until.toISOString() })
    t.equal(emulator.object(BUCKET, 'locked/data/ab/p')?.temporaryHold, true, 'and the hold')
    const raw = await fetch(`${emulator.endpoint}/storage/v1/b/${BUCKET}/o/${encodeURIComponent('locked/data/ab/p')}?overrideUnlockedRetention=true`, {
      method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ retention: null }),
    })
    t.equal(raw.status, 403, 'a Locked retention cannot be removed, even with the override')
    // An Unlocked remote extending a Locked object keeps it Locked.
    const later = new Date(until.getTime() + 60_000)
    await remote.protection.protect([], { retainUntil: later, legalHold: false })
    const unlockedView = await openGcs(t, emulator, '', { prefix: 'locked' })
    await unlockedView.protection.protect(['data/ab/p'], { retainUntil: later, legalHold: false })
    t.same(emulator.object(BUCKET, 'locked/data/ab/p')?.retention, { mode: 'Locked', retainUntilTime: later.toISOString() }, 'extended, still Locked')
  })

  t.test('a bucket without object retention', async (t) => {
    const plain = await openGcs(t, emulator, '', { bucket: 'plain-bucket' })
    await plain.put('data/ab/p', b)
    const err = await rejectsWith(t, plain.protection.protect(['data/ab/p'], { retainUntil: new Date(Date.now() + 60_000), legalHold: false }), ConfigError, 'retention')
    t.match(String(err), /Object retention must be enabled on bucket plain-bucket/, 'says what to change')
    await plain.protection.protect(['data/ab/p'], { retainUntil: null, legalHold: true })
    t.equal(emulator.object('plain-bucket', 'repo/data/ab/p')?.temporaryHold, true, 'holds need nothing on the bucket')
    await rejectsWith(t, plain.protection.protect(['data/ab/none'], { retainUntil: null, legalHold: true }), NotFoundError, 'protect of a missing object')
  })

  t.test('a bucket retention policy counts as protection', async (t) => {
    const policy = await openGcs(t, emulator, '', { bucket: 'policy-bucket' })
    await policy.put('data/ab/p', b)
    t.equal(await policy.protection.isProtected('data/ab/p'), true, 'retentionExpirationTime in the future')
    await rejectsWith(t, policy.delete('data/ab/p'), RemoteError, 'delete under the policy')
  })
})

t.test('putFile: large resumable uploads, byte-identical', async (t) => {
  const emulator = await startGcsEmulator(t)
  const remote = await openGcs(t, emulator)
  const dir = t.testdir()

  t.test('24 MiB with the default 8 MiB chunks', async (t) => {
    const size = 24 * MiB + 123
    const data = seededBytes('large', size)
    const file = join(dir, 'large')
    writeFileSync(file, data)
    emulator.clearRequests()
    await remote.putFile('data/ab/large', file)
    const starts = ops(emulator, 'upload.start')
    t.equal(starts.length, 1, 'one resumable session')
    t.equal(starts[0].query.uploadType, 'resumable')
    t.equal(starts[0].query.ifGenerationMatch, '0', 'created only if the name is free')
    t.equal(starts[0].headers['x-upload-content-length'], String(size), 'X-Upload-Content-Length announces the size')
    t.match(starts[0].headers['content-type'], /^application\/json/)
    const chunks = ops(emulator, 'upload.chunk')
    const want = Array.from({ length: 4 }, (_, i) => `bytes ${i * 8 * MiB}-${Math.min(size, (i + 1) * 8 * MiB) - 1}/${size}`)
    t.same(chunks.map((r) => r.contentRange), want, 'three chunks of 8 MiB and a short last one')
    t.same(chunks.map((r) => r.status), [308, 308, 308, 200], '308 between chunks, 200 at the end')
    t.same(ops(emulator, 'objects.insert'), [], 'no single-request upload')
    const stored = emulator.object(BUCKET, 'repo/data/ab/large')
    t.equal(stored?.md5Hash, md5Base64(data), 'the stored bytes have the file\'s MD5')
    const got = await remote.get('data/ab/large')
    t.ok(got.equals(data), 'get returns the same 24 MiB')
    const across = await remote.get('data/ab/large', { offset: 8 * MiB - 10, length: 20 })
    t.ok(across.equals(data.subarray(8 * MiB - 10, 8 * MiB + 10)), 'a range across a chunk boundary')
    t.same(await remote.stat('data/ab/large'), { name: 'data/ab/large', size, storageClass: 'STANDARD' })

    emulator.clearRequests()
    await remote.putFile('data/ab/large', file)
    t.same(ops(emulator, 'upload.chunk'), [], 'a second putFile of the same file sends no data (412 at the session start, same MD5)')
    t.equal(ops(emulator, 'upload.start')[0]?.status, 412)
  })

  t.test('through StagedObjectWriter (what the wrappers give network kinds)', async (t) => {
    const pieces = [seededBytes('p1', 5 * MiB), seededBytes('p2', 3), seededBytes('p3', 4 * MiB + 7)]
    const w = new StagedObjectWriter(remote, join(dir, 'staging'))
    await Promise.all(pieces.map((p) => w.write(p)))
    emulator.clearRequests()
    await w.commit('data/cd/staged')
    t.equal(ops(emulator, 'upload.start').length, 1, 'a 9 MiB pack is a resumable upload')
    t.ok((await remote.get('data/cd/staged')).equals(Buffer.concat(pieces)), 'byte-identical')
    t.same(readdirSync(join(dir, 'staging')), [], 'the staging file is gone')
  })

  t.test('below the threshold: one multipart request', async (t) => {
    const small = join(dir, 'small')
    const data = seededBytes('small', 3 * MiB)
    writeFileSync(small, data)
    const empty = join(dir, 'empty')
    writeFileSync(empty, '')
    emulator.clearRequests()
    await remote.putFile('data/ef/small', small)
    await remote.putFile('meta/ef/empty', empty)
    t.same(emulator.requests.map((r) => [r.operation, r.query.uploadType, r.status]), [['objects.insert', 'multipart', 200], ['objects.insert', 'multipart', 200]])
    t.ok((await remote.get('data/ef/small')).equals(data))
    t.equal((await remote.stat('meta/ef/empty')).size, 0)
  })

  t.test('a missing file', async (t) => {
    const err = await rejectsWith(t, remote.putFile('data/ab/nofile', join(dir, 'nope')), RemoteError, 'putFile of a missing file')
    t.equal((err as RemoteError).transient, false)
  })
})

t.test('interrupted resumable uploads are resumed, or redone, without duplicating data', async (t) => {
  const emulator = await startGcsEmulator(t)
  const remote = await openGcs(t, emulator, `chunk_size=${MiB}&resumable_threshold=${MiB}`)
  const dir = t.testdir()
  const size = 5 * MiB + 5
  const data = seededBytes('interrupted', size)
  const file = join(dir, 'pack')
  writeFileSync(file, data)

  t.test('cut mid-chunk, then resumed from what GCS kept', async (t) => {
    // The connection drops 1000 bytes into the third chunk's second half: GCS keeps 2.5 MiB (whole 256 KiB units).
    emulator.addFault({ kind: 'interrupt-upload', afterBytes: 2.5 * MiB + 1000 })
    const err = await rejectsWith(t, remote.putFile('data/ab/resumed', file), RemoteError, 'the interrupted putFile')
    t.equal((err as RemoteError).transient, true, 'transient: worth retrying')
    t.notMatch(String(err), /upload_id/, 'the message does not give away the session URI')
    t.same(emulator.openUploads().map((u) => u.persisted), [2.5 * MiB], 'the session holds 2.5 MiB')
    t.equal(emulator.object(BUCKET, 'repo/data/ab/resumed'), undefined, 'no object yet')
    t.same(await collect(remote, 'data/'), [], 'and nothing listed')

    emulator.clearRequests()
    await remote.putFile('data/ab/resumed', file)
    t.same(ops(emulator, 'upload.start'), [], 'no new session: the same one is resumed')
    t.ok(ops(emulator, 'upload.status').length >= 1, 'the session was asked what it has')
    const chunks = ops(emulator, 'upload.chunk')
    t.equal(chunks[0]?.contentRange, `bytes ${2.5 * MiB}-${3.5 * MiB - 1}/${size}`, 'the first chunk sent starts where GCS stopped')
    t.equal(chunks.reduce((n, r) => n + r.bodyBytes, 0), size - 2.5 * MiB, 'only the missing bytes were sent')
    t.ok((await remote.get('data/ab/resumed')).equals(data), 'byte-identical')
    t.same(emulator.openUploads(), [], 'the session is complete')
  })

  t.test('the session expired: redone in a new one', async (t) => {
    emulator.addFault({ kind: 'interrupt-upload', afterBytes: 1.2 * MiB })
    await rejectsWith(t, remote.putFile('data/ab/redone', file), RemoteError, 'the interrupted putFile')
    emulator.expireUploads()
    emulator.clearRequests()
    await remote.putFile('data/ab/redone', file)
    t.equal(ops(emulator, 'upload.start').length, 1, 'a new session')
    t.equal(ops(emulator, 'upload.chunk').reduce((n, r) => n + r.bodyBytes, 0), size, 'the whole file once')
    t.ok((await remote.get('data/ab/redone')).equals(data), 'byte-identical')
    t.same(emulator.objectNames(BUCKET).filter((n) => n.includes('redone')), ['repo/data/ab/redone'], 'one object')
  })

  t.test('the last chunk landed but its answer was lost', async (t) => {
    const one = join(dir, 'one-chunk')
    const oneData = seededBytes('one', MiB + 77)
    writeFileSync(one, oneData)
    const twoChunks = await openGcs(t, emulator, `chunk_size=${2 * MiB}&resumable_threshold=${MiB}`)
    emulator.addFault({ kind: 'reset', operation: 'upload.chunk', afterProcessing: true })
    const err = await rejectsWith(t, twoChunks.putFile('data/ab/lost', one), RemoteError, 'putFile whose answer was lost')
    t.equal((err as RemoteError).transient, true)
    const generation = emulator.object(BUCKET, 'repo/data/ab/lost')?.generation
    t.ok(generation, 'the object landed')
    emulator.clearRequests()
    await twoChunks.putFile('data/ab/lost', one)
    t.same(emulator.requests.map((r) => [r.operation, r.status]), [['upload.status', 200]], 'one status query found the upload complete; nothing sent again')
    t.equal(emulator.object(BUCKET, 'repo/data/ab/lost')?.generation, generation, 'not written twice')
    t.ok((await twoChunks.get('data/ab/lost')).equals(oneData))
  })

  t.test('a 503 on a chunk keeps the session for the next attempt', async (t) => {
    emulator.addFault({ kind: 'status', status: 503, operation: 'upload.chunk' })
    const err = await rejectsWith(t, remote.putFile('data/ab/after503', file), RemoteError, 'putFile with a 503')
    t.equal((err as RemoteError).transient, true)
    emulator.clearRequests()
    await remote.putFile('data/ab/after503', file)
    t.same(ops(emulator, 'upload.start'), [], 'resumed, not restarted')
    t.ok((await remote.get('data/ab/after503')).equals(data))
  })
})

t.test('error mapping', async (t) => {
  const emulator = await startGcsEmulator(t)
  const remote = await openGcs(t, emulator, `chunk_size=${256 * KiB}&resumable_threshold=${256 * KiB}`)
  await remote.put('data/ab/x', Buffer.from('hello'))
  const bigFile = join(t.testdir(), 'big')
  writeFileSync(bigFile, seededBytes('big', 600 * KiB))

  type Call = [string, () => Promise<unknown>]
  const calls: Record<string, Call> = {
    get: ['objects.media', () => remote.get('data/ab/x')],
    ranged: ['objects.media', () => remote.get('data/ab/x', { offset: 1, length: 2 })],
    stat: ['objects.get', () => remote.stat('data/ab/x')],
    list: ['objects.list', () => collect(remote, 'data/')],
    delete: ['objects.delete', () => remote.delete('data/ab/x')],
    put: ['objects.insert', () => remote.put('data/ab/y', Buffer.from('y'))],
    putFile: ['upload.start', () => remote.putFile('data/ab/big', bigFile)],
    chunk: ['upload.chunk', () => remote.putFile('data/ab/big2', bigFile)],
  }
  const cases: { fault: { kind: 'status'; status: number } | { kind: 'reset' }; call: keyof typeof calls; transient: boolean; message?: RegExp }[] = [
    { fault: { kind: 'status', status: 503 }, call: 'get', transient: true, message: /HTTP 503/ },
    { fault: { kind: 'status', status: 500 }, call: 'ranged', transient: true },
    { fault: { kind: 'status', status: 429 }, call: 'put', transient: true, message: /HTTP 429.*rate/ },
    { fault: { kind: 'status', status: 502 }, call: 'stat', transient: true },
    { fault: { kind: 'status', status: 503 }, call: 'list', transient: true },
    { fault: { kind: 'status', status: 504 }, call: 'putFile', transient: true },
    { fault: { kind: 'status', status: 408 }, call: 'delete', transient: true },
    { fault: { kind: 'reset' }, call: 'get', transient: true, message: /ECONNRESET|socket/ },
    { fault: { kind: 'reset' }, call: 'stat', transient: true },
    { fault: { kind: 'reset' }, call: 'putFile', transient: true },
    { fault: { kind: 'reset' }, call: 'chunk', transient: true },
    { fault: { kind: 'status', status: 401 }, call: 'get', transient: false, message: /401.*GOOGLE_APPLICATION_CREDENTIALS/ },
    { fault: { kind: 'status', status: 401 }, call: 'list', transient: false, message: /GOOGLE_APPLICATION_CREDENTIALS/ },
    { fault: { kind: 'status', status: 403 }, call: 'put', transient: false, message: /403.*storage\.objects\.create.*roles\/storage\.objectUser/ },
    { fault: { kind: 'status', status: 403 }, call: 'delete', transient: false, message: /roles\/storage/ },
    { fault: { kind: 'status', status: 400 }, call: 'stat', transient: false },
  ]
  for (const c of cases) {
    const [operation, call] = calls[c.call]
    const what = `${c.fault.kind === 'status' ? c.fault.status : 'reset'} on ${c.call}`
    emulator.addFault({ ...c.fault, operation } as Parameters<GcsEmulator['addFault']>[0])
    const err = await rejection(t, call(), what)
    emulator.clearFaults()
    t.ok(err instanceof RemoteError && err.transient === c.transient, `${what}: RemoteError { transient: ${c.transient} }`, { found: err })
    if (c.message) t.match(String(err), c.message, `${what}: message`)
  }

  t.test('a damaged download', async (t) => {
    await remote.put('data/ab/whole', seededBytes('whole', 5000))
    emulator.addFault({ kind: 'corrupt' })
    const err = await rejectsWith(t, remote.get('data/ab/whole'), RemoteError, 'a whole read with a flipped byte fails the client\'s CRC32C check')
    t.equal((err as RemoteError).transient, true, 'transient: a new read may be whole')
    t.ok((await remote.get('data/ab/whole')).equals(seededBytes('whole', 5000)), 'the next read is fine')
  })

  t.test('missing objects and buckets', async (t) => {
    await rejectsWith(t, remote.get('data/ab/none'), NotFoundError, 'get')
    await rejectsWith(t, remote.get('data/ab/none', { offset: 0, length: 0 }), NotFoundError, 'zero-length get')
    await remote.delete('data/ab/none')
    t.pass('delete of a missing object resolves')
    await rejectsWith(t, openGcs(t, emulator, '', { bucket: 'no-such-bucket' }), NotFoundError, 'open of a missing bucket')
    // A bucket deleted after open: a 404 on a write or a listing is the bucket's, not a missing object's.
    emulator.createBucket({ name: 'short-lived' })
    const orphan = await openGcs(t, emulator, '', { bucket: 'short-lived' })
    emulator.dropBucket('short-lived')
    for (const [what, call] of [['put', () => orphan.put('data/ab/x', Buffer.from('x'))], ['list', () => collect(orphan, '')]] as const) {
      const e = await rejectsWith(t, call(), RemoteError, `${what} in a deleted bucket`)
      t.match(String(e), /bucket short-lived not found/, `${what}: says the bucket is missing`)
    }
    await rejectsWith(t, orphan.get('data/ab/x'), NotFoundError, 'a get there is still a missing object')
    const err = await rejectsWith(t, GcsRemote.open(parseConfig(`gs://new-bucket/x?endpoint=${emulator.endpoint}`), { create: true, env: {} }), ConfigError, 'init without project_id')
    t.match(String(err), /project_id/)
    t.notOk(emulator.bucketInfo('new-bucket'), 'no bucket made')
    const created = await GcsRemote.open(parseConfig(`gs://new-bucket/x?endpoint=${emulator.endpoint}&project_id=my-project`), { create: true, env: {} })
    t.teardown(() => created.close())
    t.same(emulator.bucketInfo('new-bucket'), { storageClass: 'STANDARD', objectRetention: true, retentionPeriodSeconds: undefined }, 'init creates the bucket, with object retention')
    t.equal(ops(emulator, 'buckets.insert').at(-1)?.query.project, 'my-project')
  })

  t.test('exclusive puts and names that exist', async (t) => {
    await remote.put('config', Buffer.from('one'), { exclusive: true })
    await rejectsWith(t, remote.put('config', Buffer.from('one'), { exclusive: true }), ExistsError, 'exclusive put of an existing name (412)')
    await rejectsWith(t, remote.put('config', Buffer.from('two')), ExistsError, 'non-exclusive put of other bytes')
    await remote.put('config', Buffer.from('one'))
    t.equal((await remote.get('config')).toString(), 'one', 'never replaced')
    await rejectsWith(t, remote.putFile('config', bigFile, { exclusive: true }), ExistsError, 'exclusive putFile (resumable)')
  })

  t.test('credentials and an unreachable service', async (t) => {
    const err = await rejectsWith(t, openGcs(t, emulator, '', { ctx: { env: { GOOGLE_APPLICATION_CREDENTIALS: join(t.testdir(), 'missing-key.json') } } }), ConfigError, 'an unreadable key file')
    t.match(String(err), /GOOGLE_APPLICATION_CREDENTIALS names .*missing-key\.json/)
    const closed = await GcsEmulator.start()
    const endpoint = closed.endpoint
    await closed.close()
    const down = await rejectsWith(t, GcsRemote.open(parseConfig(`gs://${BUCKET}/x?endpoint=${endpoint}`), { create: false, env: {} }), RemoteError, 'open with nothing listening')
    t.equal((down as RemoteError).transient, true, 'connection refused is transient')
    t.match(String(down), /ECONNREFUSED/)
  })
})

// -----------------------------------------------------------------------------------------------------
// The command line against the emulator.

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function runCli(cli: string, root: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }))
  })
}

function filesOf(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name)
      if (statSync(p).isDirectory()) walk(p)
      else out.set(relative(root, p), readFileSync(p))
    }
  }
  walk(root)
  return out
}

t.test('CLI round trip: init, snapshot, restore, verify --read-data on gs://', async (t) => {
  const { CLI, ROOT, ensureBuilt } = await import('../../../cli/testing/build.js')
  ensureBuilt(t)
  const emulator = await startGcsEmulator(t)
  const base = t.testdir()
  const src = join(base, 'src')
  writeTree(src, {
    'big.bin': seededBytes('cli-big', 6 * MiB + 3),
    'notes/a.txt': 'a\n',
    'notes/b.txt': seededBytes('cli-b', 70_000),
    empty: '',
  })
  const repo = `gs://${BUCKET}/cli?endpoint=${emulator.endpoint}&storage_class=COLDLINE`
  // No GOOGLE_APPLICATION_CREDENTIALS: against a custom endpoint the client authenticates nothing.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(base, 'home'), LANG: 'C.UTF-8', COLDSTORE_PASSWORD: 'correct horse battery staple' }
  const cs = (args: readonly string[]): Promise<Run> => runCli(CLI, ROOT, [...args, '--repo', repo, '--cache-dir', join(base, 'cache')], env)
  const exits = (r: Run, what: string): void => {
    t.equal(r.code, 0, `${what}: exit 0`, r.code === 0 ? {} : { stdout: r.stdout.slice(0, 2000), stderr: r.stderr.slice(0, 2000) })
  }

  const init = await cs(['init', '--json'])
  exits(init, 'init')
  t.match(JSON.parse(init.stdout || '{}'), { location: `gs://${BUCKET}/cli` }, 'init names the location without the query')
  t.ok(emulator.object(BUCKET, 'cli/config'), 'config stored in the bucket')

  const snap = await cs(['snapshot', src, '--json'])
  exits(snap, 'snapshot')
  const id = String(JSON.parse(snap.stdout || '{}').id ?? '')
  t.match(id, /^[0-9a-f]{64}$/, 'a snapshot id')
  const names = emulator.objectNames(BUCKET)
  const data = names.filter((n) => n.startsWith('cli/data/'))
  t.ok(data.length >= 1, `${data.length} data packs`)
  for (const n of names) {
    t.equal(emulator.object(BUCKET, n)?.storageClass, n.startsWith('cli/data/') ? 'COLDLINE' : 'STANDARD', `${n}: class`)
  }

  emulator.clearRequests()
  const list = await cs(['snapshots', '--json'])
  exits(list, 'snapshots')
  t.same(JSON.parse(list.stdout || '[]').map((s: { id: string }) => s.id), [id])
  const touched = emulator.requests.filter((r) => (r.object ?? '').startsWith('cli/data/') || (r.listed ?? []).some((n) => n.startsWith('cli/data/')))
  t.same(touched, [], 'listing snapshots touches no data pack')

  const target = join(base, 'restored')
  const restore = await cs(['restore', 'latest', '--target', target, '--json'])
  exits(restore, 'restore')
  const want = filesOf(src)
  const got = filesOf(join(target, 'src'))
  t.same([...got.keys()].sort(), [...want.keys()].sort(), 'the same files')
  t.ok([...want].every(([rel, bytes]) => got.get(rel)?.equals(bytes)), 'byte-identical')

  const verify = await cs(['verify', '--read-data', '--json'])
  exits(verify, 'verify --read-data')
  const doc = JSON.parse(verify.stdout || '{}')
  t.equal(doc.ok, true, 'verify --read-data: ok', { findings: doc.findings })
  t.equal(doc.stats?.packs_read, doc.stats?.packs, 'every pack read')
  t.ok(emulator.requests.some((r) => r.operation === 'objects.media' && (r.object ?? '').startsWith('cli/data/')), 'data packs were read from the bucket')
})
