/**
 * The Remote contract: a flat namespace of named, immutable objects.
 *
 * Names are relative, '/'-separated, made of [A-Za-z0-9._-] segments (for
 * example `data/ab/ab12...` or `config`). Every implementation must satisfy
 * engine/testing/remote-suite.ts.
 */

/** A byte range of an object: `length` bytes from `offset`. */
export interface ByteRange {
  offset: number
  /** Number of bytes to read. A range that runs past the end returns the bytes that exist (a short read). */
  length: number
}

/** What `stat` and `list` report of an object. */
export interface ObjectInfo {
  /** The object's name, relative to the remote's root. */
  name: string
  /** Size in bytes. */
  size: number
  /**
   * The object's storage class as the provider names it (`STANDARD`, `DEEP_ARCHIVE`, `COLDLINE`...), when
   * the kind has classes and the listing or stat reported it. Absent on local, memory and SFTP remotes.
   */
  storageClass?: string
}

/** Options of `put`. */
export interface PutOptions {
  /**
   * When false (the default), putting a name that already exists with a
   * different content is allowed to either replace it or fail with
   * ExistsError; content-addressed callers never rely on either.
   * When true, `put` fails with ExistsError if the name exists (used for
   * `config`, which must never be replaced by accident).
   */
  exclusive?: boolean
}

/** Static properties of a remote kind. */
export interface RemoteProperties {
  /** Human-readable location, without credentials (for messages). */
  location: string
  /** A sensible number of parallel requests for this remote. */
  maxConnections: number
  /**
   * For kinds without `protection`: what they can say about immutability, for freezes and `inspect`
   * (e.g. SFTP: "the SFTP server cannot enforce immutability..."). Absent: a generic note is used.
   */
  immutabilityNote?: string
}

/**
 * Names starting with this prefix are data packs: the only objects a remote with storage classes puts in
 * its data class (possibly an archive class). Everything else (config, keys, index, snapshots, metadata
 * packs, audit, locks) stays in the hot class, so listing, browsing and planning never touch a cold object.
 */
export const DATA_PREFIX = 'data/'

/** S3 restore speeds (GCS archive classes need no restore). */
export type RetrievalTier = 'Expedited' | 'Standard' | 'Bulk'

/** What `ArchiveAccess.state` reports of one object. */
export interface ArchiveState {
  /** The provider's name of the object's class. */
  storageClass: string
  /** True when `get` can read the object now (hot class, instant-access archive, or a completed restore). */
  readable: boolean
  /** `none`: no restore requested (or not needed); `in-progress`: requested, not done; `restored`: a readable copy exists. */
  restore: 'none' | 'in-progress' | 'restored'
  /** When a restored copy goes away again (the provider's expiry), if known. */
  restoredUntil?: Date
}

/**
 * Optional capability of kinds with storage classes: which class data packs go to, and the archive
 * workflow (S3 Glacier Flexible Retrieval and Deep Archive objects must be restored before reading).
 * `get` of an object that is not readable rejects with ArchivedError.
 */
export interface ArchiveAccess {
  /** Provider id for price tables: `aws-s3`, `gcs`, `b2`, `s3-compatible`. */
  readonly provider: string
  /** Class of objects under DATA_PREFIX (e.g. `DEEP_ARCHIVE`). */
  readonly dataClass: string
  /** Class of every other object (e.g. `STANDARD`). */
  readonly hotClass: string
  /** True when objects of `dataClass` must be restored before they can be read. */
  readonly dataNeedsRestore: boolean
  /** The class and restore state of one object. @throws NotFoundError when it does not exist. */
  state(name: string): Promise<ArchiveState>
  /**
   * Asks the provider to make a readable copy of an archived object for `days` days. Idempotent: an
   * object already restored or being restored resolves without a new request. Objects that need no
   * restore resolve at once.
   */
  requestRestore(name: string, options: { tier: RetrievalTier; days: number }): Promise<void>
}

/**
 * A storage location holding named immutable objects.
 *
 * Contract (checked by the conformance suite):
 * - `put` is atomic: readers see either no object or the whole object, never
 *   a partial one, also if the process dies mid-write. After `put` resolves the
 *   object is durable (local: fsync'd file and directory) and readable
 *   (read-after-write).
 * - `get` of a missing object rejects with NotFoundError; `get` with a range
 *   returns at most `length` bytes starting at `offset`; a range starting at
 *   or past the end returns an empty buffer.
 * - `stat` of a missing object rejects with NotFoundError.
 * - `list(prefix)` yields every object whose name starts with `prefix`, in
 *   no particular order; it never yields temporary files of in-progress puts.
 * - `delete` of a missing object resolves (idempotent).
 * - Transient failures reject with RemoteError { transient: true }; other
 *   I/O failures with RemoteError { transient: false }.
 * - Constructors do no I/O: each kind exposes an async `open()`.
 */
