/**
 * audit/: the repository's hash-chained audit trail (`audit/<seq>-<id>`).
 *
 * Every entry is sealed like other repository objects (so host names, user
 * names and paths stay encrypted), and its id is the plain BLAKE3 of its
 * plaintext, which names the previous entry's id: anyone with the password can
 * check the chain, and an optional Ed25519 signature lets anyone with the
 * public key check who wrote it. Encoding in FORMAT.md ("Audit trail").
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomInt, sign as edSign, verify as edVerify, createHash, type KeyObject } from 'node:crypto'
import { ExistsError, IntegrityError, RemoteError, UsageError, isNotFound } from '../errors.js'
import { hashHex } from '../hash/index.js'
import { forEachLimit, type Repository } from '../repo/index.js'
import type { SnapshotDoc } from '../snapshot/index.js'

/** Operations that append an entry. */
export type AuditOperation = 'snapshot' | 'freeze' | 'restore' | 'verify' | 'forget' | 'prune' | 'export'

export const AUDIT_OPERATIONS: readonly AuditOperation[] = ['snapshot', 'freeze', 'restore', 'verify', 'forget', 'prune', 'export']

/** The `prev` of the first entry. */
export const AUDIT_GENESIS = '0'.repeat(64)

/** Digits of `seq` in object names (zero-padded so names sort in chain order). */
const SEQ_DIGITS = 10

const NAME_RE = /^audit\/(\d{10})-([0-9a-f]{64})$/
const CLAIM_RE = /^audit\/(\d{10})$/

/** The snapshot an entry is about. */
export interface AuditSnapshotRef {
  /** The snapshot object's id (BLAKE3 of its stored bytes). */
  id: string
  /** Plain BLAKE3 of the snapshot object's plaintext JSON. */
  plain_blake3: string
  kind: string
  time: string
  tree: string
}

/** The signed part of an entry (first line of the plaintext). */
export interface AuditEntry {
  version: 1
  /** The repository's id (config `id`): an entry copied into another repository does not verify there. */
  repository: string
  seq: number
  /** Id of the entry with seq − 1; 64 zeros for seq 1. */
  prev: string
  time: string
  operation: AuditOperation
  host: string
  username: string
  program: string
  /** The snapshot written (snapshot, freeze) or read (restore, verify, export); null when none. */
  snapshot: AuditSnapshotRef | null
  /** Snapshot ids removed by the operation (forget, prune). */
  removed: string[]
  /** Operation-specific statistics (files, bytes, errors …). */
  summary: Record<string, unknown>
  /** 16 random bytes, hex: the id reveals nothing about guessable contents. */
  nonce: string
  /**
   * Only in the first entry (seq 1): the snapshot objects that existed when
   * the trail began, sorted. They are "not covered"; any other snapshot
   * without an entry is an error.
   */
  preexisting_snapshots?: string[]
}

/** The optional second line of the plaintext. */
export interface AuditSignature {
  alg: 'ed25519'
  /** Hex of the first 16 bytes of SHA-256 of the raw 32-byte public key. */
  key_id: string
  /** Raw 32-byte public key, base64. */
  public_key: string
  /** Ed25519 signature of the first line's bytes (without the newline), base64. */
  signature: string
}

/** An entry as read back. */
export interface StoredAuditEntry extends AuditEntry {
  id: string
  name: string
  signature: AuditSignature | null
}

/** What a caller gives `appendAudit`. */
export interface AuditInput {
  operation: AuditOperation
  /** Snapshot written or read; its object is read to record its digest. */
  snapshotId?: string | null
  removed?: string[]
  summary?: Record<string, unknown>
  host: string
  username: string
  program: string
  now: () => Date
  /** Ed25519 private key (`loadAuditPrivateKey`): the entry is signed. */
  signingKey?: KeyObject | null
}

/** How many times `appendAudit` retries after losing a race for a seq. */
const MAX_ATTEMPTS = 40

