/**
 * remote/s3/: a Remote on an S3 bucket (AWS, or a compatible store through `endpoint`; `b2://` is Backblaze
 * B2's S3-compatible API). Objects are keys under the URL's prefix. Data packs (`data/`) go to the data
 * storage class, everything else to the hot class; archived packs are restored through `archive`, and
 * freezes are protected with S3 Object Lock through `protection`.
 *
 * The only folder that imports @aws-sdk/client-s3 and @aws-sdk/lib-storage; registry.ts loads it with
 * import(). Imports from the engine only ../remote.js, ../registry.js and ../../errors.js.
 *
 * Retries are not done here: the SDK's are turned off (maxAttempts 1) because the registry's wrapper
 * retries transient RemoteErrors for every network kind alike.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import * as fs from 'node:fs/promises'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import {
  CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, GetObjectLegalHoldCommand, GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, PutObjectLegalHoldCommand,
  PutObjectRetentionCommand, RestoreObjectCommand, S3Client, type BucketLocationConstraint, type S3ClientConfig, type StorageClass,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { ArchivedError, ConfigError, ExistsError, NotFoundError, RemoteError, UsageError } from '../../errors.js'
import type { KindContext } from '../registry.js'
import type {
  ArchiveAccess, ArchiveState, ByteRange, ObjectInfo, ObjectProtection, ProtectionRequest, PutOptions, Remote, RemoteProperties, RetrievalTier,
} from '../remote.js'
import { DATA_PREFIX, assertObjectName } from '../remote.js'
import { RESTORE_CLASSES, resolveCredentials, type S3Config } from './config.js'

export { parseConfig, resolveCredentials } from './config.js'
export type { ConditionalWrites, CredentialSource, S3Config, S3Provider } from './config.js'

/** How exclusive puts are made on this server (see `S3Remote.put`). */
export type ExclusiveMode = 'conditional' | 'check-then-put'

const LIST_PREFIX = /^([A-Za-z0-9._-]+\/)*[A-Za-z0-9._-]*$/
const NAME = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/
const TIERS: readonly RetrievalTier[] = ['Expedited', 'Standard', 'Bulk']

/**
 * How long a check-then-put waits between its PUT and its read-back. A rival writer whose HEAD came before
 * our PUT lands its own PUT one round trip later; waiting this long lets that PUT land before we read, so
 * that we see it and give way. Exclusive puts are rare (the config at init, one audit claim per command),
 * so the wait costs little.
 */
export const CHECK_THEN_PUT_SETTLE_MS = 300

/** Error codes (or HTTP statuses) worth retrying: throttling, server-side trouble, dropped connections. */
const TRANSIENT_NAMES = new Set([
  'SlowDown', 'Throttling', 'ThrottlingException', 'ThrottledException', 'RequestThrottled', 'RequestThrottledException', 'TooManyRequests',
  'TooManyRequestsException', 'RequestLimitExceeded', 'BandwidthLimitExceeded', 'ProvisionedThroughputExceededException', 'InternalError',
  'ServiceUnavailable', 'RequestTimeout', 'RequestTimeoutException', 'TimeoutError', 'OperationAborted', 'ConditionalRequestConflict',
  'EC2ThrottledException', 'PriorRequestNotComplete',
])
const TRANSIENT_ERRNO = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN',
  'EHOSTDOWN', 'UND_ERR_SOCKET', 'ERR_STREAM_PREMATURE_CLOSE',
])

/**
 * A Remote on an S3 bucket.
 *
 * - `put` is one PutObject (atomic on S3: readers see the old object or the whole new one). With
 *   `exclusive` it is a conditional write (`If-None-Match: *`) on servers that honour it (AWS S3, and any
 *   server that answers a probe correctly); on servers that do not (OpenStack Swift's s3api answers 501,
 *   s3rver and others ignore the header) it is a check-then-put: HEAD, PUT, wait `CHECK_THEN_PUT_SETTLE_MS`,
 *   read back and compare, which catches a concurrent writer that overwrote ours; only a writer whose PUT
 *   lands more than that wait after its HEAD (a stalled request) can slip past.
 * - `putFile` streams a local file with lib-storage: one PUT up to `part_size`, multipart above it. An
 *   interrupted upload is aborted (its parts deleted) and redone whole by the caller's retry.
 * - `get` of an object in GLACIER or DEEP_ARCHIVE that was not restored rejects with ArchivedError.
 * - `delete` of a missing object resolves (S3 answers 204 either way).
 */