export interface Remote {
  readonly properties: RemoteProperties
  put(name: string, data: Uint8Array, options?: PutOptions): Promise<void>
  /**
   * Optional: starts an object written in pieces whose name is known only at
   * the end (a pack is named by the hash of its bytes), so it need not be
   * held in memory. `dir` is the prefix the final name will start with
   * (`data/`), where a local remote keeps its temporary file. Remotes
   * without it get `BufferedObjectWriter` from `createObjectWriter`.
   */
  createWriter?(dir: string): ObjectWriter
  /**
   * Optional: stores the local file at `path` as `name`, streamed (multipart or resumable where the kind
   * has it), with `put`'s guarantees. Used by StagedObjectWriter for packs; `path` is not changed.
   */
  putFile?(name: string, path: string, options?: PutOptions): Promise<void>
  get(name: string, range?: ByteRange): Promise<Buffer>
  stat(name: string): Promise<ObjectInfo>
  list(prefix: string): AsyncIterable<ObjectInfo>
  delete(name: string): Promise<void>
  close(): Promise<void>
  /**
   * Optional capability: keeps objects from being changed or removed (freezes with a retention period or a
   * legal hold). S3 would set Object Lock retention or a legal hold, GCS object holds or retention; a local
   * remote makes the files read-only. Remotes without it cannot enforce immutability, and callers must say so.
   */
  readonly protection?: ObjectProtection
  /** Optional capability: storage classes and archive restores (S3, GCS). */
  readonly archive?: ArchiveAccess
}

/** What a freeze asks a remote to enforce. */
export interface ProtectionRequest {
  /** Keep until this time (null: no retention period). */
  retainUntil: Date | null
  legalHold: boolean
}

/** How a remote enforces immutability (`Remote.protection`). */
export interface ObjectProtection {
  /** How it is enforced, for people (e.g. "read-only files (mode 0444)", "S3 Object Lock, COMPLIANCE mode"). */
  readonly mechanism: string
  /**
   * True when the remote itself refuses to delete or change a protected object, whoever asks (S3 Object Lock,
   * GCS holds); false when only coldstore's own commands honour it (local read-only files).
   */
  readonly enforcedByRemote?: boolean
  /** Protects `names` (existing objects). Idempotent. */
  protect(names: readonly string[], request: ProtectionRequest): Promise<void>
  /** True when `name` is currently protected (for `inspect`). */
  isProtected(name: string): Promise<boolean>
}

const NAME = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/

/** Throws a TypeError unless `name` is a valid object name (no '..', no absolute paths). */
export function assertObjectName(name: string): void {
  if (!NAME.test(name) || name.split('/').some((s) => s === '.' || s === '..')) {
    throw new TypeError(`invalid object name: ${JSON.stringify(name)}`)
  }
}

/**
 * An object being written in pieces (`Remote.createWriter`). Nothing is
 * visible under any name until `commit`, which has `put`'s guarantees
 * (atomic, durable, read-after-write).
 */
export interface ObjectWriter {
  /**
   * Appends `data` after everything written before (by call order: writes may
   * be issued without waiting for earlier ones). The caller must not change
   * `data` until the promise resolves.
   */
  write(data: Uint8Array): Promise<void>
  /** Waits for every write, then stores the bytes as `name`. The writer is finished afterwards. */
  commit(name: string): Promise<void>
  /** Discards what was written (idempotent; also after a failed commit). */
  abort(): Promise<void>
}

/** An ObjectWriter for any remote: keeps copies of the pieces and `put`s them at `commit`. */
export class BufferedObjectWriter implements ObjectWriter {
  private readonly remote: Remote
  private chunks: Buffer[] = []
  private size = 0
  constructor(remote: Remote) {
    this.remote = remote
  }
  async write(data: Uint8Array): Promise<void> {
    this.chunks.push(Buffer.from(data))
    this.size += data.length
  }
  async commit(name: string): Promise<void> {
    const data = Buffer.concat(this.chunks, this.size)
    this.chunks = []
    await this.remote.put(name, data)
  }
  async abort(): Promise<void> {
    this.chunks = []
  }
}

/** The remote's own writer when it has one, else a BufferedObjectWriter. */
export function createObjectWriter(remote: Remote, dir: string): ObjectWriter {
  return remote.createWriter ? remote.createWriter(dir) : new BufferedObjectWriter(remote)
}
