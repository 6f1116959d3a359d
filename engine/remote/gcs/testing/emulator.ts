/**
 * A test emulator of the Google Cloud Storage JSON API: the part of it that @google-cloud/storage 7 and
 * GcsRemote use, served by node:http on 127.0.0.1 (a free port), objects kept in memory. Test-only code:
 * not exported from engine/index.ts, imports only node builtins (and tap's types).
 *
 * There is no GCS emulator on these machines (firebase's needs Java 21), and GCS storage classes, holds and
 * retention are what coldstore relies on, so this one follows what Cloud Storage answers:
 *
 * - uploads: `POST /upload/storage/v1/b/{b}/o?uploadType=multipart|media|resumable`; a resumable session is
 *   answered with a `Location` (the session URI), then `PUT`s with `Content-Range: bytes a-b/N` (or
 *   `a-* /N`), 308 with `Range: bytes=0-(persisted-1)` between chunks, 200 and the object resource at the
 *   end; a status query (`Content-Range: bytes * /*`, empty body) answers 308 (with `Range` once bytes are
 *   persisted) or 200 when the upload is complete; bytes already persisted are skipped when a chunk is
 *   sent again; `DELETE` of a session answers 499. Hashes given in the metadata (`md5Hash`, `crc32c`) or
 *   in `X-Goog-Hash` on the final request are checked: 400 when they differ, and no object is created.
 * - `GET /storage/v1/b/{b}/o/{name}` (metadata, `fields` partial responses), `?alt=media` (also under
 *   /download) with `Range` → 206, `Content-Range`, and `x-goog-hash` of the whole object (as GCS sends on
 *   ranged reads too), `x-goog-stored-content-encoding: identity`; a range starting at or past the end →
 *   416.
 * - list: `prefix`, `delimiter` (→ `prefixes`), `startOffset`, `maxResults` (≤ 1000), opaque `pageToken`,
 *   `fields`; names in lexicographic order. PATCH of holds, retention and custom metadata. DELETE → 204.
 * - preconditions `ifGenerationMatch` (0: must not exist), `ifGenerationNotMatch`, `ifMetagenerationMatch`
 *   → 412 `conditionNotMet`, checked before holds and retention (412 before 403, as GCS does).
 * - storage classes per object (STANDARD, NEARLINE, COLDLINE, ARCHIVE; others → 400); every class is
 *   readable at once, as on GCS.
 * - `temporaryHold` / `eventBasedHold`: delete and overwrite → 403 reason `forbidden`, "Object '…' is under
 *   active Temporary hold and cannot be deleted, overwritten or archived until hold is removed."; object
 *   retention (`retention: { mode, retainUntilTime }`, on buckets created with object retention enabled)
 *   and a bucket retention policy → 403 `retentionPolicyNotMet` until the time passes (by the emulator's
 *   clock, which tests may set). Those bodies are the ones Cloud Storage was measured to send. A Locked
 *   retention cannot be shortened or removed, an Unlocked one only with `overrideUnlockedRetention=true`;
 *   those refusals (403) and the one for retention on a bucket without object retention (400) follow the
 *   documented rules, their wording is the emulator's own.
 * - buckets: GET, and POST `/storage/v1/b?project=P[&enableObjectRetention=true]` (409 when it exists).
 * - errors are GCS's JSON error body: `{"error":{"code","message","errors":[{"message","domain","reason"}]}}`.
 *
 * Every request is recorded (`requests`), with the object names a listing returned, so tests can assert
 * what was touched. Faults (`addFault`) answer a request with a status, reset its connection (before or
 * after carrying it out), damage a download, or cut a resumable upload mid-way (persisting part of a chunk,
 * then resetting the connection), to test error mapping and resumed uploads. There is no authentication: the client does none against a custom endpoint.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Test } from 'tap'

/** The classes GCS accepts for objects. */
export const GCS_STORAGE_CLASSES: readonly string[] = ['STANDARD', 'NEARLINE', 'COLDLINE', 'ARCHIVE', 'MULTI_REGIONAL', 'REGIONAL', 'DURABLE_REDUCED_AVAILABILITY']

/** What a recorded request was. */
export type EmulatorOperation =
  | 'buckets.get'
  | 'buckets.insert'
  | 'objects.list'
  | 'objects.get'
  | 'objects.media'
  | 'objects.patch'
  | 'objects.delete'
  | 'objects.insert'
  | 'upload.start'
  | 'upload.chunk'
  | 'upload.status'
  | 'upload.cancel'
  | 'unknown'

/** One request the emulator received. */
export interface RecordedRequest {
  method: string
  /** Path and query as sent. */
  url: string
  operation: EmulatorOperation
  bucket?: string
  /** The object name (decoded), for object requests and uploads. */
  object?: string
  query: Record<string, string>
  /** Request headers (lower-case names; `authorization` left out). */
  headers: Record<string, string>
  /** `Range` request header. */
  range?: string
  /** `Content-Range` request header (upload chunks and status queries). */
  contentRange?: string
  /** The resumable session, for upload.chunk / upload.status / upload.cancel. */
  uploadId?: string
  /** Body bytes received. */
  bodyBytes: number
  /** Status sent; 0 when the connection was reset instead. */
  status: number
  /** Object names a listing returned. */
  listed?: string[]
  /** The request was carried out but its answer dropped (a `reset` fault with `afterProcessing`). */
  dropped?: boolean
}

/** A misbehaviour injected into the next matching request(s). */
export type EmulatorFault =
  | {
      /** Answer with this HTTP status and a GCS error body (`reason`, `message` or defaults for the status). */
      kind: 'status'
      status: number
      reason?: string
      message?: string
      operation?: EmulatorOperation
      object?: string | RegExp
      /** How many matching requests get it (default 1). */
      times?: number
    }
  | {
      /**
       * Destroy the connection without answering; with `afterProcessing`, only once the request has been
       * carried out (an upload that landed, whose answer is lost on the way).
       */
      kind: 'reset'
      afterProcessing?: boolean
      operation?: EmulatorOperation
      object?: string | RegExp
      times?: number
    }
  | {
      /** Send the object's bytes with one byte flipped (a download damaged on the way); only for objects.media. */
      kind: 'corrupt'
      object?: string | RegExp
      times?: number
    }
  | {
      /**
       * Cut a resumable upload: when a chunk brings the session past `afterBytes` bytes of the object, keep
       * what came before that point (rounded down to 256 KiB, as GCS persists), then reset the connection.
       */
      kind: 'interrupt-upload'
      afterBytes: number
      object?: string | RegExp
      times?: number
    }

