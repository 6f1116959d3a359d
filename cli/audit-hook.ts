/**
 * Recording commands in the repository's audit trail. Commands that write or
 * read snapshots (snapshot, restore, verify, export; freeze, forget and prune
 * when they exist) call `prepareAudit` before they start, so an unreadable
 * signing key stops them before any work, and `record` when they are done.
 *
 * Failing to append (a read-only medium, a lost connection) is a warning: the
 * operation itself succeeded, and `audit --verify` reports a snapshot without
 * an entry as unrecorded.
 */
import { readFileSync } from 'node:fs'
import { appendAudit, loadAuditPrivateKey, type AuditOperation, type Repository, type StoredAuditEntry } from '../engine/index.js'
import { CliError, EXIT, PROGRAM, err, who, type GlobalArgs } from './common.js'

export interface AuditArgs extends GlobalArgs {
  'audit-key'?: string
}

export interface AuditRecorder {
  /**
   * Appends the entry. A failure is a warning (null), or with `strict` (forget, before it removes anything:
   * a removal without its entry would show as tampering) an error that stops the command.
   */
  record(
    repo: Repository,
    e: { operation: AuditOperation; snapshotId?: string | null; removed?: string[]; summary?: Record<string, unknown> },
    o?: { strict?: boolean },
  ): Promise<StoredAuditEntry | null>
}

/** Reads the signing key from --audit-key or COLDSTORE_AUDIT_KEY (a PEM file), if any. */
export function auditKeyFile(a: AuditArgs): string | undefined {
  return a['audit-key'] ?? (process.env.COLDSTORE_AUDIT_KEY || undefined)
}

export function prepareAudit(a: AuditArgs): AuditRecorder {
  const file = auditKeyFile(a)
  let key = null
  if (file) {
    let pem: Buffer
    try {
      pem = readFileSync(file)
    } catch (e) {
      throw new CliError(`cannot read the audit key ${file}: ${(e as Error).message}`, EXIT.usage)
    }
    try {
      key = loadAuditPrivateKey(pem, `audit key ${file}`)
    } catch (e) {
      throw new CliError((e as Error).message, EXIT.usage)
    }
  }
  return {
    async record(repo, e, o = {}) {
      try {
        const w = who()
        return await appendAudit(repo, { ...e, host: w.hostname, username: w.username, program: PROGRAM, now: () => new Date(), signingKey: key })
      } catch (x) {
        if (o.strict) throw new CliError(`could not record the ${e.operation} in the audit trail, so nothing was changed: ${(x as Error).message}`, EXIT.failure)
        err(`warning: could not record the ${e.operation} in the audit trail: ${(x as Error).message}`)
        return null
      }
    },
  }
}
