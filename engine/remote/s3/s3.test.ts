/**
 * The S3 remote against real servers on 127.0.0.1 started by this file: OpenStack Swift with s3api (the
 * most faithful) and s3rver (light), each shared by the tests that use it.
 */
import t, { type Test } from 'tap'
import { runRemoteSuite } from '../../testing/remote-suite.js'
import { S3Remote, parseConfig } from './index.js'
import { haveServer, type S3TestServer } from './testing/s3-server.js'
import { s3rverMissing, startS3rver } from './testing/s3rver.js'
import { startSwiftS3, swiftMissing } from './testing/swift.js'

/** One server per kind for the whole file, started on first use. */
function shared(start: (t: Test) => Promise<S3TestServer>): () => Promise<S3TestServer> {
  let p: Promise<S3TestServer> | undefined
  return () => (p ??= start(t))
}
const swift = shared(startSwiftS3)
const s3rver = shared(startS3rver)

async function openOn(server: S3TestServer, url: string, settings = {}): Promise<S3Remote> {
  return S3Remote.open(parseConfig(url, settings), { create: false, env: server.env() })
}

t.test('conformance: s3rver', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  const server = await s3rver()
  await runRemoteSuite(t, async () => openOn(server, server.url(await server.createBucket(), 'repo')))
})

t.test('conformance: swift s3api', async (t) => {
  if (!haveServer(t, swiftMissing())) return
  const server = await swift()
  await runRemoteSuite(t, async () => openOn(server, server.url(await server.createBucket(), 'repo')))
})