export class S3Remote implements Remote {
  readonly properties: RemoteProperties
  readonly archive: ArchiveAccess
  readonly protection: ObjectProtection
  readonly config: S3Config
  /** The region requests are signed for (from the settings, the environment or the profile). */
  readonly region: string
  private readonly client: S3Client
  private readonly agents: { destroy(): void }[]
  private exclusiveMode: Promise<ExclusiveMode> | undefined
  private objectLock: Promise<void> | undefined

  private constructor(config: S3Config, region: string, client: S3Client, agents: { destroy(): void }[]) {
    this.config = config
    this.region = region
    this.client = client
    this.agents = agents
    this.properties = {
      location: `${config.scheme}://${config.bucket}/${config.prefix}${config.endpoint && config.scheme !== 'b2' ? ` at ${config.endpoint}` : ''}`,
      maxConnections: config.maxConnections,
    }
    this.archive = {
      provider: config.provider,
      dataClass: config.dataClass,
      hotClass: config.hotClass,
      dataNeedsRestore: RESTORE_CLASSES.has(config.dataClass),
      state: (name) => this.archiveState(name),
      requestRestore: (name, options) => this.requestRestore(name, options),
    }
    this.protection = {
      mechanism: `S3 Object Lock, ${config.objectLockMode} mode (retention periods) and legal holds`,
      enforcedByRemote: true,
      protect: (names, request) => this.protect(names, request),
      isProtected: (name) => this.isProtected(name),
    }
  }

  /**
   * Opens the bucket location of `config` with credentials from `ctx.env` (see `resolveCredentials`).
   * Does no I/O unless `ctx.create` is set: then it checks the bucket and creates it when missing.
   *
   * @throws ConfigError for unusable credentials settings.
   * @throws RemoteError when the bucket cannot be checked or created (`create` only).
   */
  static async open(config: S3Config, ctx: KindContext): Promise<S3Remote> {
    const source = resolveCredentials(config, ctx.env)
    const region = config.region ?? (ctx.env.AWS_REGION || ctx.env.AWS_DEFAULT_REGION || undefined) ?? ('region' in source ? source.region : undefined) ?? 'us-east-1'
    const agentOptions = { keepAlive: true, maxSockets: config.maxConnections }
    const httpAgent = new HttpAgent(agentOptions)
    const httpsAgent = new HttpsAgent(agentOptions)
    const options: S3ClientConfig = {
      region,
      endpoint: config.endpoint,
      forcePathStyle: config.pathStyle,
      // The wrapper retries (transient RemoteErrors only); SDK retries would multiply its attempts.
      maxAttempts: 1,
      // With the defaults (WHEN_SUPPORTED) streamed bodies are sent aws-chunked with trailing CRCs, which
      // several compatible servers store verbatim (framing bytes in the object) or reject.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      followRegionRedirects: config.provider === 'aws-s3',
      requestHandler: { httpAgent, httpsAgent, connectionTimeout: 15_000, requestTimeout: 120_000 },
    }
    if (source.kind === 'static') options.credentials = { ...source.credentials }
    // Profiles with roles, SSO or credential processes, and instance roles: only the SDK's own providers
    // implement those. They read the shared files and variables from process.env, which is the same
    // environment the CLI passes as ctx.env.
    else if (source.kind === 'sdk-profile') options.profile = source.profile
    const client = new S3Client(options)
    addContentMd5(client)
    const remote = new S3Remote(config, region, client, [httpAgent, httpsAgent])
    if (ctx.create) {
      try {
        await remote.ensureBucket(region)
      } catch (err) {
        await remote.close()
        throw err
      }
    }
    return remote
  }

  private key(name: string): string {
    return this.config.prefix + name
  }

  /** The storage class header for `name`, or undefined for STANDARD (sent as no header, which every server accepts). */
  private classOf(name: string): StorageClass | undefined {
    const c = name.startsWith(DATA_PREFIX) ? this.config.dataClass : this.config.hotClass
    return c === 'STANDARD' ? undefined : (c as StorageClass)
  }

