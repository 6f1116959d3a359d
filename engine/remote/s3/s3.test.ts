/**
 * The S3 remote (s3:// and b2://) against real servers on 127.0.0.1 that this file starts and shares:
 * OpenStack Swift with s3api (the most faithful here) and s3rver (light, with two store fixes, see
 * testing/s3rver.ts). Storage classes, Glacier restores, Object Lock and conditional writes are honoured by
 * neither: those tests go through the test gateway (testing/gateway.ts) in front of s3rver, and every
 * behaviour they check of those four comes from the gateway, not from a real provider.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { basename, join, relative } from 'node:path'
import t, { type Test } from 'tap'
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { CLI, ROOT, ensureBuilt } from '../../../cli/testing/build.js'
import { ArchivedError, ConfigError, ExistsError, NotFoundError, RemoteError, UsageError } from '../../errors.js'
import { runRemoteSuite } from '../../testing/remote-suite.js'
import { seededBytes, seededText, writeTree } from '../../testing/test-repo.js'
import { openRemote } from '../registry.js'
import type { Remote } from '../remote.js'
import { S3Remote, parseConfig, parseRestore, resolveCredentials } from './index.js'
import { startGateway, type S3Gateway } from './testing/gateway.js'
import { haveServer, newBucketName, type S3TestServer } from './testing/s3-server.js'
import { s3rverMissing, startS3rver } from './testing/s3rver.js'
import { startSwiftS3, swiftMissing } from './testing/swift.js'

const MiB = 1024 * 1024
// The SDK's notice that its 2027 releases need Node 22 (read when the first client is made, after these imports).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

/** One server per kind for the whole file, started on first use and stopped when the file ends. */
function shared<T>(start: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined
  return () => (p ??= start())
}
const swift = shared(() => startSwiftS3(t))
const s3rver = shared(() => startS3rver(t))
/** The gateway with conditional writes (like AWS) in front of the shared s3rver. */
const gateway = shared(async () => startGateway(t, await s3rver()))

async function openOn(server: S3TestServer, url: string, settings: Record<string, string> = {}, extraEnv: Record<string, string> = {}): Promise<S3Remote> {
  return S3Remote.open(parseConfig(url, settings), { create: false, env: { ...server.env(), ...extraEnv } })
}

/** A remote on a new bucket of `server`, closed when `t` ends. */
async function fresh(t: Test, server: S3TestServer, settings: Record<string, string> = {}, prefix = 'repo'): Promise<{ remote: S3Remote; bucket: string }> {
  const bucket = await server.createBucket()
  const remote = await openOn(server, server.url(bucket, prefix), settings)
  t.teardown(() => remote.close())
  return { remote, bucket }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => undefined, (err: unknown) => err)
}

async function listAll(remote: Remote, prefix = ''): Promise<{ name: string; size: number; storageClass?: string }[]> {
  const out = []
  for await (const o of remote.list(prefix)) out.push(o)
  return out.sort((a, b) => (a.name < b.name ? -1 : 1))
}

// ---------------------------------------------------------------------------
// Configuration (no server).

t.test('parseConfig: URL forms and settings', async (t) => {
  const cases: { url: string; settings?: Record<string, string>; want: Record<string, unknown> }[] = [
    { url: 's3://bucket', want: { scheme: 's3', bucket: 'bucket', prefix: '', endpoint: undefined, provider: 'aws-s3', pathStyle: false, dataClass: 'STANDARD', hotClass: 'STANDARD', objectLockMode: 'COMPLIANCE', maxConnections: 16, partSizeBytes: 8 * MiB, conditionalWrites: 'auto' } },
    { url: 's3://bucket/', want: { prefix: '' } },
    { url: 's3://my.bucket/a/b/', want: { bucket: 'my.bucket', prefix: 'a/b/' } },
    { url: 'S3://bucket/p%2Dq', want: { scheme: 's3', prefix: 'p-q/' } },
    {
      url: 's3://bucket/prefix?endpoint=http://127.0.0.1:9000&path_style=true&region=eu-west-1',
      want: { prefix: 'prefix/', endpoint: 'http://127.0.0.1:9000', pathStyle: true, region: 'eu-west-1', provider: 's3-compatible' },
    },
    { url: 's3://bkt?endpoint=http://localhost:9000', want: { pathStyle: true, provider: 's3-compatible' } },
    { url: 's3://bkt?endpoint=https://s3.eu-west-1.amazonaws.com', want: { pathStyle: false, provider: 'aws-s3' } },
    { url: 's3://bkt?endpoint=https://minio.example.org', want: { pathStyle: false, provider: 's3-compatible' } },
    { url: 's3://bkt', settings: { storage_class: 'deep_archive', region: 'eu-central-1' }, want: { dataClass: 'DEEP_ARCHIVE', hotClass: 'STANDARD', region: 'eu-central-1' } },
    { url: 's3://bkt?storage_class=GLACIER_IR', settings: { storage_class: 'DEEP_ARCHIVE' }, want: { dataClass: 'GLACIER_IR' } },
    { url: 's3://bkt?hot_storage_class=STANDARD_IA&object_lock_mode=governance', want: { hotClass: 'STANDARD_IA', objectLockMode: 'GOVERNANCE' } },
    { url: 's3://bkt?part_size=16MiB&max_connections=4&conditional_writes=false&profile=work', want: { partSizeBytes: 16 * MiB, maxConnections: 4, conditionalWrites: 'off', profile: 'work' } },
    { url: 's3://bkt?conditional_writes=true&part_size=5242880', want: { conditionalWrites: 'on', partSizeBytes: 5 * MiB } },
    { url: 'b2://bucket/x?region=us-west-004', want: { scheme: 'b2', provider: 'b2', endpoint: 'https://s3.us-west-004.backblazeb2.com', region: 'us-west-004', pathStyle: false } },
    { url: 'b2://bucket?endpoint=https://s3.eu-central-003.backblazeb2.com', want: { region: 'eu-central-003', provider: 'b2' } },
    { url: 'b2://bucket?endpoint=http://127.0.0.1:1234&region=us-west-004', want: { provider: 'b2', pathStyle: true, endpoint: 'http://127.0.0.1:1234' } },
  ]
  for (const c of cases) t.match(parseConfig(c.url, c.settings), c.want, c.url)

  const bad: { url: string; settings?: Record<string, string> }[] = [
    { url: 's3://' },
    { url: 's3://key:secret@bucket/x' },
    { url: 's3://bkt/a//b' },
    { url: 's3://bkt/../x' },
    { url: 's3://bkt#frag' },
    { url: 's3://bkt?endpoint=ftp://host' },
    { url: 's3://bkt?endpoint=not a url' },
    { url: 's3://bkt?endpoint=http://user:pw@host' },
    { url: 's3://bkt?storage_class=COLD' },
    { url: 's3://bkt?hot_storage_class=DEEP_ARCHIVE' },
    { url: 's3://bkt?object_lock_mode=STRICT' },
    { url: 's3://bkt?part_size=1MiB' },
    { url: 's3://bkt?part_size=lots' },
    { url: 's3://bkt?max_connections=0' },
    { url: 's3://bkt?path_style=maybe' },
    { url: 'b2://bucket' },
    { url: 'b2://bucket?endpoint=https://b2.example.org' },
    { url: 'b2://bucket?region=us-west-004&storage_class=GLACIER' },
    { url: 'gs://bucket' },
  ]
  for (const c of bad) {
    const err = await rejection(Promise.resolve().then(() => parseConfig(c.url, c.settings)))
    t.ok(err instanceof ConfigError, `rejected: ${c.url}`, { found: err })
    t.notMatch(String(err), 'secret', `${c.url}: no secret in the message`)
  }
})

