/**
 * Test-only: starts OpenStack Swift with its s3api middleware on 127.0.0.1 (the most faithful S3 server that
 * runs here: ranges, ListObjectsV2 paging, multipart with `-N` ETags). Everything lives in a temp dir of the
 * test: swift.conf, one-device rings, an account, container and object server, a proxy with s3api and
 * tempauth, and its own memcached on a free port. About 3 s to start; share one per test file.
 *
 * Limits of Swift's s3api (2.30, Debian bookworm), which the tests must not expect to work here: storage
 * classes other than STANDARD are rejected, Object Lock is not implemented, and conditional PUTs
 * (`If-None-Match: *`) answer 501 NotImplemented.
 *
 * Its servers' log lines (syslog over UDP) are collected in `<dir>/swift.log` (CS_SWIFT_LOG_LEVEL=INFO for
 * every request).
 */
import { createSocket } from 'node:dgram'
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import type { Test } from 'tap'
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { freePort, httpStatus, newBucketName, serverDir, startChild, waitUntil, type Child, type S3TestServer } from './s3-server.js'

const BINARIES = ['/usr/bin/swift-proxy-server', '/usr/bin/swift-account-server', '/usr/bin/swift-container-server', '/usr/bin/swift-object-server']

/** Why Swift cannot start here (a missing binary), or undefined when it can. */
export function swiftMissing(): string | undefined {
  const missing = BINARIES.filter((b) => !existsSync(b))
  if (missing.length) return `OpenStack Swift is not installed (${missing.join(', ')}; apt-get install swift-proxy swift-account swift-container swift-object)`
  if (!findMemcached()) return 'memcached is not installed (apt-get install memcached)'
  return undefined
}

function findMemcached(): string | undefined {
  return ['/usr/bin/memcached', '/usr/local/bin/memcached'].find((p) => existsSync(p))
}

/** The interpreter Swift's scripts run with (a python3 earlier on PATH may lack the swift package). */
const SWIFT_PYTHON = '/usr/bin/python3'

/** Ring building in one Python process (swift-ring-builder is one process per step, ~0.3 s each). */
const RING_SCRIPT = `
import sys
from swift.common.ring import RingBuilder
d = sys.argv[1]
for name, port in (('account', int(sys.argv[2])), ('container', int(sys.argv[3])), ('object', int(sys.argv[4]))):
    b = RingBuilder(0, 1, 1)
    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port, 'device': 'd1', 'weight': 1})
    b.rebalance()
    b.get_ring().save('%s/%s.ring.gz' % (d, name))
`

/**
 * Starts Swift + s3api in a new directory under the test's fixture directory (or in `dir`) and stops it in
 * `t.teardown`. Credentials `test:tester` / `testing`, region us-east-1, path-style only.
 *
 * @throws Error when a server fails to start (with the tail of its log).
 */