/** Parses an Ed25519 private key PEM (PKCS#8). */
export function loadAuditPrivateKey(pem: string | Buffer, source = 'the audit key'): KeyObject {
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch (err) {
    throw new UsageError(`${source} is not a PEM private key`, { cause: err })
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new UsageError(`${source} is a ${key.asymmetricKeyType} key; an Ed25519 key is needed (coldstore audit keygen)`)
  return key
}

/** Parses an Ed25519 public key PEM (a private key PEM is accepted too: its public half is used). */
export function loadAuditPublicKey(pem: string | Buffer, source = 'the audit public key'): KeyObject {
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch (err) {
    throw new UsageError(`${source} is not a PEM public key`, { cause: err })
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new UsageError(`${source} is a ${key.asymmetricKeyType} key; an Ed25519 key is needed`)
  return key
}

/** A new Ed25519 key pair as PEM (private: PKCS#8, public: SPKI) and its key id. */
export function generateAuditKey(): { privatePem: string; publicPem: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: auditKeyId(publicKey),
  }
}

function rawPublicKey(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  const jwk = pub.export({ format: 'jwk' }) as { x?: string }
  return Buffer.from(jwk.x ?? '', 'base64url')
}

/** Hex of the first 16 bytes of SHA-256 of the raw public key. */
export function auditKeyId(key: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(key)).digest('hex').slice(0, 32)
}

function publicKeyFromRaw(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' })
}

/** `audit/<seq>-<id>` */
export function auditObjectName(seq: number, id: string): string {
  return `audit/${String(seq).padStart(SEQ_DIGITS, '0')}-${id}`
}

/** Encodes an entry's plaintext: the entry JSON, a newline, and optionally the signature JSON and a newline. */
export function encodeAuditPlaintext(entry: AuditEntry, key?: KeyObject | null): Buffer {
  const line = Buffer.from(JSON.stringify(entry))
  if (!key) return Buffer.concat([line, NL])
  const sig: AuditSignature = {
    alg: 'ed25519',
    key_id: auditKeyId(key),
    public_key: rawPublicKey(key).toString('base64'),
    signature: edSign(null, line, key).toString('base64'),
  }
  return Buffer.concat([line, NL, Buffer.from(JSON.stringify(sig)), NL])
}

const NL = Buffer.from('\n')

/** Splits and parses a plaintext; throws IntegrityError when malformed. */
export function decodeAuditPlaintext(plain: Buffer, name: string): { entry: AuditEntry; line: Buffer; signature: AuditSignature | null } {
  const nl = plain.indexOf(0x0a)
  if (nl < 0 || plain[plain.length - 1] !== 0x0a) throw new IntegrityError(`${name}: not an audit entry (no line end)`)
  const line = plain.subarray(0, nl)
  const rest = plain.subarray(nl + 1)
  let entry: AuditEntry
  let signature: AuditSignature | null = null
  try {
    entry = JSON.parse(line.toString('utf8')) as AuditEntry
    if (rest.length > 0) {
      const nl2 = rest.indexOf(0x0a)
      if (nl2 !== rest.length - 1) throw new Error('more than two lines')
      signature = JSON.parse(rest.subarray(0, nl2).toString('utf8')) as AuditSignature
    }
  } catch (err) {
    throw new IntegrityError(`${name}: not an audit entry (${(err as Error).message})`, {}, { cause: err })
  }
  if (typeof entry !== 'object' || entry === null || entry.version !== 1 || !Number.isSafeInteger(entry.seq) || typeof entry.prev !== 'string') {
    throw new IntegrityError(`${name}: not a version 1 audit entry`)
  }
  return { entry, line, signature }
}