t.test('resolveCredentials: environment, B2 variables, shared AWS files', async (t) => {
  const home = t.testdir({
    '.aws': {
      credentials: '[default]\naws_access_key_id = DEFKEY\naws_secret_access_key = defsecret\n\n[work]\naws_access_key_id=WORKKEY\naws_secret_access_key=worksecret\naws_session_token=worktoken\n',
      config: '[default]\nregion = eu-north-1\n\n[profile work]\nregion = ap-south-1\n\n[profile role]\nrole_arn = arn:aws:iam::123456789012:role/backup\nsource_profile = default\n\n[profile inconf]\naws_access_key_id = CONFKEY\naws_secret_access_key = confsecret\n',
    },
    other: { creds: '[default]\naws_access_key_id = OTHERKEY\naws_secret_access_key = othersecret\n' },
  })
  const s3 = parseConfig('s3://bkt')
  const local = parseConfig('s3://bkt?endpoint=http://127.0.0.1:9')
  const b2 = parseConfig('b2://bkt?region=us-west-004')
  const cases: { name: string; config: typeof s3; env: Record<string, string>; want: Record<string, unknown> }[] = [
    { name: 'AWS variables', config: s3, env: { AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK', HOME: home }, want: { kind: 'static', credentials: { accessKeyId: 'AK', secretAccessKey: 'SK' }, from: 'AWS_ACCESS_KEY_ID' } },
    { name: 'with a session token', config: s3, env: { AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK', AWS_SESSION_TOKEN: 'TOK' }, want: { credentials: { sessionToken: 'TOK' } } },
    { name: 'default profile from ~/.aws', config: s3, env: { HOME: home }, want: { kind: 'static', credentials: { accessKeyId: 'DEFKEY', secretAccessKey: 'defsecret' }, region: 'eu-north-1' } },
    { name: 'AWS_PROFILE', config: s3, env: { HOME: home, AWS_PROFILE: 'work' }, want: { credentials: { accessKeyId: 'WORKKEY', sessionToken: 'worktoken' }, region: 'ap-south-1' } },
    { name: 'profile setting wins over AWS_PROFILE', config: parseConfig('s3://bkt?profile=work'), env: { HOME: home, AWS_PROFILE: 'default' }, want: { credentials: { accessKeyId: 'WORKKEY' } } },
    { name: 'keys in the config file', config: s3, env: { HOME: home, AWS_PROFILE: 'inconf' }, want: { credentials: { accessKeyId: 'CONFKEY' } } },
    { name: 'AWS_SHARED_CREDENTIALS_FILE', config: s3, env: { HOME: home, AWS_SHARED_CREDENTIALS_FILE: join(home, 'other', 'creds') }, want: { credentials: { accessKeyId: 'OTHERKEY' } } },
    { name: 'a role profile is left to the SDK', config: s3, env: { HOME: home, AWS_PROFILE: 'role' }, want: { kind: 'sdk-profile', profile: 'role' } },
    { name: 'nothing on AWS: the SDK chain (instance roles)', config: s3, env: {}, want: { kind: 'sdk-chain' } },
    { name: 'B2 application key', config: b2, env: { B2_APPLICATION_KEY_ID: 'KID', B2_APPLICATION_KEY: 'KEY', AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK' }, want: { credentials: { accessKeyId: 'KID', secretAccessKey: 'KEY' } } },
    { name: "restic's B2 variables", config: b2, env: { B2_ACCOUNT_ID: 'AID', B2_ACCOUNT_KEY: 'AKEY' }, want: { credentials: { accessKeyId: 'AID', secretAccessKey: 'AKEY' } } },
    { name: 'b2 falls back to AWS variables', config: b2, env: { AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK' }, want: { credentials: { accessKeyId: 'AK' } } },
    { name: 'B2 variables are not used for s3://', config: local, env: { B2_APPLICATION_KEY_ID: 'KID', B2_APPLICATION_KEY: 'KEY', AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK' }, want: { credentials: { accessKeyId: 'AK' } } },
  ]
  for (const c of cases) t.match(resolveCredentials(c.config, c.env), c.want, c.name)

  const bad: { name: string; config: typeof s3; env: Record<string, string> }[] = [
    { name: 'half an AWS pair', config: s3, env: { AWS_ACCESS_KEY_ID: 'AK' } },
    { name: 'half a B2 pair', config: b2, env: { B2_APPLICATION_KEY: 'secretvalue' } },
    { name: 'a named profile that does not exist', config: s3, env: { HOME: home, AWS_PROFILE: 'nope' } },
    { name: 'no credentials for a compatible endpoint', config: local, env: {} },
    { name: 'no credentials for b2', config: b2, env: { HOME: home + '/none' } },
  ]
  for (const c of bad) {
    const err = await rejection(Promise.resolve().then(() => resolveCredentials(c.config, c.env)))
    t.ok(err instanceof ConfigError, c.name, { found: err })
    t.notMatch(String(err), 'secretvalue', `${c.name}: no secret in the message`)
  }
})

t.test('parseRestore reads x-amz-restore', async (t) => {
  t.same(parseRestore(undefined), { state: 'none' })
  t.same(parseRestore('ongoing-request="true"'), { state: 'in-progress' })
  t.same(parseRestore('ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"'), { state: 'restored', until: new Date('2012-12-21T00:00:00Z') })
})

// ---------------------------------------------------------------------------
// Conformance against the real servers.

t.test('conformance: swift s3api', async (t) => {
  if (!haveServer(t, swiftMissing())) return
  const server = await swift()
  await runRemoteSuite(t, async () => openOn(server, server.url(await server.createBucket(), 'repo')))
})

t.test('conformance: s3rver (bucket root, no prefix)', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  const server = await s3rver()
  await runRemoteSuite(t, async () => openOn(server, server.url(await server.createBucket())))
})

t.test('conformance: through the gateway (conditional writes honoured, as on AWS)', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  const server = await gateway()
  await runRemoteSuite(t, async () => openOn(server, server.url(await server.createBucket(), 'a/b')))
})

// ---------------------------------------------------------------------------
// Exclusive puts.

t.test('exclusive puts: how each server is handled', async (t) => {
  if (!haveServer(t, swiftMissing()) || !haveServer(t, s3rverMissing())) return
  // Swift's s3api answers a conditional PUT with 501; s3rver ignores If-None-Match; the gateway honours it.
  const cases: { name: string; server: () => Promise<S3TestServer>; settings?: Record<string, string>; want: string }[] = [
    { name: 'swift s3api (501 NotImplemented)', server: swift, want: 'check-then-put' },
    { name: 's3rver (ignores the header)', server: s3rver, want: 'check-then-put' },
    { name: 'gateway (412 PreconditionFailed)', server: gateway, want: 'conditional' },
    { name: 'conditional_writes=off', server: gateway, settings: { conditional_writes: 'off' }, want: 'check-then-put' },
  ]
  for (const c of cases) {
    const { remote } = await fresh(t, await c.server(), c.settings)
    t.equal(await remote.exclusivePutMode(), c.want, c.name)
    await remote.put('config', Buffer.from('one'), { exclusive: true })
    t.ok((await rejection(remote.put('config', Buffer.from('two'), { exclusive: true }))) instanceof ExistsError, `${c.name}: a second exclusive put fails`)
    t.equal((await remote.get('config')).toString(), 'one', `${c.name}: the first stays`)
    t.same((await listAll(remote)).map((o) => o.name), ['config'], `${c.name}: the probe key is gone and never listed`)
  }
})

t.test('exclusive puts through the gateway: one winner among concurrent writers', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  const gw = await gateway()
  const { remote } = await fresh(t, gw)
  const writers = Array.from({ length: 8 }, (_, i) => Buffer.from(`writer ${i}`))
  const results = await Promise.all(writers.map((w) => remote.put('audit/00000001', w, { exclusive: true }).then(() => 'ok', (err: unknown) => err)))
  const winners = results.map((r, i) => (r === 'ok' ? i : -1)).filter((i) => i >= 0)
  t.equal(winners.length, 1, 'exactly one exclusive put succeeded')
  t.ok(results.every((r) => r === 'ok' || r instanceof ExistsError), 'the others failed with ExistsError')
  t.ok((await remote.get('audit/00000001')).equals(writers[winners[0]]), "the object holds the winner's bytes")
  // exclusive putFile: CompleteMultipartUpload / PUT carry If-None-Match too.
  const file = join(t.testdir(), 'pack')
  writeFileSync(file, seededBytes('pack', 6 * MiB))
  const small = await openOn(gw, gw.url(remote.config.bucket, 'repo'), { part_size: '5MiB' })
  t.teardown(() => small.close())
  await small.putFile('data/aa/pack', file, { exclusive: true })
  t.ok((await rejection(small.putFile('data/aa/pack', file, { exclusive: true }))) instanceof ExistsError, 'a multipart exclusive putFile over an existing name fails')
  const refused = gw.log.filter((e) => e.key === 'repo/data/aa/pack' && e.status === 412)
  t.equal(refused.length, 1, 'the gateway refused the CompleteMultipartUpload with 412')
})

t.test('exclusive puts without conditional writes: a concurrent overwrite is detected', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  // A gateway that ignores If-None-Match like s3rver, holding requests so that both writers pass their
  // existence check before either PUT, and both PUTs land before either read-back.
  const gw = await startGateway(t, await s3rver(), { conditionalWrites: false })
  const { remote } = await fresh(t, gw, { conditional_writes: 'off' })
  const key = 'repo/audit/00000007'
  const puts = gw.hold((e) => e.key === key && e.method === 'PUT')
  const gets = gw.hold((e) => e.key === key && e.method === 'GET')
  const a = Buffer.from('writer a')
  const b = Buffer.from('writer b')
  const racing = Promise.all([a, b].map((w) => remote.put('audit/00000007', w, { exclusive: true }).then(() => 'ok', (err: unknown) => err)))
  await puts.held(2)
  puts.release()
  await gets.held(2)
  gets.release()
  const results = await racing
  const stored = await remote.get('audit/00000007')
  const winner = stored.equals(a) ? 0 : stored.equals(b) ? 1 : -1
  t.not(winner, -1, 'the object holds one writer\'s bytes')
  t.equal(results[winner], 'ok', 'the writer whose PUT landed last succeeded')
  t.ok(results[1 - winner] instanceof ExistsError, 'the overwritten writer got ExistsError', { found: results[1 - winner] })
  // What it cannot catch: a read-back that happens before the other writer's PUT (documented on S3Remote.put).
})

t.test('exclusive puts without conditional writes: a rival PUT that lands just after ours is seen', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  // The race the CLI two-writer test once lost on Swift: both writers pass their existence check, one PUT
  // lands, and the other lands a moment (here 100 ms) later. Without a wait before the read-back the first
  // writer reads its own bytes and both succeed; with it, the first sees the rival's bytes and gives way.
  const gw = await startGateway(t, await s3rver(), { conditionalWrites: false })
  const { remote } = await fresh(t, gw, { conditional_writes: 'off' })
  const key = 'repo/audit/00000009'
  const heads = gw.hold((e) => e.key === key && e.method === 'HEAD')
  let putsSeen = 0
  const second = gw.hold((e) => e.key === key && e.method === 'PUT' && ++putsSeen === 2)
  const a = Buffer.from('writer a')
  const b = Buffer.from('writer b')
  const racing = [a, b].map((w) => remote.put('audit/00000009', w, { exclusive: true }).then(() => 'ok', (err: unknown) => err))
  await heads.held(2)
  heads.release()
  await second.held(1)
  await new Promise((r) => setTimeout(r, 100))
  second.release()
  const results = await Promise.all(racing)
  const stored = await remote.get('audit/00000009')
  const winner = stored.equals(a) ? 0 : stored.equals(b) ? 1 : -1
  t.not(winner, -1, "the object holds one writer's bytes")
  t.equal(results.filter((r) => r === 'ok').length, 1, 'exactly one writer succeeded', { results: results.map(String) })
  t.equal(results[winner], 'ok', 'the writer whose PUT landed last')
  t.ok(results[1 - winner] instanceof ExistsError, 'the other got ExistsError', { found: results[1 - winner] })
})

// ---------------------------------------------------------------------------
// Multipart uploads.

t.test('putFile: multipart above the part size, byte-identical (swift s3api)', async (t) => {
  if (!haveServer(t, swiftMissing())) return
  const server = await swift()
  const { remote, bucket } = await fresh(t, server, { part_size: '5MiB' })
  const dir = t.testdir()
  const cases = [
    { name: 'data/00/three-parts', size: 12 * MiB + 12345, parts: 3 },
    { name: 'data/01/exactly-one-part', size: 5 * MiB, parts: 0 },
    { name: 'meta/02/small', size: 70_000, parts: 0 },
  ]
  const raw = new S3Client({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } })
  t.teardown(() => raw.destroy())
  for (const c of cases) {
    const data = seededBytes(c.name, c.size)
    const file = join(dir, c.name.replace(/\//g, '_'))
    writeFileSync(file, data)
    await remote.putFile(c.name, file)
    const got = await remote.get(c.name)
    t.equal(got.length, c.size, `${c.name}: size`)
    t.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(data).digest('hex'), `${c.name}: byte-identical`)
    t.ok((await remote.get(c.name, { offset: 5 * MiB - 10, length: 20 })).equals(data.subarray(5 * MiB - 10, 5 * MiB + 10)), `${c.name}: a range across a part boundary`)
    // Swift's s3api gives multipart objects an ETag ending in -<parts>: proof of how it was uploaded.
    const head = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: `repo/${c.name}` }))
    if (c.parts) t.match(head.ETag, new RegExp(`-${c.parts}"?$`), `${c.name}: uploaded in ${c.parts} parts`)
    else t.notMatch(head.ETag, /-\d+"?$/, `${c.name}: one PUT`)
  }
  const missing = await rejection(remote.putFile('data/x', join(dir, 'does-not-exist')))
  t.ok(missing instanceof RemoteError && !missing.transient, 'a missing local file is a non-transient RemoteError', { found: missing })
})

// ---------------------------------------------------------------------------
// Storage classes, archive and restore: behaviours of the gateway (no local server has classes).

t.test('storage classes per prefix (gateway)', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  const gw = await gateway()
  const { remote, bucket } = await fresh(t, gw, { storage_class: 'DEEP_ARCHIVE', part_size: '5MiB' })
  t.match(remote.archive, { provider: 's3-compatible', dataClass: 'DEEP_ARCHIVE', hotClass: 'STANDARD', dataNeedsRestore: true })
  const file = join(t.testdir(), 'pack')
  writeFileSync(file, seededBytes('big pack', 11 * MiB))
  await remote.put('config', Buffer.from('c'))
  await remote.put('keys/k1', Buffer.from('k'))
  await remote.put('index/i1', Buffer.from('i'))
  await remote.put('snapshots/s1', Buffer.from('s'))
  await remote.put('meta/aa/m1', Buffer.from('m'))
  await remote.put('data/aa/small', Buffer.from('d'))
  await remote.putFile('data/bb/multipart', file)
  await remote.putFile('meta/bb/multipart', file)
  const want: Record<string, string> = {
    'config': 'STANDARD', 'keys/k1': 'STANDARD', 'index/i1': 'STANDARD', 'snapshots/s1': 'STANDARD', 'meta/aa/m1': 'STANDARD',
    'meta/bb/multipart': 'STANDARD', 'data/aa/small': 'DEEP_ARCHIVE', 'data/bb/multipart': 'DEEP_ARCHIVE',
  }
  for (const [name, cls] of Object.entries(want)) t.equal(gw.objectState(bucket, `repo/${name}`)?.storageClass, cls, `${name}: sent as ${cls}`)
  t.same(Object.fromEntries((await listAll(remote)).map((o) => [o.name, o.storageClass])), want, 'list reports each class')
  t.equal((await remote.stat('data/bb/multipart')).storageClass, 'DEEP_ARCHIVE', 'stat reports the class')
  t.equal((await remote.stat('config')).storageClass, 'STANDARD', 'stat of a hot object')
  const uploads = gw.log.filter((e) => e.key === 'repo/data/bb/multipart' && e.subresource === 'uploads')
  t.equal(uploads.length, 1, 'the data pack went up as a multipart upload')

  // Listing and reading everything hot never touches a cold object.
  const before = gw.log.length
  for await (const _ of remote.list('snapshots/')) void _
  for (const name of ['config', 'keys/k1', 'index/i1', 'snapshots/s1', 'meta/aa/m1']) await remote.get(name)
  await remote.get('meta/bb/multipart', { offset: 100, length: 100 })
  const touched = gw.log.slice(before).filter((e) => e.objectClass === 'DEEP_ARCHIVE')
  t.same(touched, [], 'no request touched a DEEP_ARCHIVE object')
})

t.test('archive: state, ArchivedError, idempotent restore requests, completion (gateway)', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  const gw = await gateway()
  const { remote, bucket } = await fresh(t, gw, { storage_class: 'GLACIER' })
  const data = seededBytes('cold', 300_000)
  await remote.put('data/cc/cold', data)
  await remote.put('index/hot', Buffer.from('hot'))

  t.same(await remote.archive.state('index/hot'), { storageClass: 'STANDARD', readable: true, restore: 'none' }, 'a hot object needs no restore')
  t.same(await remote.archive.state('data/cc/cold'), { storageClass: 'GLACIER', readable: false, restore: 'none' }, 'a cold object is not readable')
  const e1 = await rejection(remote.get('data/cc/cold'))
  t.ok(e1 instanceof ArchivedError, 'get rejects with ArchivedError', { found: e1 })
  t.match(e1, { storageClass: 'GLACIER', restoring: false, objectName: 'data/cc/cold' })
  t.notOk(e1 instanceof RemoteError, 'not a (retryable) RemoteError')
  t.ok((await rejection(remote.get('data/cc/cold', { offset: 10, length: 10 }))) instanceof ArchivedError, 'ranged get too')
  t.ok((await rejection(remote.archive.state('data/cc/missing'))) instanceof NotFoundError, 'state of a missing object')

  const restorePosts = (): number => gw.log.filter((e) => e.subresource === 'restore' && e.method === 'POST').length
  await remote.archive.requestRestore('index/hot', { tier: 'Bulk', days: 1 })
  t.equal(restorePosts(), 0, 'no restore request for a hot object')
  // Two at once, both past their HEAD (no restore yet) before either POST is let through (held in the
  // gateway): the second gets 409 RestoreAlreadyInProgress, which counts as success.
  const hold = gw.hold((e) => e.subresource === 'restore' && e.key === 'repo/data/cc/cold')
  const both = Promise.all([remote.archive.requestRestore('data/cc/cold', { tier: 'Bulk', days: 3 }), remote.archive.requestRestore('data/cc/cold', { tier: 'Bulk', days: 3 })])
  await hold.held(2)
  hold.release()
  await both
  t.same(gw.log.filter((e) => e.subresource === 'restore').map((e) => e.status).sort(), [202, 409], 'the gateway answered 202 and 409; both calls resolved')
  t.equal(gw.objectState(bucket, 'repo/data/cc/cold')?.restoreTier, 'Bulk', 'the tier was sent')
  t.equal(gw.objectState(bucket, 'repo/data/cc/cold')?.restoreDays, 3, 'the days were sent')
  t.match(await remote.archive.state('data/cc/cold'), { readable: false, restore: 'in-progress' }, 'in progress')
  const posts = restorePosts()
  await remote.archive.requestRestore('data/cc/cold', { tier: 'Bulk', days: 3 })
  t.equal(restorePosts(), posts, 'asking again while in progress sends nothing')
  const e2 = await rejection(remote.get('data/cc/cold'))
  t.match(e2, { storageClass: 'GLACIER', restoring: true }, 'ArchivedError says a restore is in progress')

  t.equal(gw.completeRestores(), 1, 'the test completes the restore (in the gateway)')
  const st = await remote.archive.state('data/cc/cold')
  t.match(st, { storageClass: 'GLACIER', readable: true, restore: 'restored' }, 'restored')
  t.ok(st.restoredUntil instanceof Date && st.restoredUntil.getTime() > Date.now() + 2 * 86_400_000, 'restoredUntil from expiry-date')
  t.ok((await remote.get('data/cc/cold')).equals(data), 'readable after the restore')
  await remote.archive.requestRestore('data/cc/cold', { tier: 'Standard', days: 1 })
  t.equal(restorePosts(), posts, 'nothing sent for an object already restored')
  t.ok((await rejection(remote.archive.requestRestore('data/cc/cold', { tier: 'Fast' as 'Bulk', days: 1 }))) instanceof UsageError, 'unknown tier')
  t.ok((await rejection(remote.archive.requestRestore('data/cc/cold', { tier: 'Bulk', days: 0 }))) instanceof UsageError, 'days < 1')
})

t.test('archive: DEEP_ARCHIVE has no Expedited tier; GLACIER_IR needs no restore (gateway)', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  const gw = await gateway()
  const deep = (await fresh(t, gw, { storage_class: 'DEEP_ARCHIVE' })).remote
  await deep.put('data/dd/x', Buffer.from('x'))
  t.ok((await rejection(deep.archive.requestRestore('data/dd/x', { tier: 'Expedited', days: 1 }))) instanceof UsageError, 'Expedited on DEEP_ARCHIVE')
  const ir = (await fresh(t, gw, { storage_class: 'GLACIER_IR' })).remote
  t.equal(ir.archive.dataNeedsRestore, false, 'GLACIER_IR: dataNeedsRestore false')
  await ir.put('data/ee/x', Buffer.from('instant'))
  t.same(await ir.archive.state('data/ee/x'), { storageClass: 'GLACIER_IR', readable: true, restore: 'none' })
  t.equal((await ir.get('data/ee/x')).toString(), 'instant', 'read at once')
})

