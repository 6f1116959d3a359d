/**
 * Test-only: an S3 gateway on 127.0.0.1 in front of a real S3 test server (s3rver), adding what none of the
 * local servers honours, so tests can exercise the S3 remote's archive, Object Lock and conditional-write
 * paths over real HTTP:
 *
 * - storage classes: remembers the x-amz-storage-class of PUT, multipart uploads and copies, and reports it
 *   in HEAD (x-amz-storage-class) and in listings (<StorageClass>, rewritten in the upstream's XML);
 * - Glacier restores: a GET of an object in GLACIER or DEEP_ARCHIVE answers 403 InvalidObjectState until a
 *   restore was requested (POST ?restore: 202, then 409 RestoreAlreadyInProgress) AND the test completed
 *   it with `completeRestores()`; HEAD reports x-amz-restore (`ongoing-request="true"`, then
 *   `ongoing-request="false", expiry-date="..."`);
 * - Object Lock: buckets created with x-amz-bucket-object-lock-enabled (or named in `enableObjectLock`)
 *   answer GET ?object-lock, PUT/GET ?retention and ?legal-hold; a DELETE or overwrite of an object under
 *   retention or a legal hold is refused with 403 AccessDenied; other buckets answer
 *   ObjectLockConfigurationNotFoundError / InvalidRequest like AWS;
 * - conditional writes (`conditionalWrites`, default on): PUT and CompleteMultipartUpload with
 *   `If-None-Match: *` answer 412 PreconditionFailed when the key exists (checked upstream with a HEAD while
 *   every write to that key waits), as AWS does; s3rver alone ignores the header.
 *
 * Every other request is forwarded unchanged (same method, path, query, Host and signed headers), so the
 * upstream still verifies SigV4; requests the gateway answers itself are not signature-checked. Path-style
 * addressing only. `log` records each request with the class the object had, so tests can assert that an
 * operation never touched a cold object; `hold` lines up concurrent requests.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3'
import type { S3TestServer } from './s3-server.js'

const ARCHIVE_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE'])
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'expect', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer'])

/** One request the gateway saw. */
export interface GatewayLogEntry {
  method: string
  bucket: string
  /** The object key ('' for bucket requests). */
  key: string
  /** The subresource (`restore`, `retention`, `legal-hold`, `object-lock`, `uploads`, `uploadId`, `list-type`...), '' for none. */
  subresource: string
  /** The object's class as the gateway knew it when the request arrived (undefined: no object known). */
  objectClass?: string
  status: number
  /** `gateway`: answered here; `upstream`: forwarded. */
  by: 'gateway' | 'upstream'
}

interface ObjectState {
  storageClass: string
  restore: 'none' | 'requested' | 'completed'
  restoreDays?: number
  restoreTier?: string
  restoredUntil?: Date
  retention?: { mode: string; until: Date }
  legalHold: boolean
}

/** Options of `startGateway`. */
export interface GatewayOptions {
  /** Honour `If-None-Match: *` on PUT and CompleteMultipartUpload (AWS does). Default true. */
  conditionalWrites?: boolean
}

/** A running gateway: an S3TestServer (same credentials as the upstream) plus the test controls. */
export interface S3Gateway extends S3TestServer {
  /** Every request seen, in arrival order. */
  readonly log: GatewayLogEntry[]
  /** Completes every requested restore (readable for the requested days). Returns how many. */
  completeRestores(): number
  /** Turns Object Lock on for a bucket (as if it had been created with it). */
  enableObjectLock(bucket: string): void
  /** What the gateway knows of one object (undefined: nothing). */
  objectState(bucket: string, key: string): Readonly<ObjectState> | undefined
  /**
   * Holds every request `matches` accepts (before anything is done with it) until `release()`, so a test
   * can line up concurrent requests deterministically. `held(n)` resolves once n requests are waiting.
   */
  hold(matches: (e: GatewayLogEntry) => boolean): { held(n: number): Promise<void>; release(): void }
}

