/**
 * Test-only: starts s3rver (npm devDependency, a light S3 emulator on a directory) on 127.0.0.1 in its own
 * process, stopped in `t.teardown`. Starts in well under a second.
 *
 * Limits of s3rver 3.7.1 the tests must not expect to work here: it does not verify SigV4 signatures (any
 * secret works with its access key; an unknown key is refused), it stores any StorageClass header but lists
 * everything as STANDARD, does not implement Object Lock (`NotImplemented`), ignores `If-None-Match` on PUT
 * (an "exclusive" put silently overwrites), and answers `bytes=-N` suffix ranges wrongly.
 * It needs --openssl-legacy-provider, or ListObjectsV2 paging answers 500.
 *
 * Two defects of its filesystem store would fail the Remote conformance suite for reasons that are not the
 * S3 remote's, so the launcher below replaces two of its methods (and says so here, since it is then not
 * quite stock s3rver):
 * - putObject writes straight into the object's file and answers before the bytes are on disk, so a
 *   listing (or a read) during a PUT sees a partial object; real S3 PUTs are atomic. The launcher writes a
 *   temporary file, waits for it to be written, then renames it into place.
 * - a ranged GET of an empty object answers `Content-Length: 1` with no body (the connection then resets);
 *   S3 answers 416. The launcher answers it as unsatisfiable.
 * It also adds the storage classes newer than s3rver (GLACIER_IR, SNOW, EXPRESS_ONEZONE) to the ones it
 * accepts, so the gateway can be tested with them.
 */
import { existsSync, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import type { Test } from 'tap'
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { newBucketName, serverDir, startChild, waitUntil, type S3TestServer } from './s3-server.js'

/** s3rver's package.json, or undefined when the package is not installed. */
function s3rverPackage(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('s3rver/package.json')
    return existsSync(join(dirname(pkg), 'lib', 'stores', 'filesystem.js')) ? pkg : undefined
  } catch {
    return undefined
  }
}

/** Why s3rver cannot start here, or undefined when it can. */
export function s3rverMissing(): string | undefined {
  return s3rverPackage() ? undefined : 's3rver is not installed (it is a devDependency: npm install)'
}

/** Runs s3rver with the two store fixes; prints `listening <port>` once it accepts connections. */
const LAUNCHER = `
const [pkg, directory] = process.argv.slice(1)
const req = require('node:module').createRequire(pkg)
const S3rver = req('./lib/s3rver.js')
const FilesystemStore = req('./lib/stores/filesystem.js')
const S3Object = req('./lib/models/object.js')
const fs = req('fs-extra')
const path = require('node:path')
const crypto = require('node:crypto')
const { pipeline, Transform } = require('node:stream')

S3Object.STORAGE_CLASSES.push('GLACIER_IR', 'SNOW', 'EXPRESS_ONEZONE')

const getObject = FilesystemStore.prototype.getObject
FilesystemStore.prototype.getObject = async function (bucket, key, options) {
  if (options && (options.start !== undefined || options.end)) {
    const md = await this.getMetadata(bucket, key).catch((err) => { if (err.code === 'ENOENT') return null; throw err })
    if (md === null) return null
    if (Number(md['content-length']) === 0) {
      const object = new S3Object(bucket, key, null, md)
      object.range = { start: options.start || 0, end: -1 }
      return object
    }
  }
  return getObject.call(this, bucket, key, options)
}

FilesystemStore.prototype.putObject = async function (object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object')
  const temp = objectPath + '.tmp-' + crypto.randomBytes(6).toString('hex')
  const md5 = crypto.createHash('md5')
  let size = 0
  for (let attempt = 0; ; attempt++) {
    await fs.mkdirp(path.dirname(objectPath))
    try {
      if (Buffer.isBuffer(object.content)) {
        await fs.writeFile(temp, object.content)
        md5.update(object.content)
        size = object.content.length
      } else {
        await new Promise((resolve, reject) => pipeline(
          object.content,
          new Transform({ transform(chunk, enc, cb) { md5.update(chunk); size += chunk.length; cb(null, chunk) } }),
          fs.createWriteStream(temp),
          (err) => (err ? reject(err) : resolve()),
        ))
      }
      break
    } catch (err) {
      // A concurrent delete removed the (then empty) directory between mkdirp and the write: once more.
      if (err.code !== 'ENOENT' || attempt > 3 || !Buffer.isBuffer(object.content)) throw err
    }
  }
  const digest = md5.digest('hex')
  await this.putMetadata(object.bucket, object.key, object.metadata, digest)
  await fs.rename(temp, objectPath)
  return { size, md5: digest }
}

new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true })
  .run()
  .then((addr) => console.log('listening ' + addr.port))
  .catch((err) => { console.error(err); process.exit(1) })
`

/**
 * Starts s3rver on a free port (it picks one and reports it) with its files in a temp dir.
 * Keys `S3RVER` / `S3RVER`, any region, path-style.
 */
export async function startS3rver(t: Test, dir?: string): Promise<S3TestServer> {
  const pkg = s3rverPackage()
  if (!pkg) throw new Error(s3rverMissing())
  const root = dir ?? serverDir(t, 's3rver')
  mkdirSync(join(root, 'data'), { recursive: true })
  const child = startChild(t, {
    name: 's3rver',
    command: process.execPath,
    args: ['--openssl-legacy-provider', '-e', LAUNCHER, pkg, join(root, 'data')],
    log: join(root, 's3rver.log'),
    // Only what it needs: not tap's loaders from NODE_OPTIONS.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  })
  let port = 0
  let out = ''
  child.proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString('utf8')
    const m = /listening (\d+)/.exec(out)
    if (m) port = Number(m[1])
  })
  await waitUntil('s3rver', async () => port !== 0, [child])
  const endpoint = `http://127.0.0.1:${port}`
  const accessKeyId = 'S3RVER'
  const secretAccessKey = 'S3RVER'
  const region = 'us-east-1'
  const client = new S3Client({
    endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  })
  t.teardown(() => client.destroy())
  return {
    kind: 's3rver',
    endpoint,
    region,
    accessKeyId,
    secretAccessKey,
    async createBucket(name = newBucketName()) {
      await client.send(new CreateBucketCommand({ Bucket: name }))
      return name
    },
    env: () => ({ AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey }),
    url: (bucket, prefix = '') => `s3://${bucket}${prefix ? `/${prefix}` : ''}?endpoint=${endpoint}&path_style=true&region=${region}`,
  }
}