// ---------------------------------------------------------------------------
// Object Lock: behaviours of the gateway (no local server implements it).

t.test('protection: Object Lock retention and legal holds (gateway)', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  const gw = await gateway()
  const { remote, bucket } = await fresh(t, gw)
  gw.enableObjectLock(bucket)
  t.match(remote.protection, { enforcedByRemote: true, mechanism: /Object Lock, COMPLIANCE mode/ })
  for (const n of ['snapshots/s1', 'meta/aa/m1', 'data/bb/d1', 'data/bb/d2', 'data/bb/free']) await remote.put(n, Buffer.from(n))
  const until = new Date(Date.now() + 30 * 86_400_000)
  await remote.protection.protect(['snapshots/s1', 'meta/aa/m1', 'data/bb/d1'], { retainUntil: until, legalHold: false })
  await remote.protection.protect(['data/bb/d2'], { retainUntil: null, legalHold: true })
  t.same(gw.objectState(bucket, 'repo/snapshots/s1')?.retention, { mode: 'COMPLIANCE', until }, 'retention set with the mode and date')
  t.equal(gw.objectState(bucket, 'repo/data/bb/d2')?.legalHold, true, 'legal hold set')
  for (const n of ['snapshots/s1', 'meta/aa/m1', 'data/bb/d1', 'data/bb/d2']) t.equal(await remote.protection.isProtected(n), true, `${n}: protected`)
  t.equal(await remote.protection.isProtected('data/bb/free'), false, 'an unprotected object')

  const del = await rejection(remote.delete('data/bb/d1'))
  t.ok(del instanceof RemoteError && !del.transient, 'delete of a retained object: non-transient RemoteError', { found: del })
  t.match(String(del), /Object Lock/, 'the message mentions Object Lock')
  t.ok((await rejection(remote.delete('data/bb/d2'))) instanceof RemoteError, 'delete of a held object fails')
  t.ok((await rejection(remote.put('snapshots/s1', Buffer.from('changed')))) instanceof RemoteError, 'overwrite of a retained object fails')
  t.equal((await remote.get('snapshots/s1')).toString(), 'snapshots/s1', 'still the original')
  await remote.delete('data/bb/free')
  t.pass('an unprotected object can be deleted')

  const retentionPuts = (): number => gw.log.filter((e) => e.subresource === 'retention' && e.method === 'PUT').length
  const n = retentionPuts()
  await remote.protection.protect(['snapshots/s1'], { retainUntil: until, legalHold: false })
  await remote.protection.protect(['snapshots/s1'], { retainUntil: new Date(Date.now() + 86_400_000), legalHold: false })
  t.equal(retentionPuts(), n, 'protecting again with the same or an earlier date sends nothing (idempotent)')
  const later = new Date(until.getTime() + 86_400_000)
  await remote.protection.protect(['snapshots/s1'], { retainUntil: later, legalHold: false })
  t.same(gw.objectState(bucket, 'repo/snapshots/s1')?.retention?.until, later, 'a later date extends the retention')
  t.ok((await rejection(remote.protection.protect(['data/zz/missing'], { retainUntil: until, legalHold: false }))) instanceof NotFoundError, 'protecting a missing object')

  const gov = await openOn(gw, gw.url(bucket, 'repo'), { object_lock_mode: 'GOVERNANCE' })
  t.teardown(() => gov.close())
  t.match(gov.protection.mechanism, /GOVERNANCE/, 'the mechanism names the mode')
  await gov.protection.protect(['meta/aa/m1'], { retainUntil: later, legalHold: false })
  t.equal(gw.objectState(bucket, 'repo/meta/aa/m1')?.retention?.mode, 'GOVERNANCE', 'GOVERNANCE mode sent')
})