/** A stored object (a copy of the emulator's state; `data` is the stored buffer itself). */
export interface EmulatedObject {
  bucket: string
  name: string
  data: Buffer
  generation: number
  metageneration: number
  storageClass: string
  contentType: string
  md5Hash: string
  crc32c: string
  timeCreated: Date
  updated: Date
  temporaryHold?: boolean
  eventBasedHold?: boolean
  retention?: { mode: 'Unlocked' | 'Locked'; retainUntilTime: string }
  metadata?: Record<string, string>
}

/** Options of one bucket. */
export interface EmulatedBucketOptions {
  name: string
  /** Default class of objects uploaded without one (STANDARD). */
  storageClass?: string
  /** Object Retention Lock enabled (objects may carry `retention`). */
  objectRetention?: boolean
  /** A bucket retention policy: every object is kept this long after its creation. */
  retentionPeriodSeconds?: number
}

/** Options of GcsEmulator.start. */
export interface GcsEmulatorOptions {
  /** Buckets that exist from the start. */
  buckets?: readonly (string | EmulatedBucketOptions)[]
}

interface Bucket {
  name: string
  storageClass: string
  location: string
  objectRetention: boolean
  retentionPeriodSeconds?: number
  timeCreated: Date
  objects: Map<string, EmulatedObject>
}

interface UploadSession {
  id: string
  bucket: string
  name: string
  /** Metadata from the initiating POST. */
  metadata: Record<string, unknown>
  /** The precondition query parameters of the initiating POST. */
  query: Record<string, string>
  /** X-Upload-Content-Length, when given. */
  declaredSize?: number
  contentType: string
  chunks: Buffer[]
  persisted: number
  result?: Record<string, unknown>
}

/** An HTTP error answered as GCS does. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly extra: Record<string, string> = {},
  ) {
    super(message)
  }
}

const KiB256 = 256 * 1024

// ---------------------------------------------------------------------------------------------------------
// CRC32C (Castagnoli), written here rather than taken from the client, so the emulator checks the client.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** CRC32C of `data`, base64 of the big-endian 32-bit value (GCS's `crc32c` field). */
export function crc32cBase64(data: Uint8Array): string {
  let c = 0xffffffff
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8)
  const out = Buffer.alloc(4)
  out.writeUInt32BE((c ^ 0xffffffff) >>> 0)
  return out.toString('base64')
}

/** MD5 of `data`, base64 (GCS's `md5Hash` field). */
export function md5Base64(data: Uint8Array): string {
  return createHash('md5').update(data).digest('base64')
}

// ---------------------------------------------------------------------------------------------------------
// Partial responses (`fields=items(name,size),nextPageToken`).

type FieldTree = Map<string, FieldTree | null>

function parseFields(spec: string): FieldTree {
  let i = 0
  const parseList = (): FieldTree => {
    const tree: FieldTree = new Map()
    while (i < spec.length && spec[i] !== ')') {
      let name = ''
      while (i < spec.length && !',()'.includes(spec[i])) name += spec[i++]
      let sub: FieldTree | null = null
      if (spec[i] === '(') {
        i++
        sub = parseList()
        i++ // ')'
      }
      const parts = name.trim().split('/')
      let node = tree
      for (const part of parts.slice(0, -1)) {
        let next = node.get(part)
        if (!next) {
          next = new Map()
          node.set(part, next)
        }
        node = next
      }
      node.set(parts[parts.length - 1], sub)
      if (spec[i] === ',') i++
    }
    return tree
  }
  return parseList()
}

function applyFields(value: unknown, tree: FieldTree | null): unknown {
  if (tree === null) return value
  if (Array.isArray(value)) return value.map((v) => applyFields(v, tree))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    const record = value as Record<string, unknown>
    for (const [key, sub] of tree) if (key in record) out[key] = applyFields(record[key], sub)
    return out
  }
  return value
}

// ---------------------------------------------------------------------------------------------------------

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    req.on('data', (d: Buffer) => parts.push(d))
    req.on('end', () => resolve(Buffer.concat(parts)))
    req.on('error', reject)
  })
}

function jsonBody(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    throw new HttpError(400, 'parseError', 'Parse Error')
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new HttpError(400, 'invalid', 'Invalid JSON payload.')
  return parsed as Record<string, unknown>
}

/** Splits a multipart/related body into its parts' bodies. */
function multipartParts(body: Buffer, contentType: string): Buffer[] {
  const m = /boundary="?([^";]+)"?/i.exec(contentType)
  if (!m) throw new HttpError(400, 'invalid', 'Missing multipart boundary.')
  const delimiter = Buffer.from(`--${m[1]}`)
  const parts: Buffer[] = []
  let at = body.indexOf(delimiter)
  while (at !== -1) {
    const start = at + delimiter.length
    if (body.subarray(start, start + 2).toString() === '--') break
    const next = body.indexOf(delimiter, start)
    if (next === -1) break
    let part = body.subarray(start, next)
    if (part.subarray(0, 2).toString() === '\r\n') part = part.subarray(2)
    if (part.subarray(part.length - 2).toString() === '\r\n') part = part.subarray(0, part.length - 2)
    const headerEnd = part.indexOf('\r\n\r\n')
    parts.push(headerEnd === -1 ? Buffer.alloc(0) : part.subarray(headerEnd + 4))
    at = next
  }
  if (parts.length < 2) throw new HttpError(400, 'invalid', 'Multipart upload needs a metadata part and a media part.')
  return parts
}

function matches(pattern: string | RegExp | undefined, name: string | undefined): boolean {
  if (pattern === undefined) return true
  if (name === undefined) return false
  return typeof pattern === 'string' ? pattern === name : pattern.test(name)
}

