/**
 * remote/gcs/: a Remote on Google Cloud Storage (`gs://bucket/prefix`) through @google-cloud/storage 7 (8.x
 * needs Node 22). Object `name` is stored as `<prefix>/<name>` in the bucket.
 *
 * Imports the SDK (only this folder does; registry.ts loads this module with import()), node builtins,
 * ../remote.js, ../registry.js (setting helpers) and ../../errors.js. No retries here: the client's own
 * are turned off, because the wrappers (engine/remote/wrappers/) retry transient errors for every kind, and
 * two layers of retries multiply.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import * as fs from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { pipeline } from 'node:stream/promises'
import { ApiError, Storage, type Bucket, type File, type FileMetadata } from '@google-cloud/storage'
import { ConfigError, ExistsError, NotFoundError, RemoteError } from '../../errors.js'
import type { KindContext, RemoteSettings } from '../registry.js'
import { describeRemoteUrl, mergeSettings, settingNumber, settingString } from '../registry.js'
import type {
  ArchiveAccess, ArchiveState, ByteRange, ObjectInfo, ObjectProtection, ProtectionRequest, PutOptions, Remote, RemoteProperties, RetrievalTier,
} from '../remote.js'
import { DATA_PREFIX, assertObjectName } from '../remote.js'

/** Classes GCS offers for new objects. All of them are readable at once (no restore step). */
export const GCS_CLASSES = ['STANDARD', 'NEARLINE', 'COLDLINE', 'ARCHIVE'] as const
export type GcsStorageClass = (typeof GCS_CLASSES)[number]

/** Configuration of a GcsRemote, as returned by `parseConfig`. */
export interface GcsConfig {
  /** The URL without query (for messages). */
  readonly url: string
  readonly bucket: string
  /** Prefix of every object name in the bucket: '' or segments ending with '/' (`backups/host1/`). */
  readonly prefix: string
  /** API endpoint (`endpoint` setting), e.g. `http://127.0.0.1:4443` for an emulator; default Google's. */
  readonly endpoint?: string
  /** Project for creating the bucket at `init` (`project_id`). */
  readonly projectId?: string
  /** Class of data packs, objects under DATA_PREFIX (`storage_class`, default STANDARD). */
  readonly dataClass: GcsStorageClass
  /** Class of every other object (`hot_storage_class`, default STANDARD). */
  readonly hotClass: GcsStorageClass
  /** Mode of the object retention set by `protection.protect` (`retention_mode`: unlocked (default) or locked). */
  readonly retentionMode: 'Unlocked' | 'Locked'
  /** Location of a bucket created at `init` (`location`, default GCS's: US). */
  readonly location?: string
  /** Bytes per request of a resumable upload (`chunk_size`, a multiple of 256 KiB, default 8 MiB). */
  readonly chunkSizeBytes: number
  /** Files of at least this size go up as resumable uploads, smaller ones in one multipart request (`resumable_threshold`, default 8 MiB). */
  readonly resumableThresholdBytes: number
  /** Objects per listing request (`list_page_size`, 1 to 1000, default 1000). */
  readonly listPageSize: number
}

const KiB = 1024
const MiB = 1024 * KiB
const CHUNK_UNIT = 256 * KiB
const SEGMENT = /^[A-Za-z0-9._-]+$/
/** Bucket names: 3-63 characters (up to 222 with dots), lower-case letters, digits, '-', '_', '.'. */
const BUCKET = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/
/** Resumable sessions remembered for resuming a failed putFile (each is a few hundred bytes). */
const MAX_SESSIONS = 256
/** Objects protect() works on at once. */
const PROTECT_CONCURRENCY = 8

function storageClassSetting(settings: RemoteSettings, key: string): GcsStorageClass {
  const v = settingString(settings, key)
  if (v === undefined) return 'STANDARD'
  const upper = v.toUpperCase()
  const found = GCS_CLASSES.find((c) => c === upper)
  if (!found) throw new ConfigError(`gs remote setting ${key}: ${JSON.stringify(v)} is not a GCS storage class (${GCS_CLASSES.join(', ')})`)
  return found
}