t.test('protection: a bucket without Object Lock is a clear error, not a silent success', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  const gw = await gateway()
  const { remote } = await fresh(t, gw)
  await remote.put('snapshots/s1', Buffer.from('x'))
  const err = await rejection(remote.protection.protect(['snapshots/s1'], { retainUntil: new Date(Date.now() + 86_400_000), legalHold: false }))
  t.ok(err instanceof ConfigError, 'ConfigError (gateway: ObjectLockConfigurationNotFoundError)', { found: err })
  t.match(String(err), /does not have S3 Object Lock enabled/)
  t.equal(await remote.protection.isProtected('snapshots/s1'), false, 'isProtected: false')
  await remote.protection.protect(['snapshots/s1'], { retainUntil: null, legalHold: false })
  t.pass('an empty request needs no Object Lock')
  // s3rver itself: NotImplemented.
  const direct = (await fresh(t, await s3rver())).remote
  await direct.put('snapshots/s1', Buffer.from('x'))
  const e2 = await rejection(direct.protection.protect(['snapshots/s1'], { retainUntil: null, legalHold: true }))
  t.ok(e2 instanceof ConfigError, 'a server without Object Lock (s3rver: NotImplemented): ConfigError', { found: e2 })
  t.match(String(e2), /does not implement S3 Object Lock/)
})