/** Parses `Range: bytes=a-b` / `bytes=a-` / `bytes=-n` against `size`: [begin, endExclusive], or 'unsatisfiable'. */
function parseRange(header: string, size: number): [number, number] | 'unsatisfiable' | null {
  let m = /^bytes=(\d+)-(\d*)$/.exec(header.trim())
  if (m) {
    const begin = Number(m[1])
    if (begin >= size) return 'unsatisfiable'
    const end = m[2] === '' ? size : Math.min(size, Number(m[2]) + 1)
    if (end <= begin) return 'unsatisfiable'
    return [begin, end]
  }
  m = /^bytes=-(\d+)$/.exec(header.trim())
  if (m) {
    const n = Number(m[1])
    if (n === 0 || size === 0) return 'unsatisfiable'
    return [Math.max(0, size - n), size]
  }
  return null
}

/**
 * The emulator: start it with `GcsEmulator.start()` (or `startGcsEmulator(t)`), point the client at
 * `endpoint` (`apiEndpoint`), and close it when done.
 */
export class GcsEmulator {
  /** `http://127.0.0.1:PORT`: the client's apiEndpoint. */
  readonly endpoint: string
  /** Every request received, in order of completion. */
  readonly requests: RecordedRequest[] = []
  /** The emulator's clock (retention checks, timestamps). Tests may replace it. */
  now: () => Date = () => new Date()

  private readonly server: Server
  private readonly sockets = new Set<Socket>()
  private readonly buckets = new Map<string, Bucket>()
  private readonly uploads = new Map<string, UploadSession>()
  private faults: EmulatorFault[] = []
  private lastGeneration = 0

  private constructor(server: Server, endpoint: string) {
    this.server = server
    this.endpoint = endpoint
    server.on('connection', (s: Socket) => {
      this.sockets.add(s)
      s.on('close', () => this.sockets.delete(s))
    })
  }