  /**
   * Stores `data` as `name` with one PutObject (Content-MD5 checked by the server).
   *
   * @throws TypeError for an invalid name.
   * @throws ExistsError when `exclusive` is set and the name exists.
   * @throws RemoteError (transient for throttling, 5xx and connection failures).
   */
  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertObjectName(name)
    const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    if (options.exclusive === true) return this.putExclusive(name, body)
    await this.putObject(name, body, false)
  }

  private async putObject(name: string, body: Buffer, conditional: boolean): Promise<void> {
    const md5 = createHash('md5').update(body).digest('base64')
    try {
      await this.client.send(new PutObjectCommand({
        Bucket: this.config.bucket, Key: this.key(name), Body: body, ContentLength: body.length, ContentMD5: md5,
        StorageClass: this.classOf(name), ...(conditional ? { IfNoneMatch: '*' } : {}),
      }))
    } catch (err) {
      if (conditional && codeOf(err) === 'PreconditionFailed') throw new ExistsError(name, `${name} already exists in ${this.properties.location}`)
      throw this.mapError(err, 'put', name)
    }
  }

  private async putExclusive(name: string, body: Buffer): Promise<void> {
    if ((await this.exclusivePutMode()) === 'conditional') {
      try {
        return await this.putObject(name, body, true)
      } catch (err) {
        // The probe said yes but the server refused this one (a proxy in between, a changed server).
        if (!(err instanceof RemoteError) || !isNotImplemented(err.cause)) throw err
        this.exclusiveMode = Promise.resolve('check-then-put')
      }
    }
    await this.checkThenPut(name, body)
  }

  /**
   * Exclusive put for servers without conditional writes: fails when the name exists, writes, then reads
   * the object back after `CHECK_THEN_PUT_SETTLE_MS`; other bytes there mean a concurrent writer overwrote
   * ours (it won; we report ExistsError). Both writers succeed only if one's PUT lands more than the wait
   * after our PUT although its HEAD came before it: a request stalled that long. The wait narrows the race
   * to that; only a server with conditional writes closes it.
   */
  private async checkThenPut(name: string, body: Buffer): Promise<void> {
    const exists = await this.stat(name).then(() => true, (err: unknown) => {
      if (err instanceof NotFoundError) return false
      throw err
    })
    if (exists) throw new ExistsError(name, `${name} already exists in ${this.properties.location}`)
    await this.putObject(name, body, false)
    await new Promise((r) => setTimeout(r, CHECK_THEN_PUT_SETTLE_MS))
    const back = await this.get(name).catch((err: unknown) => {
      if (err instanceof NotFoundError) return undefined // deleted since: someone else is managing this name
      throw err
    })
    if (!back || !back.equals(body)) throw new ExistsError(name, `${name} was written by another writer at the same time in ${this.properties.location}`)
  }

  /**
   * How exclusive puts are made here, decided once per remote: `conditional_writes=on` or AWS S3 (which
   * honours If-None-Match since 2024) → conditional; `off` → check-then-put; `auto` elsewhere → a probe
   * on a scratch key outside the object namespace: an unconditional PUT, then a conditional one, which a
   * server honouring the header refuses with 412 (then DELETE of the scratch key).
   */
  exclusivePutMode(): Promise<ExclusiveMode> {
    if (this.exclusiveMode) return this.exclusiveMode
    const c = this.config.conditionalWrites
    if (c === 'on' || (c === 'auto' && this.config.provider === 'aws-s3')) this.exclusiveMode = Promise.resolve('conditional')
    else if (c === 'off') this.exclusiveMode = Promise.resolve('check-then-put')
    else {
      const p = this.probeConditionalWrites()
      this.exclusiveMode = p
      p.catch(() => {
        if (this.exclusiveMode === p) this.exclusiveMode = undefined // a failed probe is tried again next time
      })
    }
    return this.exclusiveMode
  }

  private async probeConditionalWrites(): Promise<ExclusiveMode> {
    // '~' is not allowed in object names, so list() never yields this key.
    const Key = `${this.config.prefix}coldstore~probe~${randomBytes(8).toString('hex')}`
    const Bucket = this.config.bucket
    try {
      await this.client.send(new PutObjectCommand({ Bucket, Key, Body: Buffer.from('probe'), ContentLength: 5 })).catch((err: unknown) => {
        throw this.mapError(err, 'probe conditional writes (put)', Key)
      })
      try {
        await this.client.send(new PutObjectCommand({ Bucket, Key, Body: Buffer.from('probe'), ContentLength: 5, IfNoneMatch: '*' }))
        return 'check-then-put' // accepted over an existing key: the header is ignored
      } catch (err) {
        if (codeOf(err) === 'PreconditionFailed') return 'conditional'
        if (isNotImplemented(err)) return 'check-then-put'
        throw this.mapError(err, 'probe conditional writes', Key)
      }
    } finally {
      await this.client.send(new DeleteObjectCommand({ Bucket, Key })).catch(() => undefined)
    }
  }

  /**
   * Uploads the file at `path` as `name`: lib-storage's Upload, one PUT up to `part_size` and a multipart
   * upload above it (parts of a failed upload are aborted). Exclusive uploads are conditional on servers
   * that honour it (the PUT or the CompleteMultipartUpload carries If-None-Match); elsewhere the file is
   * read and put with `put`'s check-then-put.
   *
   * @throws ExistsError, RemoteError as `put`; RemoteError (not transient) when the file cannot be read.
   */
  async putFile(name: string, path: string, options: PutOptions = {}): Promise<void> {
    assertObjectName(name)
    let size: number
    try {
      size = (await fs.stat(path)).size
    } catch (err) {
      throw new RemoteError(`cannot read ${path} to upload it as ${name}: ${(err as Error).message}`, { transient: false, objectName: name }, { cause: err })
    }
    const exclusive = options.exclusive === true
    if (exclusive && (await this.exclusivePutMode()) === 'check-then-put') {
      return this.checkThenPut(name, await fs.readFile(path))
    }
    const stream = createReadStream(path)
    let readError: unknown
    stream.on('error', (err) => {
      readError = err
    })
    const upload = new Upload({
      client: this.client,
      partSize: this.config.partSizeBytes,
      queueSize: 4,
      leavePartsOnError: false,
      params: {
        Bucket: this.config.bucket, Key: this.key(name), Body: stream, ContentLength: size, StorageClass: this.classOf(name),
        ...(exclusive ? { IfNoneMatch: '*' } : {}),
      },
    })
    try {
      await upload.done()
    } catch (err) {
      if (readError !== undefined) {
        throw new RemoteError(`cannot read ${path} to upload it as ${name}: ${(readError as Error).message}`, { transient: false, objectName: name }, { cause: readError })
      }
      if (exclusive && codeOf(err) === 'PreconditionFailed') throw new ExistsError(name, `${name} already exists in ${this.properties.location}`)
      throw this.mapError(err, 'upload', name)
    } finally {
      stream.destroy()
    }
  }

  /**
   * Reads an object, or `range.length` bytes from `range.offset` (a short read at the end; empty at or
   * past the end, where S3 itself answers 416).
   *
   * @throws TypeError for an invalid name or range.
   * @throws NotFoundError when the object does not exist.
   * @throws ArchivedError when it is in GLACIER / DEEP_ARCHIVE and not restored.
   * @throws RemoteError for other failures (transient for throttling, 5xx, resets, timeouts, truncated bodies).
   */
  async get(name: string, range?: ByteRange): Promise<Buffer> {
    assertObjectName(name)
    if (range !== undefined) {
      assertRange(range)
      if (range.length === 0) {
        await this.stat(name) // still NotFoundError for a missing object
        return Buffer.alloc(0)
      }
    }
    const end = range === undefined ? 0 : Math.min(range.offset + range.length - 1, Number.MAX_SAFE_INTEGER)
    try {
      const out = await this.client.send(new GetObjectCommand({
        Bucket: this.config.bucket, Key: this.key(name), Range: range === undefined ? undefined : `bytes=${range.offset}-${end}`,
      }))
      if (!out.Body) throw new RemoteError(`get ${name}: the response had no body`, { transient: true, objectName: name })
      const bytes = await out.Body.transformToByteArray()
      if (out.ContentLength !== undefined && bytes.byteLength !== out.ContentLength) {
        throw new RemoteError(`get ${name}: the response was cut short (${bytes.byteLength} of ${out.ContentLength} bytes)`, { transient: true, objectName: name })
      }
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    } catch (err) {
      if (err instanceof RemoteError) throw err
      const code = codeOf(err)
      if (range !== undefined && (code === 'InvalidRange' || statusOf(err) === 416)) return Buffer.alloc(0)
      if (code === 'InvalidObjectState') throw await this.archivedError(name, err)
      throw this.mapError(err, 'get', name)
    }
  }

  private async archivedError(name: string, err: unknown): Promise<ArchivedError> {
    const fromError = (err as { StorageClass?: string }).StorageClass
    const st = await this.archiveState(name).catch(() => undefined)
    return new ArchivedError(name, { storageClass: st?.storageClass ?? fromError ?? this.config.dataClass, restoring: st?.restore === 'in-progress' }, { cause: err })
  }

  /**
   * Size and storage class of an object (HeadObject; no x-amz-storage-class header means STANDARD).
   *
   * @throws TypeError for an invalid name.
   * @throws NotFoundError when the object does not exist.
   * @throws RemoteError for other failures.
   */
  async stat(name: string): Promise<ObjectInfo> {
    assertObjectName(name)
    const out = await this.head(name)
    return { name, size: out.ContentLength ?? 0, storageClass: out.StorageClass ?? 'STANDARD' }
  }

  private async head(name: string): Promise<{ ContentLength?: number; StorageClass?: string; Restore?: string; ArchiveStatus?: string }> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: this.key(name) }))
    } catch (err) {
      throw this.mapError(err, 'stat', name)
    }
  }

  /**
   * Yields every object whose name starts with `prefix` (ListObjectsV2, 1000 keys a page), with its size
   * and storage class as listed. Keys under the remote's prefix that are not valid object names (folder
   * markers, scratch keys) are skipped.
   *
   * @throws TypeError for a prefix no valid name can start with.
   * @throws RemoteError for failures.
   */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    if (!LIST_PREFIX.test(prefix)) throw new TypeError(`invalid list prefix: ${JSON.stringify(prefix)}`)
    let token: string | undefined
    do {
      let page
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: this.config.prefix + prefix, ContinuationToken: token }))
      } catch (err) {
        throw this.mapError(err, 'list', prefix)
      }
      for (const c of page.Contents ?? []) {
        if (c.Key === undefined || !c.Key.startsWith(this.config.prefix)) continue
        const name = c.Key.slice(this.config.prefix.length)
        if (!isObjectName(name)) continue
        yield { name, size: c.Size ?? 0, storageClass: c.StorageClass ?? 'STANDARD' }
      }
      if (page.IsTruncated && !page.NextContinuationToken) throw new RemoteError(`list ${prefix}: a truncated page without a continuation token`, { transient: true })
      token = page.IsTruncated ? page.NextContinuationToken : undefined
    } while (token !== undefined)
  }

  /**
   * Deletes an object (DeleteObject). Deleting a missing object resolves. In a versioned bucket (every
   * bucket with Object Lock is one) this adds a delete marker; older versions stay until a lifecycle rule
   * removes them, and a version under retention or legal hold cannot be removed at all.
   *
   * @throws TypeError for an invalid name.
   * @throws RemoteError for failures (AccessDenied also when Object Lock refuses).
   */
  async delete(name: string): Promise<void> {
    assertObjectName(name)
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: this.key(name) }))
    } catch (err) {
      const mapped = this.mapError(err, 'delete', name)
      if (mapped instanceof NotFoundError) return
      throw mapped
    }
  }

  /** Destroys the client and its sockets. */
  async close(): Promise<void> {
    this.client.destroy()
    for (const a of this.agents) a.destroy()
  }

  /** For `init`: HeadBucket; a missing bucket is created (in `region`). */
  private async ensureBucket(region: string): Promise<void> {
    const Bucket = this.config.bucket
    try {
      await this.client.send(new HeadBucketCommand({ Bucket }))
      return
    } catch (err) {
      const code = codeOf(err)
      if (!(statusOf(err) === 404 || code === 'NotFound' || code === 'NoSuchBucket')) throw this.mapError(err, 'check bucket', Bucket)
    }
    try {
      const constraint = region === 'us-east-1' ? undefined : { LocationConstraint: region as BucketLocationConstraint }
      await this.client.send(new CreateBucketCommand({ Bucket, CreateBucketConfiguration: constraint }))
    } catch (err) {
      if (codeOf(err) === 'BucketAlreadyOwnedByYou') return
      if (codeOf(err) === 'BucketAlreadyExists') throw new ConfigError(`bucket ${Bucket} is taken by another account: choose another bucket name`, { cause: err })
      throw this.mapError(err, 'create bucket', Bucket)
    }
  }

  private async archiveState(name: string): Promise<ArchiveState> {
    assertObjectName(name)
    const out = await this.head(name)
    const storageClass = out.StorageClass ?? 'STANDARD'
    // Intelligent-Tiering objects in its opt-in archive tiers need a restore too (x-amz-archive-status).
    const archived = RESTORE_CLASSES.has(storageClass) || (storageClass === 'INTELLIGENT_TIERING' && out.ArchiveStatus !== undefined)
    const restore = parseRestore(out.Restore)
    if (!archived) return { storageClass, readable: true, restore: restore.state === 'restored' ? 'restored' : 'none' }
    return {
      storageClass,
      readable: restore.state === 'restored',
      restore: restore.state,
      ...(restore.until ? { restoredUntil: restore.until } : {}),
    }
  }

  private async requestRestore(name: string, options: { tier: RetrievalTier; days: number }): Promise<void> {
    assertObjectName(name)
    if (!TIERS.includes(options.tier)) throw new UsageError(`unknown retrieval tier ${JSON.stringify(options.tier)} (Expedited, Standard or Bulk)`)
    if (!Number.isInteger(options.days) || options.days < 1) throw new UsageError(`restore days must be a whole number of at least 1, got ${options.days}`)
    const st = await this.archiveState(name)
    if (st.readable || st.restore !== 'none') return
    if (st.storageClass === 'DEEP_ARCHIVE' && options.tier === 'Expedited') {
      throw new UsageError(`${name} is in DEEP_ARCHIVE, which has no Expedited retrieval: use Standard (about 12 h) or Bulk (about 48 h)`)
    }
    const RestoreRequest = st.storageClass === 'INTELLIGENT_TIERING' ? {} : { Days: options.days, GlacierJobParameters: { Tier: options.tier } }
    try {
      await this.client.send(new RestoreObjectCommand({ Bucket: this.config.bucket, Key: this.key(name), RestoreRequest }))
    } catch (err) {
      if (codeOf(err) === 'RestoreAlreadyInProgress') return
      throw this.mapError(err, 'request restore of', name)
    }
  }

  /** Checks once that the bucket has Object Lock enabled (else protect would silently do nothing useful). */
  private ensureObjectLock(): Promise<void> {
    if (this.objectLock) return this.objectLock
    const p = (async () => {
      const Bucket = this.config.bucket
      const noLock = `bucket ${Bucket} does not have S3 Object Lock enabled, so objects cannot be protected: Object Lock can only be turned on for a bucket at creation (or by AWS support); use a bucket created with Object Lock, or freeze without a retention period or legal hold`
      try {
        const out = await this.client.send(new GetObjectLockConfigurationCommand({ Bucket }))
        if (out.ObjectLockConfiguration?.ObjectLockEnabled !== 'Enabled') throw new ConfigError(noLock)
      } catch (err) {
        if (err instanceof ConfigError) throw err
        const code = codeOf(err)
        if (code === 'ObjectLockConfigurationNotFoundError' || code === 'ObjectLockConfigurationNotFound') throw new ConfigError(noLock, { cause: err })
        if (isNotImplemented(err)) throw new ConfigError(`the server at ${this.config.endpoint ?? 'AWS'} does not implement S3 Object Lock, so objects in ${Bucket} cannot be protected`, { cause: err })
        throw this.mapError(err, 'read the Object Lock configuration of', Bucket)
      }
    })()
    this.objectLock = p
    p.catch(() => {
      if (this.objectLock === p) this.objectLock = undefined
    })
    return p
  }

  private async protect(names: readonly string[], request: ProtectionRequest): Promise<void> {
    for (const name of names) assertObjectName(name)
    if (request.retainUntil === null && !request.legalHold) return
    await this.ensureObjectLock()
    const Bucket = this.config.bucket
    const one = async (name: string): Promise<void> => {
      const Key = this.key(name)
      if (request.retainUntil !== null) {
        const current = await this.retention(name)
        // Retention only ever grows: an equal or later date already there is what was asked (idempotent).
        if (!(current && current.until >= request.retainUntil && (current.mode === this.config.objectLockMode || current.mode === 'COMPLIANCE'))) {
          try {
            await this.client.send(new PutObjectRetentionCommand({ Bucket, Key, Retention: { Mode: this.config.objectLockMode, RetainUntilDate: request.retainUntil } }))
          } catch (err) {
            throw this.mapError(err, 'set retention on', name)
          }
        }
      }
      if (request.legalHold) {
        try {
          await this.client.send(new PutObjectLegalHoldCommand({ Bucket, Key, LegalHold: { Status: 'ON' } }))
        } catch (err) {
          throw this.mapError(err, 'set a legal hold on', name)
        }
      }
    }
    await forEachLimit(names, this.config.maxConnections, one)
  }

  /** The object's retention, or undefined when it has none. */
  private async retention(name: string): Promise<{ mode: string; until: Date } | undefined> {
    try {
      const out = await this.client.send(new GetObjectRetentionCommand({ Bucket: this.config.bucket, Key: this.key(name) }))
      const r = out.Retention
      return r?.Mode && r.RetainUntilDate ? { mode: r.Mode, until: new Date(r.RetainUntilDate) } : undefined
    } catch (err) {
      if (codeOf(err) === 'NoSuchObjectLockConfiguration') return undefined
      throw this.mapError(err, 'read the retention of', name)
    }
  }

  private async isProtected(name: string): Promise<boolean> {
    assertObjectName(name)
    try {
      await this.ensureObjectLock()
    } catch (err) {
      if (err instanceof ConfigError) return false // no Object Lock: nothing here can be protected
      throw err
    }
    const r = await this.retention(name)
    if (r && r.until.getTime() > Date.now()) return true
    try {
      const out = await this.client.send(new GetObjectLegalHoldCommand({ Bucket: this.config.bucket, Key: this.key(name) }))
      return out.LegalHold?.Status === 'ON'
    } catch (err) {
      if (codeOf(err) === 'NoSuchObjectLockConfiguration') return false
      throw this.mapError(err, 'read the legal hold of', name)
    }
  }

  /** Translates an SDK or network error into the engine's errors; never puts credentials in the message. */
  private mapError(err: unknown, op: string, name: string): Error {
    if (err instanceof RemoteError || err instanceof NotFoundError || err instanceof ConfigError || err instanceof ExistsError || err instanceof ArchivedError) return err
    const code = codeOf(err)
    const status = statusOf(err)
    const where = `${this.properties.location}`
    const fields = { objectName: name }
    const fail = (message: string, transient: boolean): RemoteError => new RemoteError(`${op} ${name || "''"} in ${where}: ${message}`, { transient, ...fields }, { cause: err })
    if (code === 'NoSuchKey' || code === 'NotFound' || code === 'NoSuchVersion' || (status === 404 && code !== 'NoSuchBucket' && code !== 'NoSuchUpload')) {
      return new NotFoundError(name, `${name} not found in ${where}`, { cause: err })
    }
    if (code === 'NoSuchBucket') return fail(`bucket ${this.config.bucket} does not exist${this.config.endpoint ? ` at ${this.config.endpoint}` : ''}: check the bucket name, the region and the endpoint (coldstore init creates a missing bucket)`, false)
    if (code === 'InvalidAccessKeyId') return fail(`the access key is not known to the server: check the access key (${this.keyVars()})`, false)
    if (code === 'SignatureDoesNotMatch') return fail(`the request signature does not match: check the access key and secret key (${this.keyVars()}) and the region (${this.region})`, false)
    if (code === 'ExpiredToken' || code === 'TokenRefreshRequired' || code === 'InvalidToken') return fail('the session token is expired or invalid: refresh the credentials (AWS_SESSION_TOKEN or the profile)', false)
    if (code === 'RequestTimeTooSkewed') return fail('this machine\'s clock differs too much from the server\'s: fix the system time', false)
    if (code === 'AccessDenied' || code === 'Forbidden' || code === 'AllAccessDisabled' || status === 403) {
      return fail(`access denied: check that the credentials (${this.keyVars()}) may ${op.split(' ')[0]} objects in bucket ${this.config.bucket}${op === 'delete' || op === 'put' || op === 'upload' ? ', and whether Object Lock protects this object' : ''}`, false)
    }
    if (code === 'PermanentRedirect' || code === 'AuthorizationHeaderMalformed' || code === 'IllegalLocationConstraintException' || status === 301) {
      return fail(`the bucket is in another region than ${this.region}: set region`, false)
    }
    if (code === 'InvalidStorageClass') return fail(`the server does not accept this storage class (storage_class=${this.config.dataClass}, hot_storage_class=${this.config.hotClass})`, false)
    if (code === 'CredentialsProviderError' || (err as { name?: string }).name === 'CredentialsProviderError') {
      return new ConfigError(`no AWS credentials found for ${where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE`, { cause: err })
    }
    if (isNotImplemented(err)) return fail(`the server does not implement this request (${code ?? status})`, false)
    if (code !== undefined && TRANSIENT_NAMES.has(code)) return fail(`${code}${status ? ` (HTTP ${status})` : ''}`, true)
    if (status === 429 || (status !== undefined && status >= 500)) return fail(`${code ?? 'server error'} (HTTP ${status})`, true)
    const errno = (err as { code?: unknown }).code
    if (errno === 'ENOTFOUND') return fail(`cannot resolve the host of ${this.config.endpoint ?? 'S3'}: check endpoint (and region)`, false)
    if (typeof errno === 'string' && TRANSIENT_ERRNO.has(errno)) return fail(`${errno} talking to ${this.config.endpoint ?? 'S3'}`, true)
    if ((err as { name?: string }).name === 'AbortError') return fail('the request was aborted', true)
    const message = err instanceof Error ? err.message : String(err)
    return fail(`${code ?? 'error'}${status ? ` (HTTP ${status})` : ''}: ${message}`, false)
  }

  private keyVars(): string {
    return this.config.scheme === 'b2' ? 'B2_APPLICATION_KEY_ID / B2_APPLICATION_KEY' : 'AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile'
  }
}