// ---------------------------------------------------------------------------
// Errors.

t.test('error mapping: credentials, missing bucket, unreachable server', async (t) => {
  if (!haveServer(t, swiftMissing()) || !haveServer(t, s3rverMissing())) return
  for (const server of [await swift(), await s3rver()]) {
    const bucket = await server.createBucket()
    const url = server.url(bucket, 'repo')
    const good = await openOn(server, url)
    t.teardown(() => good.close())
    await good.put('config', Buffer.from('x'))
    // s3rver does not verify SigV4 signatures (any secret works with a known key): the wrong secret only on Swift.
    const cases: { name: string; env: Record<string, string>; url?: string; check: RegExp }[] = [
      ...(server.kind === 's3rver' ? [] : [{ name: 'wrong secret key', env: { AWS_SECRET_ACCESS_KEY: 'wrong-secret-value' }, check: /check the access key and secret key/ }]),
      { name: 'unknown access key', env: { AWS_ACCESS_KEY_ID: 'nobody:nobody', AWS_SECRET_ACCESS_KEY: 'wrong-secret-value' }, check: /check the access key|access key is not known/ },
      { name: 'missing bucket', env: {}, url: server.url('no-such-bucket-here', 'repo'), check: /bucket no-such-bucket-here does not exist at http:\/\/127\.0\.0\.1:\d+: check the bucket name/ },
    ]
    for (const c of cases) {
      const remote = await openOn(server, c.url ?? url, {}, c.env)
      t.teardown(() => remote.close())
      const attempts = [['get', rejection(remote.get('config'))], ['put', rejection(remote.put('x', Buffer.from('y')))], ['list', rejection(listAll(remote))]] as const
      for (const [op, p] of attempts) {
        const err = await p
        t.ok(err instanceof RemoteError && !err.transient, `${server.kind}, ${c.name}, ${op}: non-transient RemoteError`, { found: err })
        t.match(String(err), c.check, `${server.kind}, ${c.name}, ${op}: says what to check`)
        t.notMatch(String(err), 'wrong-secret-value', `${server.kind}, ${c.name}, ${op}: no secret in the message`)
      }
    }
    // HEAD has no error body: a wrong key is a 403 without a code.
    const badStat = await openOn(server, url, {}, { AWS_ACCESS_KEY_ID: 'nobody:nobody', AWS_SECRET_ACCESS_KEY: 'wrong-secret-value' })
    t.teardown(() => badStat.close())
    const se = await rejection(badStat.stat('config'))
    t.ok(se instanceof RemoteError && !se.transient, `${server.kind}: stat with a wrong key`, { found: se })
  }
  const nobody = await openOn(await s3rver(), 's3://bkt/p?endpoint=http://127.0.0.1:1&region=us-east-1')
  t.teardown(() => nobody.close())
  const refused = await rejection(nobody.get('config'))
  t.ok(refused instanceof RemoteError && refused.transient, 'connection refused: transient RemoteError', { found: refused })
})