/** Checks a signature against the bytes it signs; null when valid, else the reason. */
function checkSignature(sig: AuditSignature, line: Buffer): string | null {
  if (sig.alg !== 'ed25519') return `unknown signature algorithm ${JSON.stringify(sig.alg)}`
  try {
    const raw = Buffer.from(sig.public_key, 'base64')
    if (raw.length !== 32) return 'public key is not 32 bytes'
    const key = publicKeyFromRaw(raw)
    if (auditKeyId(key) !== sig.key_id) return 'key id does not match the public key'
    return edVerify(null, line, key, Buffer.from(sig.signature, 'base64')) ? null : 'signature does not verify'
  } catch (err) {
    return `malformed signature (${(err as Error).message})`
  }
}

interface EntryName { name: string; seq: number; id: string; size: number }

/** Names under audit/: entries (`<seq>-<id>`), claims (`<seq>`) and anything else. */
async function listAuditNames(repo: Repository, prefix = 'audit/'): Promise<{ entries: EntryName[]; claims: Map<number, string>; other: string[] }> {
  const entries: EntryName[] = []
  const claims = new Map<number, string>()
  const other: string[] = []
  for await (const o of repo.remote.list(prefix)) {
    const m = NAME_RE.exec(o.name)
    const c = CLAIM_RE.exec(o.name)
    if (m) entries.push({ name: o.name, seq: Number(m[1]), id: m[2], size: o.size })
    else if (c) claims.set(Number(c[1]), o.name)
    else other.push(o.name)
  }
  entries.sort((a, b) => a.seq - b.seq || (a.name < b.name ? -1 : 1))
  return { entries, claims, other }
}

/** `audit/<seq>`: the claim of a seq, written create-exclusive, holding the same bytes as the entry. */
export function auditClaimName(seq: number): string {
  return `audit/${String(seq).padStart(SEQ_DIGITS, '0')}`
}

/** Reads a claim: its stored bytes and the id of the entry it holds. */
async function readClaim(repo: Repository, name: string): Promise<{ bytes: Buffer; id: string; entry: AuditEntry; line: Buffer; signature: AuditSignature | null }> {
  const bytes = await repo.remote.get(name)
  let plain: Buffer
  try {
    plain = repo.sealer.open(bytes, name)
  } catch (err) {
    throw new IntegrityError(`${name}: cannot be opened (altered or damaged)`, {}, { cause: err })
  }
  return { bytes, id: hashHex(plain), ...decodeAuditPlaintext(plain, name) }
}