/**
 * Parses `gs://bucket[/prefix][?key=value...]` with `settings` (config keys of a named remote; URL query
 * parameters win): `endpoint`, `project_id`, `storage_class`, `hot_storage_class`, `retention_mode`,
 * `location`, `chunk_size`, `resumable_threshold`, `list_page_size`. Other keys are left to other layers
 * (wrappers). Does no I/O.
 *
 * @throws ConfigError for another scheme, a missing or invalid bucket name, credentials in the URL, a prefix
 *   with empty, `.` or `..` segments or characters outside [A-Za-z0-9._-], or an invalid setting.
 */
export function parseConfig(url: string, settings: RemoteSettings = {}): GcsConfig {
  const m = /^gs:\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/i.exec(url)
  if (!m) throw new ConfigError(`gs remote: not a gs:// URL: ${describeRemoteUrl(url)}`)
  const [, bucket, path, , hash] = m
  const shown = describeRemoteUrl(url)
  if (bucket.includes('@') || bucket.includes(':')) {
    throw new ConfigError(`gs remote: ${shown}: credentials do not belong in the URL (use GOOGLE_APPLICATION_CREDENTIALS)`)
  }
  if (!BUCKET.test(bucket) || bucket.includes('..')) throw new ConfigError(`gs remote: ${shown}: invalid bucket name ${JSON.stringify(bucket)}`)
  if (hash !== undefined) throw new ConfigError(`gs remote: ${shown}: a URL fragment is not allowed`)
  let decoded: string
  try {
    decoded = decodeURIComponent(path)
  } catch (err) {
    throw new ConfigError(`gs remote: ${shown}: invalid percent-escape in the prefix`, { cause: err })
  }
  const trimmed = decoded.replace(/^\/+/, '').replace(/\/+$/, '')
  const segments = trimmed === '' ? [] : trimmed.split('/')
  for (const s of segments) {
    if (!SEGMENT.test(s) || s === '.' || s === '..') {
      throw new ConfigError(`gs remote: ${shown}: prefix segment ${JSON.stringify(s)} must be made of A-Z a-z 0-9 . _ - (and not be . or ..)`)
    }
  }
  const all = mergeSettings(url, settings)
  const endpoint = settingString(all, 'endpoint')
  if (endpoint !== undefined && !/^https?:\/\/[^/?#]+\/?$/i.test(endpoint)) {
    throw new ConfigError(`gs remote setting endpoint: expected http(s)://host[:port], got ${JSON.stringify(endpoint)}`)
  }
  const mode = (settingString(all, 'retention_mode') ?? 'unlocked').toLowerCase()
  if (mode !== 'unlocked' && mode !== 'locked') throw new ConfigError(`gs remote setting retention_mode: expected unlocked or locked, got ${JSON.stringify(mode)}`)
  const chunkSizeBytes = settingNumber(all, 'chunk_size', 8 * MiB)
  if (!Number.isSafeInteger(chunkSizeBytes) || chunkSizeBytes <= 0 || chunkSizeBytes % CHUNK_UNIT !== 0) {
    throw new ConfigError(`gs remote setting chunk_size: expected a positive multiple of 262144 (256 KiB), got ${chunkSizeBytes}`)
  }
  const resumableThresholdBytes = settingNumber(all, 'resumable_threshold', 8 * MiB)
  if (!Number.isSafeInteger(resumableThresholdBytes) || resumableThresholdBytes < 1) {
    throw new ConfigError(`gs remote setting resumable_threshold: expected a positive number of bytes, got ${resumableThresholdBytes}`)
  }
  const listPageSize = settingNumber(all, 'list_page_size', 1000)
  if (!Number.isSafeInteger(listPageSize) || listPageSize < 1 || listPageSize > 1000) {
    throw new ConfigError(`gs remote setting list_page_size: expected 1 to 1000, got ${listPageSize}`)
  }
  return {
    url: `gs://${bucket}${segments.length ? `/${segments.join('/')}` : ''}`,
    bucket,
    prefix: segments.length ? `${segments.join('/')}/` : '',
    endpoint: endpoint?.replace(/\/+$/, ''),
    projectId: settingString(all, 'project_id'),
    dataClass: storageClassSetting(all, 'storage_class'),
    hotClass: storageClassSetting(all, 'hot_storage_class'),
    retentionMode: mode === 'locked' ? 'Locked' : 'Unlocked',
    location: settingString(all, 'location'),
    chunkSizeBytes,
    resumableThresholdBytes,
    listPageSize,
  }
}

// -----------------------------------------------------------------------------------------------------
// Errors.

type Loose = Record<string, unknown>

function isLoose(v: unknown): v is Loose {
  return typeof v === 'object' && v !== null
}

/** The HTTP status of an SDK error: ApiError.code, a resumable upload's `code`, gaxios' `status`/`response.status`. */
function statusOf(err: unknown): number | undefined {
  if (!isLoose(err)) return undefined
  if (typeof err.code === 'number') return err.code
  if (typeof err.status === 'number') return err.status
  const r = err.response
  if (isLoose(r)) {
    if (typeof r.status === 'number') return r.status
    if (typeof r.statusCode === 'number') return r.statusCode
  }
  return undefined
}

/** A network-level error code (ECONNRESET...) or the client's own code (CONTENT_DOWNLOAD_MISMATCH...). */
function netCodeOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; isLoose(e) && depth < 4; e = e.cause ?? e.error, depth++) {
    if (typeof e.code === 'string' && e.code !== '') return e.code
    if (typeof e.errno === 'string' && e.errno !== '') return e.errno
    if (e.type === 'request-timeout' || e.type === 'body-timeout') return 'ETIMEDOUT'
  }
  return undefined
}

