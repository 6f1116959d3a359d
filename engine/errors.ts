/**
 * Error classes of the engine. Every error the engine throws on purpose is an
 * EngineError with a literal `code`; callers branch on `code` or `instanceof`,
 * never on the message. Only cli/ chooses exit codes and wording.
 */

export type EngineErrorCode =
  | 'ENOTFOUND'
  | 'EINTEGRITY'
  | 'ECONFIG'
  | 'EREMOTE'
  | 'EPASSWORD'
  | 'EKEY'
  | 'ELOCKED'
  | 'EUSAGE'
  | 'EEXISTS'
  | 'ESOURCE'
  | 'EFORMAT'
  | 'EARCHIVED'
  | 'EINTERRUPTED'

export interface EngineErrorOptions {
  cause?: unknown
}

/** Base class of every error the engine throws deliberately. */
export class EngineError extends Error {
  readonly code: EngineErrorCode
  constructor(code: EngineErrorCode, message: string, options?: EngineErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.name = new.target.name
  }
}

/** A named object, blob, snapshot or path does not exist. */
export class NotFoundError extends EngineError {
  readonly what: string
  constructor(what: string, message?: string, options?: EngineErrorOptions) {
    super('ENOTFOUND', message ?? `not found: ${what}`, options)
    this.what = what
  }
}

/** Stored bytes failed authentication or hash checks. */
export class IntegrityError extends EngineError {
  readonly blobId?: string
  readonly packId?: string
  constructor(message: string, fields: { blobId?: string; packId?: string } = {}, options?: EngineErrorOptions) {
    super('EINTEGRITY', message, options)
    this.blobId = fields.blobId
    this.packId = fields.packId
  }
}

/** The repository configuration or a user-supplied option is invalid. */
export class ConfigError extends EngineError {
  constructor(message: string, options?: EngineErrorOptions) {
    super('ECONFIG', message, options)
  }
}

/** The caller asked for something that cannot be done as asked (bad snapshot reference, bad pattern...). */
export class UsageError extends EngineError {
  constructor(message: string, options?: EngineErrorOptions) {
    super('EUSAGE', message, options)
  }
}

/** A remote operation failed. `transient` errors may succeed when retried. */
export class RemoteError extends EngineError {
  readonly transient: boolean
  readonly objectName?: string
  constructor(message: string, fields: { transient: boolean; objectName?: string }, options?: EngineErrorOptions) {
    super('EREMOTE', message, options)
    this.transient = fields.transient
    this.objectName = fields.objectName
  }
}

/** No key slot could be opened with the given password. */
export class PasswordError extends EngineError {
  constructor(message = 'wrong password: no key in the repository could be opened with it', options?: EngineErrorOptions) {
    super('EPASSWORD', message, options)
  }
}

/** A key file is damaged (not parseable, or fails authentication in a way a wrong password cannot explain). */
export class KeyError extends EngineError {
  constructor(message: string, options?: EngineErrorOptions) {
    super('EKEY', message, options)
  }
}

/** Something already exists where the caller asked to create it. */
export class ExistsError extends EngineError {
  readonly what: string
  constructor(what: string, message?: string, options?: EngineErrorOptions) {
    super('EEXISTS', message ?? `already exists: ${what}`, options)
    this.what = what
  }
}

/** A source path given to a backup is missing or unusable (before anything is written). */
export class SourceError extends EngineError {
  constructor(message: string, options?: EngineErrorOptions) {
    super('ESOURCE', message, options)
  }
}

/** A stored object does not follow FORMAT.md (unknown version, malformed encoding). */
export class FormatError extends EngineError {
  constructor(message: string, options?: EngineErrorOptions) {
    super('EFORMAT', message, options)
  }
}

/**
 * An object is in an archive storage class (S3 Glacier Flexible Retrieval or Deep Archive) and cannot be
 * read until a restore request for it has completed. Not transient: retrying does not help, a restore
 * request (and hours of waiting) does. `restoring` is true when a request is already in progress.
 */
export class ArchivedError extends EngineError {
  readonly objectName: string
  readonly storageClass: string
  readonly restoring: boolean
  constructor(objectName: string, fields: { storageClass: string; restoring: boolean }, options?: EngineErrorOptions) {
    super(
      'EARCHIVED',
      `${objectName} is in the archive class ${fields.storageClass}${fields.restoring ? ' and its restore is still in progress' : ' and must be restored before it can be read'}`,
      options,
    )
    this.objectName = objectName
    this.storageClass = fields.storageClass
    this.restoring = fields.restoring
  }
}

/**
 * Another process holds what this operation needs exclusively (one prune at a time per repository). Not a
 * stale-lock trap: the holder's lock is ignored once it stops being refreshed, so retrying later works.
 */
export class LockedError extends EngineError {
  /** Who holds it, for people. */
  readonly holder: string
  constructor(holder: string, message?: string, options?: EngineErrorOptions) {
    super('ELOCKED', message ?? `locked by ${holder}`, options)
    this.holder = holder
  }
}

/**
 * An operation stopped because its caller asked it to (an aborted AbortSignal: SIGTERM to a job). What was
 * stored before the stop is durable and indexed, so the next run reuses it; nothing was left half-written.
 */
export class InterruptedError extends EngineError {
  constructor(message = 'interrupted', options?: EngineErrorOptions) {
    super('EINTERRUPTED', message, options)
  }
}

/** True when `err` is a NotFoundError (or any EngineError with code ENOTFOUND). */
export function isNotFound(err: unknown): boolean {
  return err instanceof EngineError && err.code === 'ENOTFOUND'
}
