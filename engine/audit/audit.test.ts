/**
 * The audit trail on real repositories in temp dirs: appends build one chain,
 * concurrent writers never lose or fork an entry, and `verifyAudit` finds every
 * kind of tampering (altered, removed, reordered entries; altered, removed or
 * unrecorded snapshot objects; stripped or forged signatures) while a
 * repository from before the audit trail still verifies.
 */
import t, { type Test } from 'tap'
import { createPublicKey } from 'node:crypto'
import { cpSync, existsSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { backup } from '../backup/index.js'
import { hashHex } from '../hash/index.js'
import { LocalRemote } from '../remote/index.js'
import { Repository } from '../repo/index.js'
import { makeTestRepo, seededBytes, writeTree } from '../testing/test-repo.js'
import {
  AUDIT_GENESIS, appendAudit, auditClaimName, auditKeyId, decodeAuditPlaintext, encodeAuditPlaintext, generateAuditKey, listAudit,
  loadAuditPrivateKey, loadAuditPublicKey, verifyAudit, auditObjectName, type AuditFindingKind, type AuditInput,
} from './index.js'

let clock = Date.parse('2026-03-01T00:00:00Z')
const now = (): Date => new Date((clock += 60_000))
const who = { host: 'h1', username: 'u1', program: 'coldstore test' }
const backupOpts = { hostname: 'h1', username: 'u1', program: 'coldstore test', now }

interface Fixture {
  dir: string
  repoDir: string
  repo: Repository
  snaps: string[]
  password: string | null
}

const root = t.testdir()
let fixtures = 0

/**
 * A repository with two snapshots, each recorded, and verify and restore
 * entries: built once per kind (backups are slow on a busy machine), copied
 * for every test, and opened with its own cache.
 */
const bases = new Map<string, Promise<{ repoDir: string; snaps: string[] }>>()
const signingKey = loadAuditPrivateKey(generateAuditKey().privatePem)

function buildBase(kind: 'encrypted' | 'plain' | 'signed'): Promise<{ repoDir: string; snaps: string[] }> {
  let p = bases.get(kind)
  if (p) return p
  p = (async () => {
    const dir = join(root, `base-${kind}`)
    const tr = await makeTestRepo(dir, { password: kind === 'encrypted' ? 'correct horse' : null })
    const key = kind === 'signed' ? signingKey : null
    try {
      const src = join(dir, 'src')
      writeTree(src, { 'a.bin': seededBytes('a', 100_000), 'b.txt': 'hello' })
      const s1 = await backup(tr.repo, { ...backupOpts, paths: [src] })
      await appendAudit(tr.repo, { ...who, now, operation: 'snapshot', snapshotId: s1.id, summary: { files: 2 }, signingKey: key })
      await appendAudit(tr.repo, { ...who, now, operation: 'verify', summary: { ok: true }, signingKey: key })
      writeFileSync(join(src, 'c.bin'), seededBytes('c', 50_000))
      const s2 = await backup(tr.repo, { ...backupOpts, paths: [src] })
      await appendAudit(tr.repo, { ...who, now, operation: 'snapshot', snapshotId: s2.id, summary: { files: 3 }, signingKey: key })
      await appendAudit(tr.repo, { ...who, now, operation: 'restore', snapshotId: s1.id, summary: { files: 2 }, signingKey: key })
      return { repoDir: tr.repoDir, snaps: [s1.id!, s2.id!] }
    } finally {
      await tr.repo.close()
    }
  })()
  bases.set(kind, p)
  return p
}

async function fixture(t: Test, o: { password?: string | null; key?: unknown } = {}): Promise<Fixture> {
  const kind = o.key ? 'signed' : o.password === null ? 'plain' : 'encrypted'
  const b = await buildBase(kind)
  const dir = join(root, String(++fixtures))
  const repoDir = join(dir, 'repo')
  cpSync(b.repoDir, repoDir, { recursive: true })
  const password = kind === 'encrypted' ? 'correct horse' : null
  const repo = await Repository.open(await LocalRemote.open({ path: repoDir }), { password, cacheDir: join(dir, 'cache') })
  t.teardown(() => repo.close())
  return { dir, repoDir, repo, snaps: b.snaps, password }
}

/** Entry file names (`<seq>-<id>`), in order; each has a claim `<seq>` beside it. */
function auditFiles(repoDir: string): string[] {
  return readdirSync(join(repoDir, 'audit')).filter((n) => n.includes('-')).sort()
}

/** Removes entry `name` and its claim, as someone deleting it would. */
function removeEntry(repoDir: string, name: string): void {
  rmSync(join(repoDir, 'audit', name))
  rmSync(join(repoDir, 'audit', name.slice(0, 10)))
}

/** Replaces entry `seq` (entry and claim) with `plain`, sealed. */
function replaceEntry(f: Fixture, seq: number, plain: Buffer): void {
  const old = auditFiles(f.repoDir).find((n) => Number(n.slice(0, 10)) === seq)
  if (old) removeEntry(f.repoDir, old)
  const sealed = f.repo.sealer.seal(plain)
  writeFileSync(join(f.repoDir, auditObjectName(seq, hashHex(plain))), sealed)
  writeFileSync(join(f.repoDir, auditClaimName(seq)), sealed)
}

function kinds(r: { findings: { kind: AuditFindingKind; severity: string }[] }, severity = 'error'): AuditFindingKind[] {
  return r.findings.filter((f) => f.severity === severity).map((f) => f.kind)
}

t.test('appends form one chain that lists in order and verifies', async (t) => {
  const f = await fixture(t)
  const names = auditFiles(f.repoDir)
  t.same(names.map((n) => n.slice(0, 10)), ['0000000001', '0000000002', '0000000003', '0000000004'], 'seq is zero-padded to 10 digits')
  for (const n of names) t.ok(readFileSync(join(f.repoDir, 'audit', n)).equals(readFileSync(join(f.repoDir, 'audit', n.slice(0, 10)))), `${n.slice(0, 10)}: the claim holds the entry's bytes`)
  const entries = await listAudit(f.repo)
  t.same(entries.map((e) => e.operation), ['snapshot', 'verify', 'snapshot', 'restore'])
  t.equal(entries[0].prev, AUDIT_GENESIS, 'the first entry names 64 zeros')
  for (let i = 1; i < entries.length; i++) t.equal(entries[i].prev, entries[i - 1].id, `entry ${i + 1} names entry ${i}`)
  t.equal(entries[0].snapshot?.id, f.snaps[0])
  t.equal(entries[0].repository, f.repo.config.id)
  t.match(entries[0].nonce, /^[0-9a-f]{32}$/)
  // The recorded digest is the plain BLAKE3 of the snapshot object's plaintext.
  const stored = readFileSync(join(f.repoDir, 'snapshots', f.snaps[0]))
  t.equal(entries[0].snapshot?.plain_blake3, hashHex(f.repo.sealer.open(stored, 'x')))
  // Entries are sealed: the host name does not appear in the stored bytes of an encrypted repository.
  t.notOk(readFileSync(join(f.repoDir, 'audit', names[0])).includes(Buffer.from('"host"')), 'entries are encrypted')
  const r = await verifyAudit(f.repo)
  t.ok(r.ok, JSON.stringify(r.findings))
  t.same(r.head, { seq: 4, id: entries[3].id })
  t.same(r.snapshots, { total: 2, covered: 2, not_covered: 0 })
})

t.test('an altered entry is detected', async (t) => {
  const f = await fixture(t)
  const file = join(f.repoDir, 'audit', auditFiles(f.repoDir)[1])
  const b = readFileSync(file)
  b[20] ^= 1
  writeFileSync(file, b)
  const r = await verifyAudit(f.repo)
  t.notOk(r.ok)
  t.ok(kinds(r).includes('altered_entry'), JSON.stringify(r.findings))
})

t.test('an altered entry re-sealed under its old name is detected (unencrypted repository)', async (t) => {
  const f = await fixture(t, { password: null })
  const name = auditFiles(f.repoDir)[1]
  const file = join(f.repoDir, 'audit', name)
  const plain = f.repo.sealer.open(readFileSync(file), name)
  const changed = Buffer.from(plain.toString('utf8').replace('"ok":true', '"ok":false'))
  t.not(changed.toString(), plain.toString(), 'the plaintext was changed')
  writeFileSync(file, f.repo.sealer.seal(changed))
  const r = await verifyAudit(f.repo)
  t.notOk(r.ok)
  t.ok(kinds(r).includes('altered_entry'))
  t.match(r.findings.find((x) => x.kind === 'altered_entry')?.message, /does not match its id/)
})

t.test('an altered entry renamed to its new id breaks the chain', async (t) => {
  const f = await fixture(t, { password: null })
  const name = auditFiles(f.repoDir)[1]
  const file = join(f.repoDir, 'audit', name)
  const plain = f.repo.sealer.open(readFileSync(file), name)
  const changed = Buffer.from(plain.toString('utf8').replace('"ok":true', '"ok":false'))
  replaceEntry(f, 2, changed)
  t.notOk(existsSync(file))
  const r = await verifyAudit(f.repo)
  t.notOk(r.ok)
  t.same(kinds(r), ['broken_chain'], 'entry 3 no longer names entry 2')
  t.equal(r.findings[0].seq, 3)
})

t.test('an entry whose claim is there is completed by the next append (an interrupted append)', async (t) => {
  const f = await fixture(t)
  const name = auditFiles(f.repoDir)[3]
  rmSync(join(f.repoDir, 'audit', name))
  let r = await verifyAudit(f.repo)
  t.ok(r.ok, 'the claim holds the entry')
  t.same(kinds(r, 'warning'), ['incomplete_entry'])
  const e = await appendAudit(f.repo, { ...who, now, operation: 'verify' })
  t.equal(e.seq, 5)
  t.equal(e.prev, name.slice(11), 'the new entry names the claimed one')
  t.ok(existsSync(join(f.repoDir, 'audit', name)), 'the entry was written from its claim')
  r = await verifyAudit(f.repo)
  t.ok(r.ok)
  t.same(r.findings, [])
})

t.test('the newest entry cut short (a lost write) is restored from its claim by the next append', async (t) => {
  const f = await fixture(t)
  const name = auditFiles(f.repoDir)[3]
  const file = join(f.repoDir, 'audit', name)
  const whole = readFileSync(file)
  writeFileSync(file, whole.subarray(0, Math.floor(whole.length / 2)))
  let r = await verifyAudit(f.repo)
  t.notOk(r.ok)
  t.ok(r.findings.some((x) => x.kind === 'altered_entry' && x.name === `audit/${name}`), 'audit --verify names the damaged entry')
  const e = await appendAudit(f.repo, { ...who, now, operation: 'verify' })
  t.equal(e.prev, name.slice(11), 'the new entry names the damaged one')
  t.ok(readFileSync(file).equals(whole), 'the entry holds its bytes again (those of its claim)')
  r = await verifyAudit(f.repo)
  t.ok(r.ok)
  t.same(r.findings, [])
})

t.test('a removed entry is detected', async (t) => {
  const f = await fixture(t)
  removeEntry(f.repoDir, auditFiles(f.repoDir)[1])
  const r = await verifyAudit(f.repo)
  t.notOk(r.ok)
  t.same(kinds(r), ['missing_entry'], 'one removal is one finding')
  t.equal(r.findings[0].seq, 2)
})

t.test('an entry added beside the chain, or a replaced claim, is detected', async (t) => {
  const f = await fixture(t, { password: null })
  const name = auditFiles(f.repoDir)[1]
  const plain = f.repo.sealer.open(readFileSync(join(f.repoDir, 'audit', name)), name)
  const other = Buffer.from(plain.toString('utf8').replace('"ok":true', '"ok":false'))
  writeFileSync(join(f.repoDir, auditObjectName(2, hashHex(other))), f.repo.sealer.seal(other))
  let r = await verifyAudit(f.repo)
  t.same(kinds(r), ['orphan_entry'])
  rmSync(join(f.repoDir, auditObjectName(2, hashHex(other))))
  writeFileSync(join(f.repoDir, auditClaimName(2)), f.repo.sealer.seal(other))
  r = await verifyAudit(f.repo)
  t.same(kinds(r), ['claim_mismatch'])
})

t.test('reordered entries are detected', async (t) => {
  const f = await fixture(t)
  const [, b, c] = auditFiles(f.repoDir)
  const dir = join(f.repoDir, 'audit')
  // Swap the seqs of entries 2 and 3, keeping each one's id.
  renameSync(join(dir, b), join(dir, 'swap'))
  renameSync(join(dir, c), join(dir, `0000000002-${c.slice(11)}`))
  renameSync(join(dir, 'swap'), join(dir, `0000000003-${b.slice(11)}`))
  const r = await verifyAudit(f.repo)
  t.notOk(r.ok)
  t.ok(kinds(r).includes('seq_mismatch'), JSON.stringify(r.findings))
  t.ok(kinds(r).includes('broken_chain'))
})

t.test('an altered snapshot object is detected', async (t) => {
  const f = await fixture(t)
  const [s1, s2] = f.snaps
  // Another valid snapshot object's bytes under s1's name.
  cpSync(join(f.repoDir, 'snapshots', s2), join(f.repoDir, 'snapshots', s1))
  const r = await verifyAudit(f.repo)
  t.notOk(r.ok)
  t.same(kinds(r), ['altered_snapshot'])
  t.equal(r.findings[0].snapshotId, s1)
})

t.test('a snapshot object re-sealed with other content is detected by the recorded digest', async (t) => {
  const f = await fixture(t, { password: null })
  const [s1] = f.snaps
  const name = join(f.repoDir, 'snapshots', s1)
  const doc = JSON.parse(f.repo.sealer.open(readFileSync(name), 'x').toString()) as Record<string, unknown>
  doc.tags = ['forged']
  const bytes = f.repo.sealer.seal(Buffer.from(JSON.stringify(doc)))
  // Stored under the name its bytes hash to, with the entry edited to point at it: the plaintext digest no longer matches.
  const newId = hashHex(bytes)
  writeFileSync(join(f.repoDir, 'snapshots', newId), bytes)
  rmSync(name)
  const r = await verifyAudit(f.repo)
  t.notOk(r.ok)
  t.ok(kinds(r).includes('missing_snapshot'), 'the recorded snapshot is gone')
  t.ok(kinds(r).includes('unrecorded_snapshot'), 'the replacement has no entry and was not there when the trail began')
  t.equal(r.findings.find((x) => x.kind === 'unrecorded_snapshot')?.snapshotId, newId)
})

t.test('a removed snapshot without a forget entry is detected; with one it is not', async (t) => {
  const f = await fixture(t)
  rmSync(join(f.repoDir, 'snapshots', f.snaps[0]))
  let r = await verifyAudit(f.repo)
  t.same(kinds(r), ['missing_snapshot'])
  await appendAudit(f.repo, { ...who, now, operation: 'forget', removed: [f.snaps[0]] })
  r = await verifyAudit(f.repo)
  t.ok(r.ok, JSON.stringify(r.findings))
})

t.test('a forget entry covers exactly the snapshots it lists, removed after they were recorded', async (t) => {
  const f = await fixture(t)
  rmSync(join(f.repoDir, 'snapshots', f.snaps[0]))
  rmSync(join(f.repoDir, 'snapshots', f.snaps[1]))
  await appendAudit(f.repo, { ...who, now, operation: 'forget', removed: [f.snaps[0]] })
  let r = await verifyAudit(f.repo)
  t.same(r.findings.filter((x) => x.severity === 'error').map((x) => [x.kind, x.snapshotId]), [['missing_snapshot', f.snaps[1]]], 'the one it does not list is still missing')
  // A removal listed by another kind of entry does not count.
  await appendAudit(f.repo, { ...who, now, operation: 'verify', removed: [f.snaps[1]] })
  r = await verifyAudit(f.repo)
  t.same(kinds(r), ['missing_snapshot'], 'a verify entry cannot remove snapshots')
  await appendAudit(f.repo, { ...who, now, operation: 'forget', removed: [f.snaps[1]] })
  r = await verifyAudit(f.repo)
  t.ok(r.ok, JSON.stringify(r.findings))
})

t.test('a forget entry from before the snapshot was recorded does not cover its removal', async (t) => {
  const f = await fixture(t)
  const src = join(f.dir, 'src-late')
  writeTree(src, { 'late.txt': 'late' })
  const late = await backup(f.repo, { ...backupOpts, paths: [src] })
  // Someone lists the id as removed first, then the snapshot's own entry comes, then the object goes.
  await appendAudit(f.repo, { ...who, now, operation: 'forget', removed: [late.id!] })
  await appendAudit(f.repo, { ...who, now, operation: 'snapshot', snapshotId: late.id })
  t.ok((await verifyAudit(f.repo)).ok, 'verifies while the snapshot is there')
  rmSync(join(f.repoDir, 'snapshots', late.id!))
  const r = await verifyAudit(f.repo)
  t.same(kinds(r), ['missing_snapshot'])
  t.match(r.findings[0].message, /before the snapshot was recorded/)
})

t.test('a removed freeze is detected even with a forget entry listing it', async (t) => {
  const f = await fixture(t)
  const src = join(f.dir, 'src-freeze')
  writeTree(src, { 'paper.tex': 'results' })
  const fr = await backup(f.repo, { ...backupOpts, paths: [src], kind: 'freeze' })
  await appendAudit(f.repo, { ...who, now, operation: 'freeze', snapshotId: fr.id })
  rmSync(join(f.repoDir, 'snapshots', fr.id!))
  await appendAudit(f.repo, { ...who, now, operation: 'forget', removed: [fr.id!] })
  const r = await verifyAudit(f.repo)
  t.same(r.findings.filter((x) => x.severity === 'error').map((x) => [x.kind, x.snapshotId]), [['missing_snapshot', fr.id]])
  t.match(r.findings[0].message, /freezes are never removed/)
})

t.test('removing the newest entry that recorded a snapshot is detected (unrecorded snapshot)', async (t) => {
  const f = await fixture(t)
  const names = auditFiles(f.repoDir)
  removeEntry(f.repoDir, names[3]) // restore
  removeEntry(f.repoDir, names[2]) // snapshot 2
  const r = await verifyAudit(f.repo)
  t.notOk(r.ok)
  t.same(kinds(r), ['unrecorded_snapshot'])
  t.equal(r.findings[0].snapshotId, f.snaps[1])
})

t.test('snapshots from before the audit trail are reported as not covered and do not fail', async (t) => {
  const dir = join(root, String(++fixtures))
  const tr = await makeTestRepo(dir)
  t.teardown(() => tr.repo.close())
  const src = join(dir, 'src')
  writeTree(src, { 'a.txt': 'old data' })
  const old = await backup(tr.repo, { ...backupOpts, paths: [src] })
  let r = await verifyAudit(tr.repo)
  t.ok(r.ok, 'a repository without an audit trail verifies')
  t.same(kinds(r, 'info'), ['uncovered_snapshot'])
  t.equal(r.head, null)
  writeFileSync(join(src, 'b.txt'), 'new')
  const s2 = await backup(tr.repo, { ...backupOpts, paths: [src] })
  await appendAudit(tr.repo, { ...who, now, operation: 'snapshot', snapshotId: s2.id })
  r = await verifyAudit(tr.repo)
  t.ok(r.ok, JSON.stringify(r.findings))
  t.same(r.findings.map((x) => [x.kind, x.snapshotId]), [['uncovered_snapshot', old.id]])
  t.same(r.snapshots, { total: 2, covered: 1, not_covered: 1 })
  t.same((await listAudit(tr.repo))[0].preexisting_snapshots, [old.id], 'the first entry lists what was there before')
  // A snapshot made later without an entry (an interrupted run, or a removed entry) fails.
  writeFileSync(join(src, 'c.txt'), 'newer')
  const s3 = await backup(tr.repo, { ...backupOpts, paths: [src] })
  r = await verifyAudit(tr.repo)
  t.notOk(r.ok)
  t.same(r.findings.filter((x) => x.severity === 'error').map((x) => [x.kind, x.snapshotId]), [['unrecorded_snapshot', s3.id]])
})

/** Another repository (its own id and key) with one audit entry; returns that entry's file. */
async function otherRepoEntry(password: string | null): Promise<string> {
  const tr = await makeTestRepo(join(root, String(++fixtures)), { password })
  try {
    const e = await appendAudit(tr.repo, { ...who, now, operation: 'verify' })
    return join(tr.repoDir, e.name)
  } finally {
    await tr.repo.close()
  }
}

t.test('an entry copied from another encrypted repository does not open', async (t) => {
  const f = await fixture(t)
  const file = await otherRepoEntry('correct horse') // the same password, another master key
  cpSync(file, join(f.repoDir, 'audit', `0000000005-${file.slice(-64)}`))
  const r = await verifyAudit(f.repo)
  t.notOk(r.ok)
  t.same(kinds(r), ['altered_entry'])
})

t.test('an entry copied from another unencrypted repository names the wrong repository', async (t) => {
  const f = await fixture(t, { password: null })
  const file = await otherRepoEntry(null)
  cpSync(file, join(f.repoDir, 'audit', `0000000005-${file.slice(-64)}`))
  const r = await verifyAudit(f.repo)
  t.notOk(r.ok)
  t.ok(kinds(r).includes('wrong_repository'), JSON.stringify(r.findings))
  t.ok(kinds(r).includes('seq_mismatch'))
})

t.test('signatures: signed entries verify; a required key catches unsigned and forged entries', async (t) => {
  const k = generateAuditKey()
  t.equal(auditKeyId(loadAuditPublicKey(k.publicPem)), k.keyId)
  t.equal(auditKeyId(loadAuditPrivateKey(k.privatePem)), k.keyId, 'the id of a private key is its public half\'s')
  const key = signingKey
  const pub = loadAuditPublicKey(createPublicKey(signingKey).export({ type: 'spki', format: 'pem' }))
  const keyId = auditKeyId(pub)
  const f = await fixture(t, { password: null, key })
  let r = await verifyAudit(f.repo, { publicKey: pub })
  t.ok(r.ok, JSON.stringify(r.findings))
  t.equal(r.signed, 4)
  const entries = await listAudit(f.repo)
  t.equal(entries[0].signature?.key_id, keyId)

  // Another key is required: nothing is signed by it.
  const other = loadAuditPublicKey(generateAuditKey().publicPem)
  r = await verifyAudit(f.repo, { publicKey: other })
  t.notOk(r.ok)
  t.ok(kinds(r).includes('unsigned_entry'))

  // The newest entry rewritten without its signature, under its new id (the chain still links).
  const dir = join(f.repoDir, 'audit')
  const head = auditFiles(f.repoDir)[3]
  const plain = f.repo.sealer.open(readFileSync(join(dir, head)), head)
  const { entry } = decodeAuditPlaintext(plain, head)
  const stripped = encodeAuditPlaintext(entry, null)
  replaceEntry(f, 4, stripped)
  r = await verifyAudit(f.repo)
  t.ok(r.ok, 'without a required key an unsigned entry is fine')
  r = await verifyAudit(f.repo, { publicKey: pub })
  t.notOk(r.ok)
  t.same(kinds(r), ['unsigned_entry'])
  t.equal(r.findings[0].seq, 4)

  // Signed by a forger's key, claiming the real key id: the signature does not verify.
  const forger = loadAuditPrivateKey(generateAuditKey().privatePem)
  const forged = encodeAuditPlaintext({ ...entry, summary: { files: 999 } }, forger)
  const lines = forged.toString().split('\n')
  const sig = JSON.parse(lines[1]) as Record<string, string>
  sig.key_id = keyId
  const forgedPlain = Buffer.from(`${lines[0]}\n${JSON.stringify(sig)}\n`)
  replaceEntry(f, 4, forgedPlain)
  r = await verifyAudit(f.repo, { publicKey: pub })
  t.notOk(r.ok)
  t.ok(kinds(r).includes('bad_signature'), JSON.stringify(r.findings))
})

t.test('concurrent writers on separate handles: every entry kept, one chain', async (t) => {
  const dir = join(root, String(++fixtures))
  const tr = await makeTestRepo(dir)
  await tr.repo.close()
  const writers = 4
  const each = 8
  const repos: Repository[] = []
  for (let i = 0; i < writers; i++) {
    repos.push(await Repository.open(await LocalRemote.open({ path: tr.repoDir }), { password: tr.password, cacheDir: join(dir, `cache${i}`) }))
  }
  t.teardown(async () => {
    for (const r of repos) await r.close()
  })
  await Promise.all(repos.map(async (repo, w) => {
    for (let i = 0; i < each; i++) {
      const input: AuditInput = { ...who, host: `host${w}`, now, operation: 'verify', summary: { writer: w, i } }
      await appendAudit(repo, input)
    }
  }))
  // And all at once, several rounds: every writer lists the same head, most lose and retry.
  for (let round = 0; round < 3; round++) {
    await Promise.all(repos.flatMap((repo, w) => [0, 1].map((j) => appendAudit(repo, { ...who, now, operation: 'verify', summary: { writer: w, i: `r${round}-${j}` } }))))
  }
  const total = writers * each + 3 * writers * 2
  const entries = await listAudit(repos[0])
  t.equal(entries.length, total, 'no entry lost')
  t.same(entries.map((e) => e.seq), Array.from({ length: total }, (_, i) => i + 1), 'seqs 1…n, no duplicates')
  const got = new Set(entries.map((e) => `${String(e.summary.writer)}/${String(e.summary.i)}`))
  t.equal(got.size, total, 'every writer\'s every entry is there')
  const r = await verifyAudit(repos[0])
  t.ok(r.ok, JSON.stringify(r.findings))
  t.same(r.findings, [], 'no orphans')
})

t.test('a rival claim that lands over ours after our exclusive put (a store without conditional writes): ours is taken back and appended after it', async (t) => {
  // S3 without If-None-Match is a check-then-put, which a stalled rival PUT can slip past. Simulated
  // exactly: writer B's entry for seq 1 is made on a copy of the repository, and its claim and entry land in
  // the real one just after writer A's exclusive claim succeeded (as A writes its entry).
  const dir = join(root, String(++fixtures))
  const tr = await makeTestRepo(dir)
  await tr.repo.close()
  const copyDir = join(dir, 'rival')
  cpSync(tr.repoDir, copyDir, { recursive: true })
  const rival = await Repository.open(await LocalRemote.open({ path: copyDir }), { password: tr.password, cacheDir: join(dir, 'cache-b') })
  await appendAudit(rival, { ...who, host: 'host-b', now, operation: 'verify', summary: { writer: 'b' } })
  await rival.close()
  const local = await LocalRemote.open({ path: tr.repoDir })
  let landed = false
  const remote = new Proxy(local, {
    get(target, prop) {
      if (prop === 'put') {
        return async (name: string, data: Uint8Array, options?: { exclusive?: boolean }) => {
          if (!landed && /^audit\/\d{10}-/.test(name)) {
            landed = true
            for (const f of readdirSync(join(copyDir, 'audit'))) cpSync(join(copyDir, 'audit', f), join(tr.repoDir, 'audit', f))
          }
          return target.put(name, data, options)
        }
      }
      const v: unknown = Reflect.get(target, prop, target)
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
  })
  const repo = await Repository.open(remote, { password: tr.password, cacheDir: join(dir, 'cache-a') })
  t.teardown(() => repo.close())
  const mine = await appendAudit(repo, { ...who, host: 'host-a', now, operation: 'verify', summary: { writer: 'a' } })
  t.ok(landed, 'the rival claim landed during the append')
  t.equal(mine.seq, 2, 'ours was appended after the rival')
  const entries = await listAudit(repo)
  t.same(entries.map((e) => [e.seq, e.host]), [[1, 'host-b'], [2, 'host-a']], 'one chain: the rival, then ours')
  t.same(auditFiles(tr.repoDir).length, 2, 'our entry at seq 1 was taken back')
  const r = await verifyAudit(repo)
  t.same(r.findings, [], 'audit --verify finds nothing: no orphan entry')
})

t.test('keys: a non-Ed25519 or malformed key is refused clearly', async (t) => {
  t.throws(() => loadAuditPrivateKey('not a key'), /not a PEM private key/)
  const { generateKeyPairSync } = await import('node:crypto')
  const rsa = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' })
  t.throws(() => loadAuditPrivateKey(rsa), /ec key; an Ed25519 key is needed/)
})