/** The server's message from a JSON error body, wherever the SDK put it. Never a URL (session URIs are secrets). */
function serverMessage(err: unknown): string | undefined {
  if (!isLoose(err)) return undefined
  const first = Array.isArray(err.errors) ? err.errors[0] : undefined
  if (isLoose(first) && typeof first.message === 'string' && !(first instanceof Error)) return first.message
  // A resumable upload's failure keeps the response body in errors[0].
  if (isLoose(first) && isLoose(first.error) && typeof first.error.message === 'string') return first.error.message
  const data = isLoose(err.response) ? err.response.data : undefined
  if (isLoose(data) && isLoose(data.error) && typeof data.error.message === 'string') return data.error.message
  if (typeof err.message === 'string' && err.message.startsWith('{')) {
    try {
      const body: unknown = JSON.parse(err.message)
      if (isLoose(body) && isLoose(body.error) && typeof body.error.message === 'string') return body.error.message
    } catch {
      // not a JSON body
    }
  }
  if (err instanceof ApiError && err.message !== '' && !/https?:\/\//.test(err.message)) return err.message
  return undefined
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'ENETDOWN',
  'EHOSTUNREACH', 'EHOSTDOWN', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  // The client's checksum checks: the bytes were damaged on the way, a new attempt may get them whole.
  'CONTENT_DOWNLOAD_MISMATCH', 'FILE_NO_UPLOAD',
])

/** Operations where a 404 means the object is missing (elsewhere it means the bucket is). */
const READS = new Set(['get', 'stat', 'protect', 'isProtected'])

/** A message from an error that is neither HTTP nor network (the auth library's), without anything key-like. */
function plainMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  const line = text.split('\n')[0].replace(/-----BEGIN[\s\S]*$/, '[key material removed]').replace(/"private_key[^,}]*/g, '"private_key…')
  return line.length > 300 ? `${line.slice(0, 300)}…` : line
}

// -----------------------------------------------------------------------------------------------------

function md5Base64(data: Uint8Array): string {
  return createHash('md5').update(data).digest('base64')
}

async function md5File(path: string): Promise<string> {
  const hash = createHash('md5')
  for await (const chunk of createReadStream(path, { highWaterMark: MiB })) hash.update(chunk as Buffer)
  return hash.digest('base64')
}

function assertRange(range: ByteRange): void {
  if (!Number.isSafeInteger(range.offset) || range.offset < 0 || !Number.isSafeInteger(range.length) || range.length < 0) {
    throw new TypeError(`invalid byte range: offset ${range.offset}, length ${range.length}`)
  }
}

/** What a resumable session's status query found. */
type SessionState = { state: 'incomplete' } | { state: 'complete'; md5Hash?: string } | { state: 'gone' }