  /** Starts an emulator on 127.0.0.1 on a free port. */
  static async start(options: GcsEmulatorOptions = {}): Promise<GcsEmulator> {
    let emulator: GcsEmulator | null = null
    const server = createServer((req, res) => {
      if (emulator) emulator.handle(req, res)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    const { port } = server.address() as AddressInfo
    emulator = new GcsEmulator(server, `http://127.0.0.1:${port}`)
    for (const b of options.buckets ?? []) emulator.createBucket(typeof b === 'string' ? { name: b } : b)
    return emulator
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  /** Creates a bucket (as if made beforehand by its owner). */
  createBucket(options: EmulatedBucketOptions): void {
    this.buckets.set(options.name, {
      name: options.name,
      storageClass: options.storageClass ?? 'STANDARD',
      location: 'US',
      objectRetention: options.objectRetention ?? false,
      retentionPeriodSeconds: options.retentionPeriodSeconds,
      timeCreated: this.now(),
      objects: new Map(),
    })
  }

  /** Removes a bucket and its objects (as if deleted by its owner). */
  dropBucket(name: string): void {
    this.buckets.delete(name)
  }

  /** A bucket's settings, or undefined when it does not exist. */
  bucketInfo(name: string): { storageClass: string; objectRetention: boolean; retentionPeriodSeconds?: number } | undefined {
    const b = this.buckets.get(name)
    return b && { storageClass: b.storageClass, objectRetention: b.objectRetention, retentionPeriodSeconds: b.retentionPeriodSeconds }
  }

  /** The stored object, or undefined. */
  object(bucket: string, name: string): EmulatedObject | undefined {
    return this.buckets.get(bucket)?.objects.get(name)
  }

  /** Names of the objects in `bucket`, sorted. */
  objectNames(bucket: string): string[] {
    return [...(this.buckets.get(bucket)?.objects.keys() ?? [])].sort()
  }

  /** Resumable sessions not completed yet: id, object name and bytes persisted. */
  openUploads(): { id: string; name: string; persisted: number }[] {
    return [...this.uploads.values()].filter((u) => !u.result).map((u) => ({ id: u.id, name: u.name, persisted: u.persisted }))
  }

  /** Forgets every resumable session (as GCS does after a week): their URIs answer 404 from now. */
  expireUploads(): void {
    this.uploads.clear()
  }

  /** Adds a fault for the next matching request(s). */
  addFault(fault: EmulatorFault): void {
    this.faults.push({ ...fault, times: fault.times ?? 1 })
  }

  /** Drops faults not used up yet. */
  clearFaults(): void {
    this.faults = []
  }

  /** Forgets the recorded requests. */
  clearRequests(): void {
    this.requests.length = 0
  }

  // -------------------------------------------------------------------------------------------------------

  private takeFault(operation: EmulatorOperation, object: string | undefined): EmulatorFault | null {
    for (const f of this.faults) {
      if (!matches(f.object, object)) continue
      if (f.kind === 'interrupt-upload' || (f.kind === 'corrupt' && operation !== 'objects.media')) continue
      if (f.kind !== 'corrupt' && f.operation !== undefined && f.operation !== operation) continue
      f.times = (f.times ?? 1) - 1
      if (f.times <= 0) this.faults = this.faults.filter((x) => x !== f)
      return f
    }
    return null
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.endpoint)
    const query: Record<string, string> = {}
    for (const [k, v] of url.searchParams) query[k] = v
    const headers: Record<string, string> = {}
    for (const [k, v] of Object.entries(req.headers)) if (k !== 'authorization' && v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      operation: 'unknown',
      query,
      headers,
      range: header(req, 'range'),
      contentRange: header(req, 'content-range'),
      bodyBytes: 0,
      status: 0,
    }
    this.route(req, res, url, query, record).then(
      () => this.requests.push(record),
      (err: unknown) => {
        if (err instanceof HttpError) {
          record.status = err.status
          sendError(res, err)
        } else {
          record.status = 500
          sendError(res, new HttpError(500, 'backendError', `emulator: ${err instanceof Error ? err.stack : String(err)}`))
        }
        this.requests.push(record)
      },
    )
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, query: Record<string, string>, record: RecordedRequest): Promise<void> {
    const segments = url.pathname.split('/').slice(1).map((s) => decodeURIComponent(s))
    const method = req.method ?? 'GET'
    // /storage/v1/b[/{bucket}[/o[/{object}]]], /download/storage/v1/..., /upload/storage/v1/b/{bucket}/o
    let api: 'json' | 'download' | 'upload' | null = null
    let rest: string[] = []
    if (segments[0] === 'storage' && segments[1] === 'v1') [api, rest] = ['json', segments.slice(2)]
    else if (segments[0] === 'download' && segments[1] === 'storage' && segments[2] === 'v1') [api, rest] = ['download', segments.slice(3)]
    else if (segments[0] === 'upload' && segments[1] === 'storage' && segments[2] === 'v1') [api, rest] = ['upload', segments.slice(3)]
    if (api === null || rest[0] !== 'b') {
      await readBody(req)
      throw new HttpError(404, 'notFound', `Not Found: ${url.pathname}`)
    }
    const bucketName = rest[1]
    const objectName = rest.length > 3 ? rest.slice(3).join('/') : undefined
    record.bucket = bucketName
    record.object = objectName ?? query.name

    // Operation first, so faults can match it.
    let operation: EmulatorOperation = 'unknown'
    if (api === 'upload') {
      if (method === 'POST') operation = query.uploadType === 'resumable' ? 'upload.start' : 'objects.insert'
      else if (method === 'PUT') operation = isStatusQuery(req) ? 'upload.status' : 'upload.chunk'
      else if (method === 'DELETE') operation = 'upload.cancel'
    } else if (bucketName === undefined) {
      if (method === 'POST') operation = 'buckets.insert'
    } else if (rest.length === 2) {
      if (method === 'GET') operation = 'buckets.get'
    } else if (rest[2] === 'o' && objectName === undefined) {
      if (method === 'GET') operation = 'objects.list'
    } else if (rest[2] === 'o') {
      if (method === 'GET') operation = query.alt === 'media' || api === 'download' ? 'objects.media' : 'objects.get'
      else if (method === 'PATCH') operation = 'objects.patch'
      else if (method === 'DELETE') operation = 'objects.delete'
    }
    record.operation = operation
    if (query.upload_id !== undefined) {
      record.uploadId = query.upload_id
      const session = this.uploads.get(query.upload_id)
      if (session) record.object = session.name
    }

    const fault = this.takeFault(operation, record.object)
    if (fault?.kind === 'reset' && fault.afterProcessing) {
      // Carry the request out, then drop the connection instead of answering.
      const socket = req.socket
      record.dropped = true
      Object.assign(res, {
        writeHead: () => res,
        end: () => {
          socket.destroy()
          return res
        },
      })
    } else if (fault?.kind === 'reset') {
      req.resume()
      req.socket.destroy()
      record.status = 0
      return
    }
    if (fault?.kind === 'status') {
      record.bodyBytes = (await readBody(req)).length
      throw new HttpError(fault.status, fault.reason ?? defaultReason(fault.status), fault.message ?? defaultMessage(fault.status))
    }

    if (operation === 'upload.chunk') return this.uploadChunk(req, res, query, record)
    const body = await readBody(req)
    record.bodyBytes = body.length
    switch (operation) {
      case 'buckets.insert':
        return this.insertBucket(res, query, body, record)
      case 'buckets.get':
        return sendJson(res, 200, this.bucketResource(this.bucketOf(bucketName)), query.fields, record)
      case 'objects.list':
        return this.list(res, this.bucketOf(bucketName), query, record)
      case 'objects.get': {
        const o = this.liveObject(this.bucketOf(bucketName), objectName ?? '', query)
        return sendJson(res, 200, this.objectResource(o), query.fields, record)
      }
      case 'objects.media':
        return this.media(req, res, this.bucketOf(bucketName), objectName ?? '', query, record, fault?.kind === 'corrupt')
      case 'objects.patch':
        return this.patch(res, this.bucketOf(bucketName), objectName ?? '', query, body, record)
      case 'objects.delete':
        return this.deleteObject(res, this.bucketOf(bucketName), objectName ?? '', query, record)
      case 'objects.insert':
        return this.insertSimple(req, res, this.bucketOf(bucketName), query, body, record)
      case 'upload.start':
        return this.startUpload(req, res, this.bucketOf(bucketName), query, body, record)
      case 'upload.status':
        return this.uploadStatus(res, this.sessionOf(query), record)
      case 'upload.cancel': {
        this.sessionOf(query)
        this.uploads.delete(query.upload_id)
        record.status = 499
        res.writeHead(499, { 'content-length': '0' }).end()
        return
      }
      default:
        throw new HttpError(405, 'notAllowed', `Method not allowed: ${method} ${url.pathname}`)
    }
  }

  private bucketOf(name: string | undefined): Bucket {
    const bucket = name === undefined ? undefined : this.buckets.get(name)
    if (!bucket) throw new HttpError(404, 'notFound', 'The specified bucket does not exist.')
    return bucket
  }

  private sessionOf(query: Record<string, string>): UploadSession {
    const session = this.uploads.get(query.upload_id ?? '')
    if (!session) throw new HttpError(404, 'notFound', 'No such upload session (it may have expired).')
    return session
  }

  private insertBucket(res: ServerResponse, query: Record<string, string>, body: Buffer, record: RecordedRequest): void {
    if (!query.project) throw new HttpError(400, 'required', 'Required parameter: project')
    const meta = jsonBody(body)
    const name = typeof meta.name === 'string' ? meta.name : ''
    if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/.test(name)) throw new HttpError(400, 'invalid', 'Invalid bucket name')
    if (this.buckets.has(name)) {
      throw new HttpError(409, 'conflict', 'Your previous request to create the named bucket succeeded and you already own it.')
    }
    const storageClass = typeof meta.storageClass === 'string' ? meta.storageClass : 'STANDARD'
    checkClass(storageClass)
    this.createBucket({ name, storageClass, objectRetention: query.enableObjectRetention === 'true' })
    record.bucket = name
    sendJson(res, 200, this.bucketResource(this.bucketOf(name)), query.fields, record)
  }

  private bucketResource(b: Bucket): Record<string, unknown> {
    return {
      kind: 'storage#bucket',
      selfLink: `${this.endpoint}/storage/v1/b/${b.name}`,
      id: b.name,
      name: b.name,
      projectNumber: '123456789012',
      metageneration: '1',
      location: b.location,
      storageClass: b.storageClass,
      etag: 'CAE=',
      timeCreated: b.timeCreated.toISOString(),
      updated: b.timeCreated.toISOString(),
      locationType: 'multi-region',
      ...(b.objectRetention ? { objectRetention: { mode: 'Enabled' } } : {}),
      ...(b.retentionPeriodSeconds !== undefined
        ? { retentionPolicy: { retentionPeriod: String(b.retentionPeriodSeconds), effectiveTime: b.timeCreated.toISOString() } }
        : {}),
    }
  }

  private objectResource(o: EmulatedObject): Record<string, unknown> {
    const bucket = this.buckets.get(o.bucket)
    const encoded = encodeURIComponent(o.name)
    const out: Record<string, unknown> = {
      kind: 'storage#object',
      id: `${o.bucket}/${o.name}/${o.generation}`,
      selfLink: `${this.endpoint}/storage/v1/b/${o.bucket}/o/${encoded}`,
      mediaLink: `${this.endpoint}/download/storage/v1/b/${o.bucket}/o/${encoded}?generation=${o.generation}&alt=media`,
      name: o.name,
      bucket: o.bucket,
      generation: String(o.generation),
      metageneration: String(o.metageneration),
      contentType: o.contentType,
      storageClass: o.storageClass,
      size: String(o.data.length),
      md5Hash: o.md5Hash,
      crc32c: o.crc32c,
      etag: Buffer.from(`${o.generation}/${o.metageneration}`).toString('base64'),
      timeCreated: o.timeCreated.toISOString(),
      updated: o.updated.toISOString(),
      timeStorageClassUpdated: o.timeCreated.toISOString(),
    }
    if (o.temporaryHold !== undefined) out.temporaryHold = o.temporaryHold
    if (o.eventBasedHold !== undefined) out.eventBasedHold = o.eventBasedHold
    if (o.retention) out.retention = { ...o.retention }
    if (bucket?.retentionPeriodSeconds !== undefined && !o.eventBasedHold) {
      out.retentionExpirationTime = new Date(o.timeCreated.getTime() + bucket.retentionPeriodSeconds * 1000).toISOString()
    }
    if (o.metadata) out.metadata = { ...o.metadata }
    return out
  }

  /** The live object, after the request's preconditions. */
  private liveObject(bucket: Bucket, name: string, query: Record<string, string>): EmulatedObject {
    const o = bucket.objects.get(name)
    if (query.generation !== undefined && o && String(o.generation) !== query.generation) {
      throw new HttpError(404, 'notFound', `No such object: ${bucket.name}/${name}`)
    }
    checkPreconditions(query, o)
    if (!o) throw new HttpError(404, 'notFound', `No such object: ${bucket.name}/${name}`)
    return o
  }

  private list(res: ServerResponse, bucket: Bucket, query: Record<string, string>, record: RecordedRequest): void {
    const prefix = query.prefix ?? ''
    const delimiter = query.delimiter ?? ''
    const max = Math.min(1000, Math.max(1, Number(query.maxResults ?? 1000) || 1000))
    let after = ''
    if (query.pageToken) {
      try {
        after = Buffer.from(query.pageToken, 'base64url').toString('utf8')
      } catch {
        throw new HttpError(400, 'invalid', 'Invalid page token.')
      }
    }
    const names = [...bucket.objects.keys()].filter((n) => n.startsWith(prefix) && (!query.startOffset || n >= query.startOffset)).sort()
    const items: Record<string, unknown>[] = []
    const prefixes: string[] = []
    const listed: string[] = []
    let next: string | undefined
    for (const name of names) {
      if (after && name <= after) continue
      let entry = name
      if (delimiter) {
        const cut = name.indexOf(delimiter, prefix.length)
        if (cut !== -1) entry = name.slice(0, cut + delimiter.length)
      }
      if (entry !== name) {
        if (prefixes.includes(entry)) continue
        if (after && entry <= after) continue
      }
      if (items.length + prefixes.length === max) {
        next = Buffer.from(listed[listed.length - 1] ?? '', 'utf8').toString('base64url')
        break
      }
      if (entry !== name) {
        prefixes.push(entry)
        // Skip the rest of this prefix on the next page.
        listed.push(`${entry}\uffff`)
      } else {
        const o = bucket.objects.get(name)
        if (!o) continue
        items.push(this.objectResource(o))
        listed.push(name)
      }
    }
    record.listed = items.map((i) => String(i.name))
    const response: Record<string, unknown> = { kind: 'storage#objects' }
    if (next !== undefined) response.nextPageToken = next
    if (prefixes.length) response.prefixes = prefixes
    if (items.length) response.items = items
    sendJson(res, 200, response, query.fields, record)
  }

  private media(req: IncomingMessage, res: ServerResponse, bucket: Bucket, name: string, query: Record<string, string>, record: RecordedRequest, corrupt: boolean): void {
    const o = this.liveObject(bucket, name, query)
    const damage = (part: Buffer): Buffer => {
      if (!corrupt || part.length === 0) return part
      const copy = Buffer.from(part)
      copy[copy.length >> 1] ^= 0x01
      return copy
    }
    const headers: Record<string, string> = {
      'content-type': o.contentType,
      'x-goog-hash': `crc32c=${o.crc32c},md5=${o.md5Hash}`,
      'x-goog-generation': String(o.generation),
      'x-goog-metageneration': String(o.metageneration),
      'x-goog-storage-class': o.storageClass,
      'x-goog-stored-content-length': String(o.data.length),
      'x-goog-stored-content-encoding': 'identity',
      etag: Buffer.from(`${o.generation}/${o.metageneration}`).toString('base64'),
      'cache-control': 'no-cache, no-store, max-age=0, must-revalidate',
    }
    const range = header(req, 'range')
    if (range !== undefined) {
      const r = parseRange(range, o.data.length)
      if (r === 'unsatisfiable') throw new HttpError(416, 'requestedRangeNotSatisfiable', 'The requested range cannot be satisfied.')
      if (r !== null) {
        const [begin, end] = r
        const part = o.data.subarray(begin, end)
        record.status = 206
        res.writeHead(206, { ...headers, 'content-range': `bytes ${begin}-${end - 1}/${o.data.length}`, 'content-length': String(part.length) })
        res.end(damage(part))
        return
      }
    }
    record.status = 200
    res.writeHead(200, { ...headers, 'content-length': String(o.data.length) })
    res.end(damage(o.data))
  }

  private patch(res: ServerResponse, bucket: Bucket, name: string, query: Record<string, string>, body: Buffer, record: RecordedRequest): void {
    const o = this.liveObject(bucket, name, query)
    const patch = jsonBody(body)
    if ('storageClass' in patch && patch.storageClass !== o.storageClass) {
      throw new HttpError(400, 'invalid', 'The storage class of an object can only be changed by rewriting it.')
    }
    if ('retention' in patch) this.checkRetentionChange(bucket, o, patch.retention, query.overrideUnlockedRetention === 'true')
    if ('temporaryHold' in patch) o.temporaryHold = patch.temporaryHold === true
    if ('eventBasedHold' in patch) o.eventBasedHold = patch.eventBasedHold === true
    if ('retention' in patch) {
      const r = patch.retention as { mode: 'Unlocked' | 'Locked'; retainUntilTime: string } | null
      o.retention = r ? { mode: r.mode, retainUntilTime: new Date(r.retainUntilTime).toISOString() } : undefined
    }
    if (patch.metadata !== null && typeof patch.metadata === 'object') {
      o.metadata = { ...(o.metadata ?? {}) }
      for (const [k, v] of Object.entries(patch.metadata as Record<string, unknown>)) {
        if (v === null) delete o.metadata[k]
        else o.metadata[k] = String(v)
      }
    }
    o.metageneration++
    o.updated = this.now()
    sendJson(res, 200, this.objectResource(o), query.fields, record)
  }

  private checkRetentionChange(bucket: Bucket, o: EmulatedObject | undefined, value: unknown, override: boolean): void {
    if (value !== null) {
      const r = value as { mode?: unknown; retainUntilTime?: unknown }
      if (typeof r !== 'object' || (r.mode !== 'Locked' && r.mode !== 'Unlocked') || typeof r.retainUntilTime !== 'string' || Number.isNaN(Date.parse(r.retainUntilTime))) {
        throw new HttpError(400, 'invalid', 'Invalid retention: mode must be Locked or Unlocked, with a retainUntilTime.')
      }
      if (!bucket.objectRetention) {
        throw new HttpError(400, 'invalid', `Object retention is not enabled on bucket '${bucket.name}'.`)
      }
    }
    const old = o?.retention
    if (!old) return
    const next = value as { mode: string; retainUntilTime: string } | null
    const shorter = next === null || Date.parse(next.retainUntilTime) < Date.parse(old.retainUntilTime)
    if (old.mode === 'Locked' && (shorter || next?.mode !== 'Locked')) {
      throw new HttpError(403, 'forbidden', `Object '${bucket.name}/${o?.name}' has a Locked retention configuration, which cannot be removed, reduced or unlocked.`)
    }
    if (old.mode === 'Unlocked' && (shorter || next?.mode === 'Locked') && !override) {
      throw new HttpError(403, 'forbidden', `Removing, reducing or locking the Unlocked retention of '${bucket.name}/${o?.name}' needs overrideUnlockedRetention=true.`)
    }
  }

  /** 403 when holds or retention keep `o` from being deleted or replaced (as GCS answers). */
  private checkKept(bucket: Bucket, o: EmulatedObject | undefined): void {
    if (!o) return
    const where = `${bucket.name}/${o.name}`
    if (o.eventBasedHold) {
      throw new HttpError(403, 'forbidden', `Object '${where}' is under active Event-Based hold and cannot be deleted, overwritten or archived until hold is removed.`)
    }
    if (o.temporaryHold) {
      throw new HttpError(403, 'forbidden', `Object '${where}' is under active Temporary hold and cannot be deleted, overwritten or archived until hold is removed.`)
    }
    const now = this.now().getTime()
    const until: number[] = []
    if (o.retention) until.push(Date.parse(o.retention.retainUntilTime))
    if (bucket.retentionPeriodSeconds !== undefined) until.push(o.timeCreated.getTime() + bucket.retentionPeriodSeconds * 1000)
    const latest = Math.max(...until, 0)
    if (latest > now) {
      throw new HttpError(
        403,
        'retentionPolicyNotMet',
        `Object '${where}' is subject to bucket's retention policy or object retention and cannot be deleted or overwritten until ${new Date(latest).toISOString()}`,
      )
    }
  }

  private deleteObject(res: ServerResponse, bucket: Bucket, name: string, query: Record<string, string>, record: RecordedRequest): void {
    const o = this.liveObject(bucket, name, query)
    this.checkKept(bucket, o)
    bucket.objects.delete(name)
    record.status = 204
    res.writeHead(204).end()
  }

  private insertSimple(req: IncomingMessage, res: ServerResponse, bucket: Bucket, query: Record<string, string>, body: Buffer, record: RecordedRequest): void {
    let metadata: Record<string, unknown> = {}
    let data: Buffer
    if (query.uploadType === 'multipart') {
      const [meta, media] = multipartParts(body, header(req, 'content-type') ?? '')
      metadata = jsonBody(meta)
      data = media
    } else if (query.uploadType === 'media') {
      data = body
    } else {
      throw new HttpError(400, 'invalid', `Invalid uploadType: ${query.uploadType ?? '(none)'}`)
    }
    const name = query.name ?? (typeof metadata.name === 'string' ? metadata.name : undefined)
    if (!name) throw new HttpError(400, 'required', 'Required')
    record.object = name
    const contentType = typeof metadata.contentType === 'string' ? metadata.contentType : header(req, 'content-type') ?? 'application/octet-stream'
    const o = this.store(bucket, name, data, metadata, query, contentType, header(req, 'x-goog-hash'))
    sendJson(res, 200, this.objectResource(o), query.fields, record)
  }

  /** Checks hashes, preconditions, holds and retention, then stores a new generation of `name`. */
  private store(
    bucket: Bucket,
    name: string,
    data: Buffer,
    metadata: Record<string, unknown>,
    query: Record<string, string>,
    contentType: string,
    xGoogHash: string | undefined,
  ): EmulatedObject {
    const storageClass = typeof metadata.storageClass === 'string' ? metadata.storageClass : bucket.storageClass
    checkClass(storageClass)
    const md5Hash = md5Base64(data)
    const crc32c = crc32cBase64(data)
    const given: { md5?: string; crc32c?: string } = {}
    if (typeof metadata.md5Hash === 'string') given.md5 = metadata.md5Hash
    if (typeof metadata.crc32c === 'string') given.crc32c = metadata.crc32c
    for (const pair of (xGoogHash ?? '').split(',')) {
      const eq = pair.indexOf('=')
      if (eq === -1) continue
      const [k, v] = [pair.slice(0, eq).trim(), pair.slice(eq + 1).trim()]
      if (k === 'md5') given.md5 = v
      if (k === 'crc32c') given.crc32c = v
    }
    if (given.md5 !== undefined && given.md5 !== md5Hash) {
      throw new HttpError(400, 'invalid', `Provided MD5 hash "${given.md5}" doesn't match calculated MD5 hash "${md5Hash}".`)
    }
    if (given.crc32c !== undefined && given.crc32c !== crc32c) {
      throw new HttpError(400, 'invalid', `Provided CRC32C "${given.crc32c}" doesn't match calculated CRC32C "${crc32c}".`)
    }
    const old = bucket.objects.get(name)
    checkPreconditions(query, old)
    this.checkKept(bucket, old)
    let retention: EmulatedObject['retention']
    if (metadata.retention !== undefined && metadata.retention !== null) {
      this.checkRetentionChange(bucket, undefined, metadata.retention, false)
      const r = metadata.retention as { mode: 'Unlocked' | 'Locked'; retainUntilTime: string }
      retention = { mode: r.mode, retainUntilTime: new Date(r.retainUntilTime).toISOString() }
    }
    const now = this.now()
    // Generations are microsecond timestamps on GCS; kept increasing here.
    this.lastGeneration = Math.max(this.lastGeneration + 1, now.getTime() * 1000)
    const o: EmulatedObject = {
      bucket: bucket.name,
      name,
      data,
      generation: this.lastGeneration,
      metageneration: 1,
      storageClass,
      contentType,
      md5Hash,
      crc32c,
      timeCreated: now,
      updated: now,
      ...(metadata.temporaryHold !== undefined ? { temporaryHold: metadata.temporaryHold === true } : {}),
      ...(metadata.eventBasedHold !== undefined ? { eventBasedHold: metadata.eventBasedHold === true } : {}),
      ...(retention ? { retention } : {}),
      ...(metadata.metadata !== null && typeof metadata.metadata === 'object' ? { metadata: { ...(metadata.metadata as Record<string, string>) } } : {}),
    }
    bucket.objects.set(name, o)
    return o
  }

  private startUpload(req: IncomingMessage, res: ServerResponse, bucket: Bucket, query: Record<string, string>, body: Buffer, record: RecordedRequest): void {
    const metadata = jsonBody(body)
    const name = query.name ?? (typeof metadata.name === 'string' ? metadata.name : undefined)
    if (!name) throw new HttpError(400, 'required', 'Required')
    record.object = name
    if (typeof metadata.storageClass === 'string') checkClass(metadata.storageClass)
    // Preconditions are checked when the session starts, and again when it completes.
    checkPreconditions(query, bucket.objects.get(name))
    const declared = header(req, 'x-upload-content-length')
    const id = randomBytes(16).toString('hex')
    const session: UploadSession = {
      id,
      bucket: bucket.name,
      name,
      metadata,
      query: { ...query },
      declaredSize: declared === undefined ? undefined : Number(declared),
      contentType: header(req, 'x-upload-content-type') ?? (typeof metadata.contentType === 'string' ? metadata.contentType : 'application/octet-stream'),
      chunks: [],
      persisted: 0,
    }
    this.uploads.set(id, session)
    record.uploadId = id
    record.status = 200
    const location = `${this.endpoint}/upload/storage/v1/b/${encodeURIComponent(bucket.name)}/o?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`
    res.writeHead(200, { location, 'content-length': '0', 'x-guploader-uploadid': id }).end()
  }

  private uploadStatus(res: ServerResponse, session: UploadSession, record: RecordedRequest): void {
    if (session.result) {
      sendJson(res, 200, session.result, undefined, record)
      return
    }
    this.send308(res, session, record)
  }

  private send308(res: ServerResponse, session: UploadSession, record: RecordedRequest): void {
    record.status = 308
    const headers: Record<string, string> = { 'content-length': '0', 'x-guploader-uploadid': session.id }
    if (session.persisted > 0) headers.range = `bytes=0-${session.persisted - 1}`
    res.writeHead(308, headers).end()
  }

  /** A chunk of a resumable upload: streamed in, so an interrupt fault can cut it part-way. */
  private async uploadChunk(req: IncomingMessage, res: ServerResponse, query: Record<string, string>, record: RecordedRequest): Promise<void> {
    const session = this.uploads.get(query.upload_id ?? '')
    if (!session) {
      record.bodyBytes = (await readBody(req)).length
      throw new HttpError(404, 'notFound', 'No such upload session (it may have expired).')
    }
    const range = /^bytes (\d+)-(\d+|\*)\/(\d+|\*)$/.exec((header(req, 'content-range') ?? '').trim())
    if (!range) {
      record.bodyBytes = (await readBody(req)).length
      throw new HttpError(400, 'invalid', 'Invalid Content-Range header.')
    }
    if (session.result) {
      record.bodyBytes = (await readBody(req)).length
      sendJson(res, 200, session.result, undefined, record)
      return
    }
    const first = Number(range[1])
    const total = range[3] === '*' ? undefined : Number(range[3])
    if (first > session.persisted) {
      record.bodyBytes = (await readBody(req)).length
      throw new HttpError(400, 'invalid', `Invalid request: the chunk starts at ${first}, but only ${session.persisted} bytes were received.`)
    }
    if (total !== undefined && session.declaredSize !== undefined && total !== session.declaredSize) {
      record.bodyBytes = (await readBody(req)).length
      throw new HttpError(400, 'invalid', `Content-Range total ${total} does not match X-Upload-Content-Length ${session.declaredSize}.`)
    }
    // An interrupt fault applies to the chunk that carries its byte.
    const lastByte = range[2] === '*' ? Infinity : Number(range[2])
    const fault = this.faults.find((f) => f.kind === 'interrupt-upload' && matches(f.object, session.name) && f.afterBytes >= first && f.afterBytes <= lastByte)
    let cutAt = Infinity
    if (fault?.kind === 'interrupt-upload') {
      cutAt = fault.afterBytes
      fault.times = (fault.times ?? 1) - 1
      if (fault.times <= 0) this.faults = this.faults.filter((x) => x !== fault)
    }
    // Bytes of this body before `skip` were persisted already (a chunk sent again): GCS ignores them.
    const skip = session.persisted - first
    let position = first
    const received: Buffer[] = []
    const cut = await new Promise<boolean>((resolve, reject) => {
      let done = false
      req.on('data', (d: Buffer) => {
        if (done) return
        if (position + d.length > cutAt) {
          const n = Math.max(0, cutAt - position)
          received.push(d.subarray(0, n))
          position += n
          record.bodyBytes += n
          done = true
          resolve(true)
          return
        }
        received.push(d)
        position += d.length
        record.bodyBytes += d.length
      })
      req.on('end', () => resolve(false))
      req.on('error', reject)
    })
    let data = Buffer.concat(received)
    if (skip > 0) data = data.subarray(Math.min(skip, data.length))
    if (cut) {
      // Keep whole 256 KiB units of the object, as GCS persists, and drop the connection.
      const keepUntil = Math.floor(cutAt / KiB256) * KiB256
      const keep = Math.max(0, keepUntil - session.persisted)
      if (keep > 0) {
        session.chunks.push(Buffer.from(data.subarray(0, keep)))
        session.persisted += Math.min(keep, data.length)
      }
      record.status = 0
      req.socket.destroy()
      return
    }
    if (data.length > 0) {
      session.chunks.push(data)
      session.persisted += data.length
    }
    const size = total ?? session.declaredSize
    if (size !== undefined && session.persisted > size) {
      throw new HttpError(400, 'invalid', `Received ${session.persisted} bytes for an object of ${size}.`)
    }
    if (size !== undefined && session.persisted === size && total !== undefined) {
      const bucket = this.bucketOf(session.bucket)
      let o: EmulatedObject
      try {
        o = this.store(bucket, session.name, Buffer.concat(session.chunks), session.metadata, session.query, session.contentType, header(req, 'x-goog-hash'))
      } catch (err) {
        // A failed finalization ends the session.
        this.uploads.delete(session.id)
        throw err
      }
      session.chunks = []
      session.result = this.objectResource(o)
      sendJson(res, 200, session.result, undefined, record)
      return
    }
    this.send308(res, session, record)
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  return Array.isArray(v) ? v[0] : v
}

function isStatusQuery(req: IncomingMessage): boolean {
  return /^bytes \*\/(\d+|\*)$/.test((header(req, 'content-range') ?? '').trim())
}

function checkClass(storageClass: string): void {
  if (!GCS_STORAGE_CLASSES.includes(storageClass)) throw new HttpError(400, 'invalid', `Invalid argument: storage class '${storageClass}'.`)
}

function checkPreconditions(query: Record<string, string>, o: EmulatedObject | undefined): void {
  const fail = (): never => {
    throw new HttpError(412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.', { locationType: 'header', location: 'If-Match' })
  }
  if (query.ifGenerationMatch !== undefined) {
    const want = query.ifGenerationMatch
    if (want === '0' ? o !== undefined : !o || String(o.generation) !== want) fail()
  }
  if (query.ifGenerationNotMatch !== undefined) {
    const not = query.ifGenerationNotMatch
    if (not === '0' ? o === undefined : o !== undefined && String(o.generation) === not) fail()
  }
  if (query.ifMetagenerationMatch !== undefined && (!o || String(o.metageneration) !== query.ifMetagenerationMatch)) fail()
}

function defaultReason(status: number): string {
  switch (status) {
    case 400:
      return 'invalid'
    case 401:
      return 'authError'
    case 403:
      return 'forbidden'
    case 404:
      return 'notFound'
    case 429:
      return 'rateLimitExceeded'
    case 503:
      return 'backendError'
    default:
      return status >= 500 ? 'backendError' : 'invalid'
  }
}

function defaultMessage(status: number): string {
  switch (status) {
    case 401:
      return 'Invalid Credentials'
    case 403:
      return 'coldstore-test@example.iam.gserviceaccount.com does not have storage.objects.create access to the Google Cloud Storage object. Permission \'storage.objects.create\' denied on resource (or it may not exist).'
    case 429:
      return 'The rate of change requests to the object exceeds the rate limit. Please reduce the rate of create, update, and delete requests.'
    case 500:
      return 'Internal Error'
    case 502:
      return 'Bad Gateway'
    case 503:
      return 'Backend Error'
    default:
      return `HTTP ${status}`
  }
}

function sendJson(res: ServerResponse, status: number, value: Record<string, unknown>, fields: string | undefined, record: RecordedRequest): void {
  const body = Buffer.from(JSON.stringify(fields ? applyFields(value, parseFields(fields)) : value))
  record.status = status
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': String(body.length) })
  res.end(body)
}

function sendError(res: ServerResponse, err: HttpError): void {
  if (res.headersSent || res.destroyed) {
    res.destroy()
    return
  }
  const body = Buffer.from(
    JSON.stringify({
      error: { code: err.status, message: err.message, errors: [{ message: err.message, domain: 'global', reason: err.reason, ...err.extra }] },
    }),
  )
  res.writeHead(err.status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': String(body.length) })
  res.end(body)
}

/**
 * Starts an emulator for test `t` and closes it when `t` ends. `buckets` exist from the start
 * (default: one bucket named `coldstore-test`).
 */
export async function startGcsEmulator(t: Test, options: GcsEmulatorOptions = { buckets: ['coldstore-test'] }): Promise<GcsEmulator> {
  const emulator = await GcsEmulator.start(options)
  t.teardown(() => emulator.close())
  return emulator
}