export async function startSwiftS3(t: Test, dir?: string): Promise<S3TestServer> {
  const missing = swiftMissing()
  if (missing) throw new Error(missing)
  const root = dir ?? serverDir(t, 'swift')
  const devices = join(root, 'devices')
  mkdirSync(join(devices, 'd1'), { recursive: true })
  const [memcachedPort, accountPort, containerPort, objectPort, proxyPort] = await distinctPorts(5)
  // Swift logs through syslog; without /dev/log it would send UDP to port 514. Collect it in swift.log instead.
  const syslog = createSocket('udp4')
  const logFile = join(root, 'swift.log')
  syslog.on('message', (m) => {
    try {
      appendFileSync(logFile, `${m.toString('utf8').replace(/\0/g, '')}\n`)
    } catch {
      // the directory is gone at teardown: drop the line
    }
  })
  await new Promise<void>((resolve) => syslog.bind(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => syslog.close(() => resolve())))
  const logPort = syslog.address().port

  writeFileSync(join(root, 'swift.conf'), [
    '[swift-hash]', 'swift_hash_path_suffix = coldstore-test', 'swift_hash_path_prefix = coldstore-test', '',
    '[storage-policy:0]', 'name = Policy-0', 'default = yes', '',
  ].join('\n'))
  execFileSync(SWIFT_PYTHON, ['-c', RING_SCRIPT, root, String(accountPort), String(containerPort), String(objectPort)], { stdio: 'pipe' })

  const common = (port: number): string[] => [
    '[DEFAULT]', `devices = ${devices}`, 'mount_check = false', 'bind_ip = 127.0.0.1', `bind_port = ${port}`, 'workers = 0',
    `swift_dir = ${root}`, 'user = root', `log_level = ${process.env.CS_SWIFT_LOG_LEVEL ?? 'WARNING'}`, 'log_udp_host = 127.0.0.1', `log_udp_port = ${logPort}`, '',
  ]
  const server = (kind: string, port: number): void => {
    writeFileSync(join(root, `${kind}-server.conf`), [
      ...common(port), '[pipeline:main]', `pipeline = ${kind}-server`, '', `[app:${kind}-server]`, `use = egg:swift#${kind}`, '',
      ...(kind === 'container' ? ['[container-sync]', ''] : []),
    ].join('\n'))
  }
  server('account', accountPort)
  server('container', containerPort)
  server('object', objectPort)
  writeFileSync(join(root, 'proxy-server.conf'), [
    ...common(proxyPort),
    '[pipeline:main]',
    'pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server',
    '', '[app:proxy-server]', 'use = egg:swift#proxy', 'account_autocreate = true',
    // On a busy shared machine a backend can be slow to accept: the defaults (0.5 s to connect, and a node
    // "error-limited" for a minute after 10 errors) turn one slow moment into a minute of 503s with a single node.
    'conn_timeout = 10', 'node_timeout = 60', 'recoverable_node_timeout = 60', 'client_timeout = 120', 'error_suppression_limit = 1000000',
    '', '[filter:tempauth]', 'use = egg:swift#tempauth', 'user_test_tester = testing .admin',
    '', '[filter:s3api]', 'use = egg:swift#s3api', 'location = us-east-1',
    '', '[filter:cache]', 'use = egg:swift#memcache', `memcache_servers = 127.0.0.1:${memcachedPort}`,
    ...['catch_errors', 'gatekeeper', 'healthcheck', 'proxy-logging', 'listing_formats', 'copy', 'slo', 'dlo'].flatMap((f) => ['', `[filter:${f}]`, `use = egg:swift#${f.replace('-', '_')}`]),
    '',
  ].join('\n'))

  const children: Child[] = []
  const memcached = findMemcached() as string
  children.push(startChild(t, { name: 'memcached', command: memcached, args: ['-l', '127.0.0.1', '-p', String(memcachedPort), '-U', '0', '-u', 'root', '-m', '32'], log: join(root, 'memcached.log') }))
  for (const kind of ['account', 'container', 'object', 'proxy']) {
    children.push(startChild(t, { name: `swift-${kind}-server`, command: `/usr/bin/swift-${kind}-server`, args: [join(root, `${kind}-server.conf`)], log: join(root, `${kind}.log`) }))
  }
  // Stop the proxy first, memcached last (teardowns run in registration order: reverse it).
  const stopAll = async (): Promise<void> => {
    for (const c of [...children].reverse()) await c.stop()
  }
  t.teardown(stopAll)
  const t0 = Date.now()
  await waitUntil('swift', async () => (await httpStatus(proxyPort, '/healthcheck')) === 200, children)
  // The proxy answers /healthcheck before the backends listen: wait until an account request goes through.
  const endpoint = `http://127.0.0.1:${proxyPort}`
  const accessKeyId = 'test:tester'
  const secretAccessKey = 'testing'
  const region = 'us-east-1'
  const client = new S3Client({
    endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  })
  t.teardown(() => client.destroy())
  const createBucket = async (name = newBucketName()): Promise<string> => {
    await client.send(new CreateBucketCommand({ Bucket: name }))
    return name
  }
  if (process.env.CS_TIMING) t.comment(`swift proxy healthy in ${Date.now() - t0} ms`)
  let lastError: unknown
  await waitUntil('swift backends', async () => {
    try {
      await createBucket(`ready-${proxyPort}`)
      return true
    } catch (err) {
      const name = (err as { name?: string }).name
      if (name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists') return true
      lastError = err
      return false
    }
  }, children).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\nlast error: ${String(lastError)}`)
  })
  if (process.env.CS_TIMING) t.comment(`swift ready in ${Date.now() - t0} ms`)
  return {
    kind: 'swift-s3api',
    endpoint,
    region,
    accessKeyId,
    secretAccessKey,
    createBucket,
    env: () => ({ AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey }),
    url: (bucket, prefix = '') => `s3://${bucket}${prefix ? `/${prefix}` : ''}?endpoint=${endpoint}&path_style=true&region=${region}`,
  }
}

async function distinctPorts(n: number): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < n) ports.add(await freePort())
  return [...ports]
}