/**
 * A Remote on a GCS bucket.
 *
 * - `put` and `putFile` never replace an object: every upload carries the `ifGenerationMatch=0`
 *   precondition, so an existing name answers 412. For an exclusive put that is ExistsError; otherwise the
 *   existing object's MD5 is compared with ours: the same bytes resolve (a retried put that had landed,
 *   or another host storing the same pack), different bytes reject with ExistsError (the contract allows
 *   it; callers are content-addressed). Not replacing also means an object in a cold class is never
 *   overwritten (GCS bills early deletion for that) and a held object never refuses a put.
 * - Uploads carry the MD5 in their metadata: GCS checks it and creates no object when the bytes differ.
 *   `putFile` of a file of at least `resumableThresholdBytes` is a resumable upload in chunks of
 *   `chunkSizeBytes` (one request each, 308 between them); when it fails with a transient error, the
 *   session URI is kept (in memory), and the next `putFile` of the same file and name (the retry wrapper's)
 *   asks GCS how many bytes it has and sends only the rest. Smaller files and `put` are one multipart request.
 * - Objects under DATA_PREFIX get `dataClass`, all others `hotClass`; both are set explicitly, so the
 *   bucket's default class does not matter. Every GCS class is readable at once: `get` never raises
 *   ArchivedError (NEARLINE/COLDLINE/ARCHIVE cost more per read, which the cost model accounts for).
 * - The client's own retries are off (see the module comment).
 */
export class GcsRemote implements Remote {
  readonly properties: RemoteProperties
  readonly archive: ArchiveAccess
  readonly protection: ObjectProtection
  /** The parsed configuration. */
  readonly config: GcsConfig
  private readonly storage: Storage
  private readonly bucket: Bucket
  /** Resumable sessions of failed putFile calls, by name, path, size, mtime and MD5 of the file. */
  private readonly sessions = new Map<string, string>()

  private constructor(config: GcsConfig, storage: Storage) {
    this.config = config
    this.storage = storage
    this.bucket = storage.bucket(config.bucket)
    this.properties = { location: config.url, maxConnections: 8 }
    this.archive = {
      provider: 'gcs',
      dataClass: config.dataClass,
      hotClass: config.hotClass,
      dataNeedsRestore: false,
      state: (name) => this.archiveState(name),
      requestRestore: async (name: string, _options: { tier: RetrievalTier; days: number }) => {
        // GCS classes need no restore: reads work at once.
        assertObjectName(name)
      },
    }
    this.protection = {
      mechanism: `GCS object holds (a temporary hold for a legal hold) and object retention (${config.retentionMode} mode)`,
      enforcedByRemote: true,
      protect: (names, request) => this.protect(names, request),
      isProtected: (name) => this.isProtected(name),
    }
  }

  /**
   * Opens the bucket of `config`: builds the client (credentials: `ctx.env.GOOGLE_APPLICATION_CREDENTIALS`,
   * a service-account key file, else the client's application default credentials), then lists one object
   * to check the bucket and the credentials. With `ctx.create` a missing bucket is created (needs
   * `project_id`; object retention enabled on it, so freezes can be protected).
   *
   * @throws ConfigError when the key file cannot be read, or a bucket must be created without project_id.
   * @throws NotFoundError when the bucket does not exist and `ctx.create` is not set.
   * @throws RemoteError for refused credentials (not transient) or an unreachable service (transient).
   */
  static async open(config: GcsConfig, ctx: KindContext): Promise<GcsRemote> {
    const keyFilename = ctx.env.GOOGLE_APPLICATION_CREDENTIALS || undefined
    if (keyFilename !== undefined) {
      try {
        await fs.access(keyFilename, fs.constants.R_OK)
      } catch (err) {
        throw new ConfigError(`gs remote: GOOGLE_APPLICATION_CREDENTIALS names ${keyFilename}, which cannot be read (it should be a service-account key file)`, { cause: err })
      }
    }
    const storage = new Storage({
      ...(config.endpoint !== undefined ? { apiEndpoint: config.endpoint } : {}),
      ...(config.projectId !== undefined ? { projectId: config.projectId } : {}),
      ...(keyFilename !== undefined ? { keyFilename } : {}),
      // Retries belong to the wrappers: none here (maxRetries 0 alone is taken as "default" by the client).
      retryOptions: { autoRetry: false, maxRetries: 0, retryableErrorFn: () => false },
      userAgent: 'coldstore',
    })
    const remote = new GcsRemote(config, storage)
    await remote.probe(ctx.create)
    return remote
  }