t.test('open with create makes a missing bucket; openRemote reaches s3:// and b2://', async (t) => {
  if (!haveServer(t, swiftMissing()) || !haveServer(t, s3rverMissing())) return
  const server = await swift()
  const name = `created-${process.pid}-${Date.now()}`
  const url = server.url(name, 'x')
  const before = await openOn(server, url)
  t.teardown(() => before.close())
  t.ok((await rejection(before.put('config', Buffer.from('c')))) instanceof RemoteError, 'the bucket is missing at first')
  const remote = await openRemote(url, { create: true, env: server.env() })
  t.teardown(() => remote.close())
  // openRemote wraps network kinds (retries, limits: wrapRemote); the S3 kind shows through its capabilities.
  t.equal(remote.archive?.provider, 's3-compatible', 'openRemote opens the S3 kind')
  await remote.put('config', Buffer.from('c'))
  t.equal((await remote.get('config')).toString(), 'c', 'the created bucket works')
  const again = await openRemote(url, { create: true, env: server.env() })
  t.teardown(() => again.close())
  t.pass('create on an existing bucket is fine')

  // b2:// against a local endpoint: the B2 variables are the credentials.
  const s3 = await s3rver()
  const bucket = await s3.createBucket()
  const b2 = await openRemote(`b2://${bucket}/repo?endpoint=${s3.endpoint}&region=us-west-004`, { env: { B2_APPLICATION_KEY_ID: s3.accessKeyId, B2_APPLICATION_KEY: s3.secretAccessKey } })
  t.teardown(() => b2.close())
  t.equal(b2.archive?.provider, 'b2', 'provider b2')
  await b2.put('config', Buffer.from('b2'))
  t.equal((await b2.get('config')).toString(), 'b2')
  const viaSettings = await openRemote(`s3://${bucket}/repo`, { settings: { endpoint: s3.endpoint, path_style: true }, env: s3.env() })
  t.teardown(() => viaSettings.close())
  t.equal((await viaSettings.get('config')).toString(), 'b2', 'settings of a named remote work like URL parameters')
})