/** The reference an entry records for a snapshot: its id and the digest of its plaintext. */
export async function snapshotRef(repo: Repository, id: string): Promise<AuditSnapshotRef> {
  const name = `snapshots/${id}`
  const bytes = await repo.remote.get(name)
  if (hashHex(bytes) !== id) throw new IntegrityError(`${name}: content does not match its name (damaged)`)
  const plain = repo.sealer.open(bytes, name)
  const doc = JSON.parse(plain.toString('utf8')) as SnapshotDoc
  return { id, plain_blake3: hashHex(plain), kind: doc.kind, time: doc.time, tree: doc.tree }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
/** A short random wait before trying again after losing a seq, growing with the attempts. */
const backoff = (attempt: number): Promise<void> => sleep(5 + randomInt(20) * Math.min(1 + attempt, 10))

/**
 * Appends one entry to the audit trail and returns it.
 *
 * Concurrency (several hosts may share a repository): the writer lists the
 * trail, builds the entry for the head's seq + 1, and claims that seq by
 * writing the entry's bytes as `audit/<seq>` create-exclusive (`put` with
 * `exclusive`: a hard link on local disks, atomic in memory). The writer that
 * loses gets ExistsError and starts over on the new head, so exactly one entry
 * exists per seq and none is lost. Then it writes `audit/<seq>-<id>`. A claim
 * is final the moment it exists, so others may chain onto it at once; an
 * entry missing next to its claim (a crash between the two writes) is
 * completed by the next writer. Where the store cannot make an exclusive put
 * atomic (S3 without conditional writes), the writer reads the claim again
 * after writing its entry and, if a rival's claim landed over its own, deletes
 * its entry and appends after the rival.
 */
export async function appendAudit(repo: Repository, input: AuditInput): Promise<StoredAuditEntry> {
  if (!AUDIT_OPERATIONS.includes(input.operation)) throw new UsageError(`unknown audit operation ${JSON.stringify(input.operation)}`)
  const snapshot = input.snapshotId ? await snapshotRef(repo, input.snapshotId) : null
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const { entries, claims } = await listAuditNames(repo)
    const headSeq = Math.max(entries.at(-1)?.seq ?? 0, ...claims.keys())
    const prev = headSeq === 0 ? AUDIT_GENESIS : await headId(repo, headSeq, entries, claims)
    let preexisting: string[] | undefined
    if (headSeq === 0) {
      preexisting = []
      for await (const o of repo.remote.list('snapshots/')) {
        const id = o.name.slice('snapshots/'.length)
        if (id !== input.snapshotId) preexisting.push(id)
      }
      preexisting.sort()
    }
    const entry: AuditEntry = {
      version: 1,
      repository: repo.config.id,
      seq: headSeq + 1,
      prev,
      time: input.now().toISOString(),
      operation: input.operation,
      host: input.host,
      username: input.username,
      program: input.program,
      snapshot,
      removed: input.removed ?? [],
      summary: input.summary ?? {},
      nonce: randomBytes(16).toString('hex'),
      ...(preexisting ? { preexisting_snapshots: preexisting } : {}),
    }
    const plain = encodeAuditPlaintext(entry, input.signingKey)
    const id = hashHex(plain)
    const name = auditObjectName(entry.seq, id)
    const sealed = repo.sealer.seal(plain)
    try {
      await repo.remote.put(auditClaimName(entry.seq), sealed, { exclusive: true })
    } catch (err) {
      if (!(err instanceof ExistsError)) throw err
      // Another writer took this seq: append after its entry.
      await backoff(attempt)
      continue
    }
    await repo.remote.put(name, sealed)
    // On a store without conditional writes (check-then-put) a rival claim can still land late, over
    // ours. Read the claim once more: if it holds another entry, ours is not in the chain; take it back
    // and append after the winner.
    const claimNow = await repo.remote.get(auditClaimName(entry.seq)).catch(() => undefined)
    if (claimNow && !claimNow.equals(sealed) && opens(repo, claimNow, auditClaimName(entry.seq))) {
      await repo.remote.delete(name)
      await backoff(attempt)
      continue
    }
    return { ...entry, id, name, signature: input.signingKey ? decodeAuditPlaintext(plain, name).signature : null }
  }
  throw new RemoteError(`could not append to the audit trail after ${MAX_ATTEMPTS} attempts: every sequence number it tried was taken (many writers at once, or a listing of audit/ that lags behind its writes)`, { transient: true })
}

/** True when `sealed` authenticates (a damaged read is not a rival's claim). */
function opens(repo: Repository, sealed: Buffer, name: string): boolean {
  try {
    repo.sealer.open(sealed, name)
    return true
  } catch {
    return false
  }
}

/**
 * The id of the entry at `seq` (the head), from its claim. A claim without its
 * entry (a writer interrupted between the two puts, or still between them), or
 * whose entry has another size than the claim (bytes lost), is completed here:
 * the entry is the claim's bytes under `<seq>-<id>`.
 */
async function headId(repo: Repository, seq: number, entries: EntryName[], claims: Map<number, string>): Promise<string> {
  const claim = claims.get(seq)
  if (!claim) {
    const at = entries.filter((e) => e.seq === seq)
    if (at.length === 1) return at[0].id
    throw new IntegrityError(`the audit trail's newest entry (${seq}) has no claim object${at.length ? ' and several entries' : ''}: run coldstore audit --verify`)
  }
  let c
  try {
    c = await readClaim(repo, claim)
  } catch (err) {
    throw new IntegrityError(`the audit trail's newest entry is damaged (${(err as Error).message}): run coldstore audit --verify`, {}, { cause: err })
  }
  const stored = entries.find((e) => e.seq === seq && e.id === c.id)
  // Missing: a writer was interrupted between its two puts. Of another size than the claim: the entry lost
  // part of its bytes (a disk that did not keep a write). Either way the claim holds the entry's exact bytes
  // (its plaintext hashes to the id in the entry's name), so writing them completes or restores the entry.
  if (!stored || stored.size !== c.bytes.length) await repo.remote.put(auditObjectName(seq, c.id), c.bytes)
  return c.id
}