/** The S3 error code (the SDK puts it in `name`), if the error came from the service. */
function codeOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const e = err as { name?: unknown; Code?: unknown; $metadata?: unknown }
  if (typeof e.Code === 'string') return e.Code
  if (e.$metadata !== undefined && typeof e.name === 'string') return e.name
  if (e.name === 'TimeoutError' || e.name === 'CredentialsProviderError') return e.name
  return undefined
}

function statusOf(err: unknown): number | undefined {
  const m = (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata
  return m?.httpStatusCode
}

function isNotImplemented(err: unknown): boolean {
  return codeOf(err) === 'NotImplemented' || statusOf(err) === 501
}

function isObjectName(name: string): boolean {
  return NAME.test(name) && !name.split('/').some((s) => s === '.' || s === '..')
}

function assertRange(range: ByteRange): void {
  if (!Number.isSafeInteger(range.offset) || range.offset < 0 || !Number.isSafeInteger(range.length) || range.length < 0) {
    throw new TypeError(`invalid range: ${JSON.stringify(range)}`)
  }
}

/** The x-amz-restore header: `ongoing-request="true"`, or `ongoing-request="false", expiry-date="<RFC 1123>"`. */
export function parseRestore(header: string | undefined): { state: ArchiveState['restore']; until?: Date } {
  if (!header) return { state: 'none' }
  if (/ongoing-request\s*=\s*"true"/i.test(header)) return { state: 'in-progress' }
  if (/ongoing-request\s*=\s*"false"/i.test(header)) {
    const m = /expiry-date\s*=\s*"([^"]+)"/i.exec(header)
    const until = m ? new Date(m[1]) : undefined
    return { state: 'restored', ...(until && !Number.isNaN(until.getTime()) ? { until } : {}) }
  }
  return { state: 'none' }
}

/** Runs `fn` over `items`, at most `limit` at a time; rejects with the first failure after the started ones settle. */
async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  let failure: { err: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]
      try {
        await fn(item)
      } catch (err) {
        failure ??= { err }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (failure) throw failure.err
}

const MD5_COMMANDS = new Set(['DeleteObjectsCommand', 'PutObjectRetentionCommand', 'PutObjectLegalHoldCommand', 'PutObjectLockConfigurationCommand'])

/**
 * Adds Content-MD5 to the requests S3 requires an integrity header on. The SDK now sends a CRC32 header
 * there instead, which AWS accepts but stricter compatible servers (MinIO, Ceph, B2) refuse.
 */
function addContentMd5(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown }
      if (MD5_COMMANDS.has(context.commandName ?? '') && request.headers && !Object.keys(request.headers).some((h) => h.toLowerCase() === 'content-md5')) {
        const body = request.body
        if (typeof body === 'string' || body instanceof Uint8Array) request.headers['content-md5'] = createHash('md5').update(body).digest('base64')
        else if (body === undefined) request.headers['content-md5'] = createHash('md5').update('').digest('base64')
      }
      return next(args)
    },
    { step: 'build', name: 'coldstoreContentMd5', override: true },
  )
}