// ---------------------------------------------------------------------------
// The command line against S3.

const PASSWORD = 'correct horse battery staple'

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function cli(args: readonly string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }))
  })
}

function exits(t: Test, r: Run, code: number, what: string): boolean {
  return t.equal(r.code, code, `${what}: exit ${code}`, r.code === code ? {} : { stdout: r.stdout.slice(0, 3000), stderr: r.stderr.slice(0, 3000) })
}

/** Environment of a CLI child: credentials of `server`, the password, nothing of this process. */
function cliEnv(server: S3TestServer, home: string): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', COLDSTORE_PASSWORD: PASSWORD, ...server.env() }
}

/** Every file under `root` with its bytes' digest. */
function digests(root: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name)
      if (statSync(p).isDirectory()) walk(p)
      else out[relative(root, p)] = createHash('sha256').update(readFileSync(p)).digest('hex')
    }
  }
  walk(root)
  return out
}

function makeSource(dir: string, seed: string): void {
  writeTree(dir, {
    'big.bin': seededBytes(`${seed} big`, 3 * MiB + 17),
    'text/log.txt': seededText(`${seed} log`, 400_000),
    'sub/deep/a.txt': `${seed} a\n`,
    'sub/deep/b.dat': seededBytes(`${seed} b`, 100_000),
    empty: '',
  })
}