interface Hold {
  matches: (e: GatewayLogEntry) => boolean
  waiting: number
  gate: Promise<void>
  onArrive: () => void
}

/** Starts a gateway in front of `upstream` on a free port; stopped in `t.teardown`. */
export async function startGateway(t: Test, upstream: S3TestServer, options: GatewayOptions = {}): Promise<S3Gateway> {
  const conditional = options.conditionalWrites ?? true
  const upstreamUrl = new URL(upstream.endpoint)
  const objects = new Map<string, ObjectState>()
  const lockedBuckets = new Set<string>()
  const uploads = new Map<string, string>() // uploadId → storage class
  const keyLocks = new Map<string, Promise<void>>()
  const log: GatewayLogEntry[] = []
  const holds: Hold[] = []
  const client = new S3Client({
    endpoint: upstream.endpoint, region: upstream.region, forcePathStyle: true, maxAttempts: 1,
    credentials: { accessKeyId: upstream.accessKeyId, secretAccessKey: upstream.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  })
  t.teardown(() => client.destroy())

  const existsUpstream = async (bucket: string, key: string): Promise<boolean> => {
    try {
      await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
      return true
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false
      throw err
    }
  }

  /** Runs `fn` while no other write to `id` runs. */
  const withKeyLock = async <T>(id: string, fn: () => Promise<T>): Promise<T> => {
    const prev = keyLocks.get(id) ?? Promise.resolve()
    let release = (): void => undefined
    const mine = new Promise<void>((r) => {
      release = r
    })
    const chained = prev.then(() => mine)
    keyLocks.set(id, chained)
    await prev
    try {
      return await fn()
    } finally {
      release()
      if (keyLocks.get(id) === chained) keyLocks.delete(id)
    }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://gateway')
    const [bucketPart = '', ...keyParts] = url.pathname.replace(/^\//, '').split('/')
    const bucket = decodeURIComponent(bucketPart)
    const key = keyParts.map((p) => decodeURIComponent(p)).join('/')
    const id = `${bucket}/${key}`
    const q = url.searchParams
    const subresource = subresourceOf(q)
    const method = req.method ?? 'GET'
    const state = key ? objects.get(id) : undefined
    const entry: GatewayLogEntry = { method, bucket, key, subresource, objectClass: state?.storageClass, status: 0, by: 'gateway' }
    log.push(entry)
    for (const h of holds) {
      if (!h.matches(entry)) continue
      h.waiting++
      h.onArrive()
      await h.gate
    }
    const answer = (status: number, body = '', headers: Record<string, string> = {}): void => {
      entry.status = status
      entry.by = 'gateway'
      const payload = method === 'HEAD' ? '' : body
      res.writeHead(status, { 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(payload)), ...headers })
      res.end(payload)
    }
    const error = (status: number, code: string, message: string, extra = ''): void => {
      answer(status, `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>${extra}<RequestId>gateway</RequestId></Error>`)
    }
    const locked = (s: ObjectState | undefined): boolean => s !== undefined && (s.legalHold || (s.retention !== undefined && s.retention.until.getTime() > Date.now()))

    /** Forwards the request unchanged; `onResponse` may rewrite a buffered response body. */
    const forward = (o: { body?: Buffer; rewrite?: (status: number, body: Buffer) => Buffer; after?: (status: number, headers: IncomingHttpHeaders, body?: Buffer) => void; headers?: (h: IncomingHttpHeaders) => void } = {}): Promise<void> =>
      new Promise((resolve, reject) => {
        const headers: Record<string, string | string[]> = {}
        for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v
        const up = httpRequest({ host: upstreamUrl.hostname, port: upstreamUrl.port, method, path: req.url, headers }, (ures) => {
          const status = ures.statusCode ?? 502
          entry.status = status
          entry.by = 'upstream'
          const outHeaders: IncomingHttpHeaders = {}
          for (const [k, v] of Object.entries(ures.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) outHeaders[k] = v
          if (o.rewrite || o.after) {
            const chunks: Buffer[] = []
            ures.on('data', (d: Buffer) => chunks.push(d))
            ures.on('error', reject)
            ures.on('end', () => {
              let body: Buffer = Buffer.concat(chunks)
              if (o.rewrite) body = o.rewrite(status, body)
              o.after?.(status, ures.headers, body)
              o.headers?.(outHeaders)
              if (method !== 'HEAD') outHeaders['content-length'] = String(body.length)
              res.writeHead(status, outHeaders)
              res.end(method === 'HEAD' ? undefined : body)
              resolve()
            })
          } else {
            o.headers?.(outHeaders)
            res.writeHead(status, outHeaders)
            ures.pipe(res)
            ures.on('end', resolve)
            ures.on('error', reject)
          }
        })
        up.on('error', reject)
        if (o.body !== undefined) up.end(o.body)
        else req.pipe(up)
      })

    // --- bucket requests
    if (!key) {
      if (method === 'PUT' && subresource === '' && String(req.headers['x-amz-bucket-object-lock-enabled'] ?? '').toLowerCase() === 'true') {
        return forward({ after: (status) => status === 200 && void lockedBuckets.add(bucket) })
      }
      if (method === 'GET' && subresource === 'object-lock') {
        await readBody(req)
        if (!lockedBuckets.has(bucket)) return error(404, 'ObjectLockConfigurationNotFoundError', 'Object Lock configuration does not exist for this bucket')
        return answer(200, '<?xml version="1.0" encoding="UTF-8"?>\n<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>')
      }
      if (method === 'GET' && (subresource === '' || subresource === 'list-type')) {
        return forward({ rewrite: (status, body) => (status === 200 ? rewriteListing(body, bucket, objects) : body) })
      }
      return forward()
    }

    // --- object requests answered here
    if (subresource === 'retention' || subresource === 'legal-hold') {
      const body = (await readBody(req)).toString('utf8')
      if (!lockedBuckets.has(bucket)) return error(400, 'InvalidRequest', 'Bucket is missing Object Lock Configuration')
      if (!(await existsUpstream(bucket, key))) return error(404, 'NoSuchKey', 'The specified key does not exist.')
      const s = objects.get(id) ?? newState(objects, id)
      if (method === 'PUT' && subresource === 'retention') {
        const mode = tag(body, 'Mode')
        const until = new Date(tag(body, 'RetainUntilDate') ?? '')
        if ((mode !== 'COMPLIANCE' && mode !== 'GOVERNANCE') || Number.isNaN(until.getTime())) return error(400, 'MalformedXML', 'bad retention')
        if (s.retention && s.retention.mode === 'COMPLIANCE' && s.retention.until.getTime() > Date.now() && until < s.retention.until) {
          return error(403, 'AccessDenied', 'Access Denied because object protected by object lock.')
        }
        s.retention = { mode, until }
        return answer(200)
      }
      if (method === 'PUT') {
        s.legalHold = tag(body, 'Status') === 'ON'
        return answer(200)
      }
      if (subresource === 'retention') {
        if (!s.retention) return error(404, 'NoSuchObjectLockConfiguration', 'The specified object does not have a ObjectLock configuration')
        return answer(200, `<?xml version="1.0" encoding="UTF-8"?>\n<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>${s.retention.mode}</Mode><RetainUntilDate>${s.retention.until.toISOString()}</RetainUntilDate></Retention>`)
      }
      return answer(200, `<?xml version="1.0" encoding="UTF-8"?>\n<LegalHold xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>${s.legalHold ? 'ON' : 'OFF'}</Status></LegalHold>`)
    }
    if (method === 'POST' && subresource === 'restore') {
      const body = (await readBody(req)).toString('utf8')
      if (!state && !(await existsUpstream(bucket, key))) return error(404, 'NoSuchKey', 'The specified key does not exist.')
      const s = state ?? newState(objects, id)
      if (!ARCHIVE_CLASSES.has(s.storageClass)) return error(403, 'InvalidObjectState', 'Restore is not allowed for the object\'s current storage class', `<StorageClass>${s.storageClass}</StorageClass>`)
      if (s.restore === 'requested') return error(409, 'RestoreAlreadyInProgress', 'Object restore is already in progress')
      if (s.restore === 'completed') return answer(200)
      s.restore = 'requested'
      s.restoreDays = Number(tag(body, 'Days') ?? '1')
      s.restoreTier = tag(body, 'Tier') ?? 'Standard'
      return answer(202)
    }
    if (method === 'GET' && subresource === '' && state && ARCHIVE_CLASSES.has(state.storageClass) && state.restore !== 'completed') {
      return error(403, 'InvalidObjectState', 'The operation is not valid for the object\'s storage class', `<StorageClass>${state.storageClass}</StorageClass>`)
    }
    if (method === 'DELETE' && subresource === '') {
      return withKeyLock(id, async () => {
        if (locked(objects.get(id))) return error(403, 'AccessDenied', 'Access Denied because object protected by object lock.')
        await forward({ after: (status) => status < 300 && void objects.delete(id) })
      })
    }
    if (method === 'HEAD' && subresource === '') {
      return forward({
        headers: (h) => {
          const s = objects.get(id)
          if (!s || entry.status !== 200) return
          delete h['x-amz-storage-class']
          if (s.storageClass !== 'STANDARD') h['x-amz-storage-class'] = s.storageClass
          if (s.restore === 'requested') h['x-amz-restore'] = 'ongoing-request="true"'
          if (s.restore === 'completed') h['x-amz-restore'] = `ongoing-request="false", expiry-date="${(s.restoredUntil ?? new Date()).toUTCString()}"`
        },
      })
    }
    const ifNoneMatch = req.headers['if-none-match'] === '*'
    if (method === 'PUT' && subresource === '') {
      const storageClass = String(req.headers['x-amz-storage-class'] ?? 'STANDARD')
      return withKeyLock(id, async () => {
        if (locked(objects.get(id))) {
          await readBody(req)
          return error(403, 'AccessDenied', 'Access Denied because object protected by object lock.')
        }
        if (conditional && ifNoneMatch && (await existsUpstream(bucket, key))) {
          await readBody(req)
          return error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', '<Condition>If-None-Match</Condition>')
        }
        await forward({ after: (status) => status === 200 && void objects.set(id, { storageClass, restore: 'none', legalHold: false }) })
      })
    }
    if (method === 'POST' && subresource === 'uploads') {
      const storageClass = String(req.headers['x-amz-storage-class'] ?? 'STANDARD')
      return forward({
        after: (status, _h, body) => {
          const uploadId = body ? tag(body.toString('utf8'), 'UploadId') : undefined
          if (status === 200 && uploadId) uploads.set(uploadId, storageClass)
        },
      })
    }
    if (method === 'POST' && subresource === 'uploadId') {
      const uploadId = q.get('uploadId') ?? ''
      return withKeyLock(id, async () => {
        if (locked(objects.get(id))) {
          await readBody(req)
          return error(403, 'AccessDenied', 'Access Denied because object protected by object lock.')
        }
        if (conditional && ifNoneMatch && (await existsUpstream(bucket, key))) {
          await readBody(req)
          return error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', '<Condition>If-None-Match</Condition>')
        }
        await forward({
          after: (status, _h, body) => {
            if (status === 200 && body && !body.toString('utf8').includes('<Error>')) {
              objects.set(id, { storageClass: uploads.get(uploadId) ?? 'STANDARD', restore: 'none', legalHold: false })
              uploads.delete(uploadId)
            }
          },
        })
      })
    }
    return forward()
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/xml' })
        res.end(`<Error><Code>InternalError</Code><Message>gateway: ${String(err).replace(/[<>&]/g, '')}</Message></Error>`)
      } else res.destroy()
    })
  })
  const sockets = new Set<import('node:net').Socket>()
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy()
    server.close(() => resolve())
  }))
  const port = (server.address() as AddressInfo).port
  const endpoint = `http://127.0.0.1:${port}`
  return {
    kind: `gateway(${upstream.kind})`,
    endpoint,
    region: upstream.region,
    accessKeyId: upstream.accessKeyId,
    secretAccessKey: upstream.secretAccessKey,
    createBucket: (name) => upstream.createBucket(name),
    env: () => upstream.env(),
    url: (bucket, prefix = '') => `s3://${bucket}${prefix ? `/${prefix}` : ''}?endpoint=${endpoint}&path_style=true&region=${upstream.region}`,
    log,
    completeRestores() {
      let n = 0
      for (const s of objects.values()) {
        if (s.restore !== 'requested') continue
        s.restore = 'completed'
        s.restoredUntil = new Date(Date.now() + (s.restoreDays ?? 1) * 86_400_000)
        n++
      }
      return n
    },
    enableObjectLock(bucket) {
      lockedBuckets.add(bucket)
    },
    objectState: (bucket, key) => objects.get(`${bucket}/${key}`),
    hold(matches) {
      let open = (): void => undefined
      const gate = new Promise<void>((r) => {
        open = r
      })
      const waiters: { n: number; resolve: () => void }[] = []
      const h: Hold = {
        matches,
        waiting: 0,
        gate,
        onArrive: () => {
          for (const w of waiters.filter((x) => h.waiting >= x.n)) {
            waiters.splice(waiters.indexOf(w), 1)
            w.resolve()
          }
        },
      }
      holds.push(h)
      return {
        held: (n) => (h.waiting >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }))),
        release: () => {
          holds.splice(holds.indexOf(h), 1)
          open()
        },
      }
    },
  }
}