/** Reads one entry and checks that it matches its name. */
async function readEntry(repo: Repository, name: string, id: string): Promise<{ entry: AuditEntry; line: Buffer; signature: AuditSignature | null }> {
  const bytes = await repo.remote.get(name)
  let plain: Buffer
  try {
    plain = repo.sealer.open(bytes, name)
  } catch (err) {
    throw new IntegrityError(`${name}: cannot be opened (altered or damaged)`, {}, { cause: err })
  }
  if (hashHex(plain) !== id) throw new IntegrityError(`${name}: content does not match its id (altered)`)
  return decodeAuditPlaintext(plain, name)
}

/** Lists the audit trail in seq order (entries that cannot be read are skipped and reported through `onError`). */
export async function listAudit(repo: Repository, onError?: (name: string, err: unknown) => void): Promise<StoredAuditEntry[]> {
  const { entries } = await listAuditNames(repo)
  const out: (StoredAuditEntry | undefined)[] = new Array(entries.length)
  await forEachLimit(entries, repo.remote.properties.maxConnections * 2, async (e, i) => {
    try {
      const r = await readEntry(repo, e.name, e.id)
      out[i] = { ...r.entry, id: e.id, name: e.name, signature: r.signature }
    } catch (err) {
      if (isNotFound(err)) return
      if (onError) onError(e.name, err)
      else throw err
    }
  })
  return out.filter((x): x is StoredAuditEntry => x !== undefined)
}

/** Kinds of problems `verifyAudit` reports. */
export type AuditFindingKind =
  | 'unexpected_object' // a name under audit/ that is not <seq>-<id>
  | 'altered_entry' // content does not open, does not match its id, or does not parse
  | 'seq_mismatch' // the name's seq differs from the entry's (renamed: reordered)
  | 'wrong_repository'
  | 'missing_entry' // a seq with no entry (removed)
  | 'broken_chain' // prev does not name the entry before (removed, reordered or replaced)
  | 'orphan_entry' // a second entry at a seq, not part of the chain
  | 'claim_mismatch' // the claim of a seq holds another entry than the one stored for it
  | 'missing_claim' // an entry without its claim object
  | 'incomplete_entry' // a claim without its entry (an interrupted append)
  | 'time_order' // an entry older than the one before (clock skew between hosts, or reordering)
  | 'altered_snapshot' // a snapshot object that no longer matches its name or the digest recorded for it
  | 'missing_snapshot' // a snapshot recorded as written, gone without a later forget/prune entry removing it (a freeze: gone at all)
  | 'unrecorded_snapshot' // a snapshot made after the trail began with no entry
  | 'uncovered_snapshot' // a snapshot older than the trail (made before it existed)
  | 'bad_signature'
  | 'unsigned_entry' // with a required key: an entry not signed by it

export interface AuditFinding {
  kind: AuditFindingKind
  severity: 'error' | 'warning' | 'info'
  message: string
  name?: string
  seq?: number
  snapshotId?: string
}

export interface AuditVerifyOptions {
  /** Require signatures by this key from its first signed entry on (earlier entries are reported as unsigned, info). */
  publicKey?: KeyObject | null
}

export interface AuditVerifyReport {
  ok: boolean
  entries: number
  head: { seq: number; id: string } | null
  signed: number
  snapshots: { total: number; covered: number; not_covered: number }
  findings: AuditFinding[]
}