t.test('CLI round trip: init, snapshot, restore byte-identical, verify --read-data (swift s3api)', async (t) => {
  if (!haveServer(t, swiftMissing())) return
  ensureBuilt(t)
  const server = await swift()
  const bucket = newBucketName('cli') // not created: init creates it
  const dir = t.testdir()
  const src = join(dir, 'src')
  makeSource(src, 'round trip')
  const env = cliEnv(server, join(dir, 'home'))
  const repo = server.url(bucket, 'team/repo')
  const common = ['--repo', repo, '--cache-dir', join(dir, 'cache')]
  exits(t, await cli(['init', ...common], env), 0, 'init')
  exits(t, await cli(['snapshot', src, ...common], env), 0, 'snapshot')
  const target = join(dir, 'restored')
  exits(t, await cli(['restore', 'latest', '--target', target, ...common], env), 0, 'restore')
  t.same(digests(join(target, 'src')), digests(src), 'restored files are byte-identical')
  const v = await cli(['verify', '--read-data', '--json', ...common], env)
  exits(t, v, 0, 'verify --read-data')
  t.notMatch(v.stderr, /NodeVersionSupportWarning/, 'no SDK Node version warning on stderr')
  const noCreds = await cli(['snapshots', ...common], { ...env, AWS_SECRET_ACCESS_KEY: 'wrong-secret-value' })
  t.not(noCreds.code, 0, 'wrong credentials fail')
  t.match(noCreds.stderr, /secret key|access denied|credentials/i, 'and say what to check')
  t.notMatch(noCreds.stderr + noCreds.stdout, 'wrong-secret-value', 'without printing the secret')
})

for (const where of ['gateway', 'swift'] as const) {
  t.test(`CLI: two processes snapshot into one repository at once, both succeed, verify passes (${where === 'gateway' ? 'gateway: conditional writes, as on AWS' : 'swift s3api: check-then-put'})`, async (t) => {
    if (!haveServer(t, where === 'gateway' ? s3rverMissing() : swiftMissing())) return
    ensureBuilt(t)
    const server = where === 'gateway' ? await gateway() : await swift()
    const bucket = await server.createBucket()
    const dir = t.testdir()
    const env = cliEnv(server, join(dir, 'home'))
    const repo = server.url(bucket, 'shared')
    exits(t, await cli(['init', '--repo', repo, '--cache-dir', join(dir, 'cache-init')], env), 0, 'init')
    const hosts = ['host-a', 'host-b']
    for (const h of hosts) makeSource(join(dir, h), h)
    // Both share one file so they also race to store the same chunks.
    for (const h of hosts) writeFileSync(join(dir, h, 'shared.bin'), seededBytes('shared', 2 * MiB))
    const runs = await Promise.all(hosts.map((h) => cli(['snapshot', join(dir, h), '--json', '--repo', repo, '--cache-dir', join(dir, `cache-${h}`)], env)))
    runs.forEach((r, i) => exits(t, r, 0, `snapshot from ${hosts[i]}`))
    const list = await cli(['snapshots', '--json', '--repo', repo, '--cache-dir', join(dir, 'cache-check')], env)
    exits(t, list, 0, 'snapshots')
    t.equal((JSON.parse(list.stdout) as unknown[]).length, 2, 'both snapshots are there')
    exits(t, await cli(['verify', '--read-data', '--repo', repo, '--cache-dir', join(dir, 'cache-check')], env), 0, 'verify --read-data')
    const audit = await cli(['audit', '--verify', '--repo', repo, '--cache-dir', join(dir, 'cache-check')], env)
    exits(t, audit, 0, 'audit --verify (one entry per seq: the exclusive claims held)')
    const snaps = JSON.parse(list.stdout) as { id: string; paths: string[] }[]
    for (const snap of snaps) {
      const target = join(dir, `restored-${snap.id.slice(0, 8)}`)
      exits(t, await cli(['restore', snap.id, '--target', target, '--repo', repo, '--cache-dir', join(dir, 'cache-check')], env), 0, `restore ${snap.id.slice(0, 8)}`)
      t.same(digests(join(target, basename(snap.paths[0]))), digests(snap.paths[0]), `${snap.paths[0]}: restored byte-identical`)
    }
  })
}