/** Query parameters that are not subresources (list options, the SDK's x-id, part numbers). */
const PARAMS = new Set(['x-id', 'prefix', 'continuation-token', 'max-keys', 'delimiter', 'start-after', 'encoding-type', 'fetch-owner', 'versionId', 'partNumber', 'marker'])

/** The request's subresource: `restore`, `retention`, `uploads`, `uploadId`, `list-type`, `tagging`..., or ''. */
function subresourceOf(q: URLSearchParams): string {
  const keys = [...q.keys()]
  if (keys.includes('uploadId')) return 'uploadId'
  return keys.find((k) => !PARAMS.has(k)) ?? ''
}

function newState(objects: Map<string, ObjectState>, id: string): ObjectState {
  const s: ObjectState = { storageClass: 'STANDARD', restore: 'none', legalHold: false }
  objects.set(id, s)
  return s
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** The text of the first `<name>` element of `xml`. */
function tag(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)
  return m ? m[1] : undefined
}

/** Replaces each listed object's <StorageClass> with the class the gateway remembered for it. */
function rewriteListing(body: Buffer, bucket: string, objects: Map<string, ObjectState>): Buffer {
  const xml = body.toString('utf8')
  const out = xml.replace(/<Contents>([\s\S]*?)<\/Contents>/g, (whole, inner: string) => {
    const key = tag(inner, 'Key')
    const s = key === undefined ? undefined : objects.get(`${bucket}/${unescapeXml(key)}`)
    if (!s) return whole
    const replaced = /<StorageClass>[^<]*<\/StorageClass>/.test(inner)
      ? inner.replace(/<StorageClass>[^<]*<\/StorageClass>/, `<StorageClass>${s.storageClass}</StorageClass>`)
      : `${inner}<StorageClass>${s.storageClass}</StorageClass>`
    return `<Contents>${replaced}</Contents>`
  })
  return Buffer.from(out, 'utf8')
}

function unescapeXml(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&')
}