/**
 * Checks the audit trail: every entry opens and matches its id and name,
 * seqs run 1…n without gaps, each entry names the previous one, signatures
 * verify, every snapshot recorded as written still matches the digest
 * recorded (or was removed by a forget or prune entry after the one that recorded it; a freeze never), and every snapshot
 * object has an entry unless the first entry lists it as existing before the
 * trail began: those are reported as not covered (info), so repositories from
 * before the audit trail still verify.
 *
 * Limit: removing the newest entries (truncating the tail) leaves a valid
 * chain; it shows only when a removed entry recorded a snapshot that still
 * exists (unrecorded_snapshot). Keep the head id elsewhere to detect it.
 */
export async function verifyAudit(repo: Repository, o: AuditVerifyOptions = {}): Promise<AuditVerifyReport> {
  const findings: AuditFinding[] = []
  const { entries: names, claims, other } = await listAuditNames(repo)
  for (const n of other) findings.push({ kind: 'unexpected_object', severity: 'error', name: n, message: `${n}: not an audit entry name (expected audit/<10-digit seq>-<64 hex id>)` })

  interface Read { name: string; seq: number; id: string; entry: AuditEntry; line: Buffer; signature: AuditSignature | null }
  const read: (Read | undefined)[] = new Array(names.length)
  await forEachLimit(names, repo.remote.properties.maxConnections * 2, async (n, i) => {
    try {
      const r = await readEntry(repo, n.name, n.id)
      read[i] = { ...n, ...r }
    } catch (err) {
      if (isNotFound(err)) return
      findings.push({ kind: 'altered_entry', severity: 'error', name: n.name, seq: n.seq, message: (err as Error).message })
    }
  })

  const claimed = new Map<number, Read>()
  await forEachLimit([...claims], repo.remote.properties.maxConnections * 2, async ([seq, name]) => {
    try {
      const c = await readClaim(repo, name)
      claimed.set(seq, { name, seq, id: c.id, entry: c.entry, line: c.line, signature: c.signature })
    } catch (err) {
      if (isNotFound(err)) return
      findings.push({ kind: 'altered_entry', severity: 'error', name, seq, message: (err as Error).message })
    }
  })

  const bySeq = new Map<number, Read[]>()
  let maxSeq = 0
  for (const n of names) maxSeq = Math.max(maxSeq, n.seq)
  for (const seq of claims.keys()) maxSeq = Math.max(maxSeq, seq)
  for (const r of read) {
    if (!r) continue
    if (r.entry.seq !== r.seq) {
      findings.push({ kind: 'seq_mismatch', severity: 'error', name: r.name, seq: r.seq, message: `${r.name}: the entry says seq ${r.entry.seq} but is stored as seq ${r.seq} (entries were renamed or reordered)` })
    }
    if (r.entry.repository !== repo.config.id) {
      findings.push({ kind: 'wrong_repository', severity: 'error', name: r.name, seq: r.seq, message: `${r.name}: belongs to repository ${String(r.entry.repository).slice(0, 16)}…, not this one` })
    }
    const list = bySeq.get(r.seq) ?? []
    list.push(r)
    bySeq.set(r.seq, list)
  }

  // Walk the chain.
  const chain: Read[] = []
  let prevId: string | null = AUDIT_GENESIS
  let prevTime: string | null = null
  for (let seq = 1; seq <= maxSeq; seq++) {
    let candidates = bySeq.get(seq) ?? []
    const rawAtSeq = names.filter((n) => n.seq === seq)
    const claim = claimed.get(seq)
    if (candidates.length === 0 && claim && rawAtSeq.length === 0) {
      // A writer stopped between its claim and its entry: the claim holds the entry (the next append completes it).
      findings.push({ kind: 'incomplete_entry', severity: 'warning', name: claim.name, seq, message: `${claim.name}: claimed, but audit/${claim.name.slice(6)}-${claim.id.slice(0, 16)}… was not written (an interrupted append; the next one completes it)` })
      if (claim.entry.seq !== seq) findings.push({ kind: 'seq_mismatch', severity: 'error', name: claim.name, seq, message: `${claim.name}: the entry says seq ${claim.entry.seq} but is stored as seq ${seq}` })
      candidates = [claim]
    }
    if (candidates.length === 0) {
      if (rawAtSeq.length === 0 && !claims.has(seq)) findings.push({ kind: 'missing_entry', severity: 'error', seq, message: `audit entry ${seq} is missing (removed)` })
      prevId = null // unknown: accept whatever follows, so one removal is one finding
      continue
    }
    if (!claims.has(seq)) {
      findings.push({ kind: 'missing_claim', severity: 'warning', seq, message: `audit/${String(seq).padStart(SEQ_DIGITS, '0')}: the claim of entry ${seq} is missing (removed)` })
    } else if (claim && !candidates.some((c) => c.id === claim.id)) {
      findings.push({ kind: 'claim_mismatch', severity: 'error', name: claim.name, seq, message: `${claim.name}: the claim of seq ${seq} holds entry ${claim.id.slice(0, 16)}…, not the one stored as entry ${seq} (replaced)` })
    }
    // Of the entries linking to the one before, the one its seq's claim holds (a second one was added beside it).
    const linked: Read[] = prevId === null ? candidates : candidates.filter((c) => c.entry.prev === prevId)
    let pick: Read | undefined = linked.find((c) => c.id === claim?.id) ?? linked[0]
    if (!pick) {
      pick = candidates[0]
      findings.push({
        kind: 'broken_chain', severity: 'error', name: pick.name, seq,
        message: `${pick.name}: names ${pick.entry.prev.slice(0, 16)}… as the previous entry, but entry ${seq - 1} is ${prevId!.slice(0, 16)}… (an entry was removed, reordered or replaced)`,
      })
    }
    for (const c of candidates) {
      if (c !== pick) findings.push({ kind: 'orphan_entry', severity: 'error', name: c.name, seq, message: `${c.name}: a second entry for seq ${seq}, not part of the chain (added)` })
    }
    if (prevTime !== null && pick.entry.time < prevTime) {
      findings.push({ kind: 'time_order', severity: 'warning', name: pick.name, seq, message: `${pick.name}: dated ${pick.entry.time}, before the previous entry (${prevTime}): clock skew between hosts, or reordered entries` })
    }
    prevTime = pick.entry.time
    chain.push(pick)
    prevId = pick.id
  }

  // Signatures.
  let signed = 0
  const requiredKeyId = o.publicKey ? auditKeyId(o.publicKey) : null
  let seenRequired = false
  for (const r of chain) {
    if (r.signature) {
      const why = checkSignature(r.signature, r.line)
      if (why) findings.push({ kind: 'bad_signature', severity: 'error', name: r.name, seq: r.seq, message: `${r.name}: ${why}` })
      else signed++
      if (r.signature.key_id === requiredKeyId && !why) seenRequired = true
    }
    if (requiredKeyId && r.signature?.key_id !== requiredKeyId) {
      findings.push({
        kind: 'unsigned_entry', severity: seenRequired ? 'error' : 'info', name: r.name, seq: r.seq,
        message: `${r.name}: not signed by key ${requiredKeyId}${seenRequired ? ' (entries after its first signed one must be)' : ' (before its first signed entry)'}`,
      })
    }
  }
  if (requiredKeyId && !seenRequired && chain.length > 0) {
    findings.push({ kind: 'unsigned_entry', severity: 'error', message: `no audit entry is signed by key ${requiredKeyId}` })
  }

  // Snapshots.
  const written = new Map<string, Read>()
  // Removals count only in forget and prune entries, and only for a snapshot recorded before them.
  const removedAt = new Map<string, Read>()
  for (const r of chain) {
    if ((r.entry.operation === 'snapshot' || r.entry.operation === 'freeze') && r.entry.snapshot) written.set(r.entry.snapshot.id, r)
    if (r.entry.operation !== 'forget' && r.entry.operation !== 'prune') continue
    for (const id of Array.isArray(r.entry.removed) ? r.entry.removed : []) if (!removedAt.has(id)) removedAt.set(id, r)
  }
  const snapIds: string[] = []
  for await (const obj of repo.remote.list('snapshots/')) snapIds.push(obj.name.slice('snapshots/'.length))
  const present = new Set(snapIds)
  const genesis = chain.length && chain[0].seq === 1 ? chain[0].entry : null
  const preexisting = new Set(genesis?.preexisting_snapshots ?? [])
  let covered = 0
  let notCovered = 0
  await forEachLimit(snapIds, repo.remote.properties.maxConnections * 2, async (id) => {
    const name = `snapshots/${id}`
    const rec = written.get(id)
    let bytes: Buffer
    try {
      bytes = await repo.remote.get(name)
    } catch (err) {
      if (isNotFound(err)) return
      throw err
    }
    if (hashHex(bytes) !== id) {
      findings.push({ kind: 'altered_snapshot', severity: 'error', name, snapshotId: id, message: `${name}: content does not match its name (altered)` })
      if (rec) covered++
      return
    }
    let plain: Buffer
    try {
      plain = repo.sealer.open(bytes, name)
    } catch {
      findings.push({ kind: 'altered_snapshot', severity: 'error', name, snapshotId: id, message: `${name}: cannot be opened (altered or damaged)` })
      return
    }
    if (rec) {
      covered++
      if (hashHex(plain) !== rec.entry.snapshot!.plain_blake3) {
        findings.push({ kind: 'altered_snapshot', severity: 'error', name, snapshotId: id, message: `${name}: does not match the digest audit entry ${rec.seq} recorded for it (altered)` })
      }
      return
    }
    let time = ''
    try {
      time = String((JSON.parse(plain.toString('utf8')) as SnapshotDoc).time)
    } catch {
      // unparsable: treated as made after the trail began
    }
    notCovered++
    // Without a readable first entry nothing says which snapshots came before the trail: report, do not fail.
    if (genesis !== null && !preexisting.has(id)) {
      findings.push({ kind: 'unrecorded_snapshot', severity: 'error', name, snapshotId: id, message: `${name}: made ${time || 'at an unknown time'}, not there when the audit trail began, and no entry records it (an entry was removed, or the run was interrupted before recording it)` })
    } else {
      findings.push({ kind: 'uncovered_snapshot', severity: 'info', name, snapshotId: id, message: `${name}: made ${time}${genesis ? ', before the audit trail began' : ''}: not covered by the audit trail` })
    }
  })
  for (const [id, r] of written) {
    if (present.has(id)) continue
    const by = removedAt.get(id)
    const freeze = r.entry.operation === 'freeze' || r.entry.snapshot?.kind === 'freeze'
    if (by && by.seq > r.seq && !freeze) continue
    const why = freeze
      ? `a freeze, recorded by audit entry ${r.seq}, is gone${by ? ` (entry ${by.seq}, a ${by.entry.operation}, lists it as removed, but freezes are never removed)` : ''}`
      : by
        ? `recorded by audit entry ${r.seq} but gone; entry ${by.seq} lists it as removed, but comes before the snapshot was recorded`
        : `recorded by audit entry ${r.seq} but gone, and no forget or prune entry removed it`
    findings.push({ kind: 'missing_snapshot', severity: 'error', snapshotId: id, name: `snapshots/${id}`, message: `snapshots/${id}: ${why}` })
  }

  const order = { error: 0, warning: 1, info: 2 }
  findings.sort((a, b) => order[a.severity] - order[b.severity] || (a.seq ?? 0) - (b.seq ?? 0) || (a.name ?? '').localeCompare(b.name ?? ''))
  const head = chain.at(-1)
  return {
    ok: !findings.some((f) => f.severity === 'error'),
    entries: names.length,
    head: head ? { seq: head.seq, id: head.id } : null,
    signed,
    snapshots: { total: snapIds.length, covered, not_covered: notCovered },
    findings,
  }
}