  private key(name: string): string {
    return this.config.prefix + name
  }

  private file(name: string): File {
    return this.bucket.file(this.key(name))
  }

  private classOf(name: string): GcsStorageClass {
    return name.startsWith(DATA_PREFIX) ? this.config.dataClass : this.config.hotClass
  }

  /** Translates an SDK error of `operation` on `name` into the engine's errors (the original as `cause`). */
  private mapError(err: unknown, operation: string, name: string): Error {
    if (err instanceof TypeError || err instanceof NotFoundError || err instanceof ExistsError || err instanceof RemoteError || err instanceof ConfigError) return err
    const where = `${this.config.url}: ${operation}${name ? ` ${name}` : ''}`
    const status = statusOf(err)
    const said = serverMessage(err)
    const detail = said ? `: ${said}` : ''
    if (status !== undefined) {
      if (status === 404) {
        // A missing object only where one is read; elsewhere a 404 is the bucket's.
        if (READS.has(operation)) return new NotFoundError(name || this.config.url, `${where}: not found (HTTP 404${detail})`, { cause: err })
        return new RemoteError(`${where}: bucket ${this.config.bucket} not found (HTTP 404${detail})`, { transient: false, objectName: name || undefined }, { cause: err })
      }
      if (status === 401) {
        return new RemoteError(
          `${where}: GCS rejected the credentials (HTTP 401${detail}). Check GOOGLE_APPLICATION_CREDENTIALS (a service-account key file) or the application default credentials (gcloud auth application-default login).`,
          { transient: false, objectName: name || undefined },
          { cause: err },
        )
      }
      if (status === 403) {
        return new RemoteError(
          `${where}: access denied (HTTP 403${detail}). Check that the account has object access on bucket ${this.config.bucket} (roles/storage.objectUser; roles/storage.objectAdmin to set holds and retention on freezes), and whether the object is under a hold or retention.`,
          { transient: false, objectName: name || undefined },
          { cause: err },
        )
      }
      const transient = status === 408 || status === 429 || status >= 500
      return new RemoteError(`${where} failed (HTTP ${status}${detail})`, { transient, objectName: name || undefined }, { cause: err })
    }
    const code = netCodeOf(err)
    if (code !== undefined) {
      if (code === 'ENOTFOUND' && this.config.endpoint !== undefined) {
        return new RemoteError(`${where}: cannot resolve the host of endpoint ${this.config.endpoint} (ENOTFOUND): check the endpoint setting`, { transient: false, objectName: name || undefined }, { cause: err })
      }
      const transient = TRANSIENT_CODES.has(code) || code === 'ENOTFOUND'
      return new RemoteError(`${where} failed (${code})`, { transient, objectName: name || undefined }, { cause: err })
    }
    return new RemoteError(
      `${where} failed: ${plainMessage(err)}. If this is about credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run gcloud auth application-default login.`,
      { transient: false, objectName: name || undefined },
      { cause: err },
    )
  }

  /** Lists at most one object: checks bucket and credentials; creates the bucket when asked. */
  private async probe(create: boolean): Promise<void> {
    try {
      await this.bucket.getFiles({ prefix: this.config.prefix, maxResults: 1, autoPaginate: false, fields: 'items(name),nextPageToken' })
      return
    } catch (err) {
      if (statusOf(err) !== 404) throw this.mapError(err, 'open', '')
      if (!create) {
        throw new NotFoundError(this.config.url, `${this.config.url}: bucket ${this.config.bucket} does not exist (coldstore init creates it when project_id is set)`, { cause: err })
      }
    }
    if (this.config.projectId === undefined) {
      throw new ConfigError(`${this.config.url}: bucket ${this.config.bucket} does not exist; to create it, set project_id (the Google Cloud project it belongs to), or create it first`)
    }
    try {
      await this.storage.createBucket(this.config.bucket, {
        storageClass: 'STANDARD',
        enableObjectRetention: true,
        ...(this.config.location !== undefined ? { location: this.config.location } : {}),
      })
    } catch (err) {
      // 409: it exists after all (created meanwhile), which is what we wanted.
      if (statusOf(err) !== 409) throw this.mapError(err, 'create bucket', '')
    }
  }

  /**
   * Stores `data` as `name` in one multipart request, never replacing an object (see the class comment).
   * @throws ExistsError when the name exists (exclusive), or exists with other bytes.
   */
  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertObjectName(name)
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    const md5Hash = md5Base64(bytes)
    try {
      await this.file(name).save(bytes, {
        resumable: false,
        validation: 'crc32c',
        metadata: { contentType: 'application/octet-stream', storageClass: this.classOf(name), md5Hash },
        preconditionOpts: { ifGenerationMatch: 0 },
      })
    } catch (err) {
      if (statusOf(err) === 412) return this.existing(name, md5Hash, options.exclusive === true, err)
      throw this.mapError(err, 'put', name)
    }
  }

  /** After a 412 on upload: resolves when `name` holds the bytes with `md5Hash` (and the put was not exclusive). */
  private async existing(name: string, md5Hash: string, exclusive: boolean, cause: unknown): Promise<void> {
    if (exclusive) throw new ExistsError(name, `${this.config.url}: ${name} already exists`, { cause })
    let metadata: FileMetadata
    try {
      ;[metadata] = await this.file(name).getMetadata()
    } catch (err) {
      if (statusOf(err) === 404) {
        // Deleted between our upload and this check: the next attempt will find the name free.
        throw new RemoteError(`${this.config.url}: put ${name}: the object changed while it was being stored; try again`, { transient: true, objectName: name }, { cause: err })
      }
      throw this.mapError(err, 'put', name)
    }
    if (metadata.md5Hash === md5Hash) return
    throw new ExistsError(name, `${this.config.url}: ${name} already exists with other content (it is never replaced)`, { cause })
  }

  /**
   * Stores the file at `path` as `name`: a multipart request below `resumableThresholdBytes`, else a
   * resumable upload in chunks, resumed by the next call after a transient failure. Same guarantees as put.
   */
  async putFile(name: string, path: string, options: PutOptions = {}): Promise<void> {
    assertObjectName(name)
    let size: number
    let mtimeMs: number
    try {
      ;({ size, mtimeMs } = await fs.stat(path))
    } catch (err) {
      throw new RemoteError(`${this.config.url}: putFile ${name}: cannot read ${path}`, { transient: false, objectName: name }, { cause: err })
    }
    if (size < this.config.resumableThresholdBytes) {
      const data = await fs.readFile(path)
      return this.put(name, data, options)
    }
    const md5Hash = await md5File(path)
    const key = `${name}\n${path}\n${size}\n${mtimeMs}\n${md5Hash}`
    let uri = this.sessions.get(key)
    if (uri !== undefined) {
      const status = await this.sessionState(uri, name)
      if (status.state === 'complete') {
        this.sessions.delete(key)
        // The last chunk landed but its answer was lost; the object is ours if it has our bytes.
        if (status.md5Hash === md5Hash) return
        return this.existing(name, md5Hash, options.exclusive === true, null)
      }
      if (status.state === 'gone') {
        this.sessions.delete(key)
        uri = undefined
      }
    }
    try {
      await this.resumableUpload(name, path, size, md5Hash, uri, (created) => this.remember(key, created))
      this.sessions.delete(key)
    } catch (err) {
      const status = statusOf(err)
      const mapped = status === 412 ? null : this.mapError(err, 'putFile', name)
      if (!(mapped instanceof RemoteError && mapped.transient)) this.sessions.delete(key)
      if (mapped === null) return this.existing(name, md5Hash, options.exclusive === true, err)
      throw mapped
    }
  }

  private remember(key: string, uri: string): void {
    this.sessions.delete(key)
    this.sessions.set(key, uri)
    while (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string)
  }

  private async resumableUpload(name: string, path: string, size: number, md5Hash: string, uri: string | undefined, onUri: (uri: string) => void): Promise<void> {
    const ws = this.file(name).createWriteStream({
      resumable: true,
      chunkSize: this.config.chunkSizeBytes,
      validation: 'crc32c',
      // The object's metadata; contentLength becomes X-Upload-Content-Length.
      metadata: { contentType: 'application/octet-stream', storageClass: this.classOf(name), md5Hash, contentLength: size },
      preconditionOpts: { ifGenerationMatch: 0 },
      ...(uri !== undefined ? { uri } : {}),
    })
    ws.on('uri', (created: string) => onUri(created))
    // The whole file again when resuming: the client asks GCS for its offset and skips what it has.
    await pipeline(createReadStream(path, { highWaterMark: MiB }), ws)
  }

  /** Asks GCS what a resumable session has (`PUT` with `Content-Range: bytes * /*`; the URI is its own credential). */
  private sessionState(uri: string, name: string): Promise<SessionState> {
    return new Promise((resolve, reject) => {
      const request = uri.startsWith('https:') ? httpsRequest : httpRequest
      const req = request(uri, { method: 'PUT', headers: { 'content-length': '0', 'content-range': 'bytes */*' } }, (res) => {
        const parts: Buffer[] = []
        res.on('data', (d: Buffer) => parts.push(d))
        res.on('error', (err) => reject(this.mapError(err, 'putFile', name)))
        res.on('end', () => {
          const status = res.statusCode ?? 0
          if (status === 308) return resolve({ state: 'incomplete' })
          if (status === 404 || status === 410) return resolve({ state: 'gone' })
          let body: unknown
          try {
            body = JSON.parse(Buffer.concat(parts).toString('utf8'))
          } catch {
            body = undefined
          }
          if (status === 200 || status === 201) {
            return resolve({ state: 'complete', md5Hash: isLoose(body) && typeof body.md5Hash === 'string' ? body.md5Hash : undefined })
          }
          reject(this.mapError({ code: status, response: { data: body } }, 'putFile', name))
        })
      })
      req.on('error', (err) => reject(this.mapError(err, 'putFile', name)))
      req.end()
    })
  }

  /**
   * Reads `name`, or `range` of it (a short read past the end; an empty buffer at or past the end).
   * Whole reads are checked against the object's CRC32C by the client; ranged reads cannot be (GCS sends
   * the whole object's hashes), the pack format checks those bytes itself.
   */
  async get(name: string, range?: ByteRange): Promise<Buffer> {
    assertObjectName(name)
    if (range === undefined) {
      try {
        const [data] = await this.file(name).download()
        return data
      } catch (err) {
        throw this.mapError(err, 'get', name)
      }
    }
    assertRange(range)
    if (range.length === 0) {
      await this.stat(name) // a missing object is still NotFoundError
      return Buffer.alloc(0)
    }
    // The client sends `bytes=start-end` (end inclusive) and refuses hash validation on ranges; an end
    // past any real size is left open (`bytes=start-`).
    const last = range.offset + range.length - 1
    const end = Number.isSafeInteger(last) && last < 2 ** 52 ? last : undefined
    try {
      const [data] = await this.file(name).download({ start: range.offset, ...(end !== undefined ? { end } : {}), validation: false })
      // A server that ignored Range sent the whole object.
      return data.length > range.length ? Buffer.from(data.subarray(range.offset, range.offset + range.length)) : data
    } catch (err) {
      // 416: the range starts at or past the end of an object that exists.
      if (statusOf(err) === 416) return Buffer.alloc(0)
      throw this.mapError(err, 'get', name)
    }
  }

  /** Size and storage class of `name`. @throws NotFoundError when it does not exist. */
  async stat(name: string): Promise<ObjectInfo> {
    assertObjectName(name)
    let metadata: FileMetadata
    try {
      ;[metadata] = await this.file(name).getMetadata()
    } catch (err) {
      throw this.mapError(err, 'stat', name)
    }
    return { name, size: Number(metadata.size ?? 0), ...(typeof metadata.storageClass === 'string' ? { storageClass: metadata.storageClass } : {}) }
  }

  /**
   * Every object whose name starts with `prefix`, page by page (`list_page_size` per request), with its
   * size and storage class from the listing. Names in the bucket that are not valid object names (folder
   * placeholders ending in '/', objects put there by other tools) are skipped.
   */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let pageToken: string | undefined
    do {
      let response: unknown
      try {
        ;[, , response] = await this.bucket.getFiles({
          prefix: this.key(prefix),
          maxResults: this.config.listPageSize,
          autoPaginate: false,
          fields: 'items(name,size,storageClass),nextPageToken',
          ...(pageToken !== undefined ? { pageToken } : {}),
        })
      } catch (err) {
        throw this.mapError(err, 'list', prefix)
      }
      const page = isLoose(response) ? response : {}
      const items = Array.isArray(page.items) ? page.items : []
      for (const item of items) {
        if (!isLoose(item) || typeof item.name !== 'string' || !item.name.startsWith(this.config.prefix)) continue
        const name = item.name.slice(this.config.prefix.length)
        try {
          assertObjectName(name)
        } catch {
          continue
        }
        yield { name, size: Number(item.size ?? 0), ...(typeof item.storageClass === 'string' ? { storageClass: item.storageClass } : {}) }
      }
      pageToken = typeof page.nextPageToken === 'string' && page.nextPageToken !== '' ? page.nextPageToken : undefined
    } while (pageToken !== undefined)
  }

  /** Deletes `name`; a missing object resolves. A held or retained object rejects (RemoteError, not transient). */
  async delete(name: string): Promise<void> {
    assertObjectName(name)
    try {
      await this.file(name).delete({ ignoreNotFound: true })
    } catch (err) {
      if (statusOf(err) === 404) return
      throw this.mapError(err, 'delete', name)
    }
  }

  /** Nothing to release: the client keeps no connection that would hold the process open. */
  async close(): Promise<void> {}

  private async archiveState(name: string): Promise<ArchiveState> {
    const info = await this.stat(name)
    return { storageClass: info.storageClass ?? this.classOf(name), readable: true, restore: 'none' }
  }

  private async protect(names: readonly string[], request: ProtectionRequest): Promise<void> {
    for (const name of names) assertObjectName(name)
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < names.length) await this.protectOne(names[next++], request)
    }
    await Promise.all(Array.from({ length: Math.min(PROTECT_CONCURRENCY, names.length) }, worker))
  }

  /** Sets a temporary hold and/or object retention on one object; never shortens or weakens what is there. */
  private async protectOne(name: string, request: ProtectionRequest): Promise<void> {
    const file = this.file(name)
    let metadata: FileMetadata
    try {
      ;[metadata] = await file.getMetadata()
    } catch (err) {
      throw this.mapError(err, 'protect', name)
    }
    const patch: FileMetadata = {}
    if (request.legalHold && metadata.temporaryHold !== true) patch.temporaryHold = true
    if (request.retainUntil !== null) {
      const current = metadata.retention?.retainUntilTime
      if (current === undefined || Date.parse(current) < request.retainUntil.getTime()) {
        // A Locked retention stays Locked (GCS refuses to unlock it).
        const mode = metadata.retention?.mode === 'Locked' ? 'Locked' : this.config.retentionMode
        patch.retention = { mode, retainUntilTime: request.retainUntil.toISOString() }
      }
    }
    if (Object.keys(patch).length === 0) return
    try {
      await file.setMetadata(patch)
    } catch (err) {
      if (statusOf(err) === 400 && patch.retention) {
        throw new ConfigError(
          `${this.config.url}: protect ${name}: GCS refused the object retention (${serverMessage(err) ?? 'HTTP 400'}). Object retention must be enabled on bucket ${this.config.bucket}: buckets created by coldstore init have it, new ones get it with gcloud storage buckets create --enable-per-object-retention, an existing one in the Google Cloud console (bucket → Protection).`,
          { cause: err },
        )
      }
      throw this.mapError(err, 'protect', name)
    }
  }

  private async isProtected(name: string): Promise<boolean> {
    assertObjectName(name)
    let metadata: FileMetadata
    try {
      ;[metadata] = await this.file(name).getMetadata()
    } catch (err) {
      if (statusOf(err) === 404) return false
      throw this.mapError(err, 'isProtected', name)
    }
    if (metadata.temporaryHold === true || metadata.eventBasedHold === true) return true
    const now = Date.now()
    const until = [metadata.retention?.retainUntilTime, metadata.retentionExpirationTime].filter((t): t is string => typeof t === 'string')
    return until.some((t) => Date.parse(t) > now)
  }
}
