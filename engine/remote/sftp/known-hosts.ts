/**
 * OpenSSH known_hosts files: parsing, host matching and the host key check the SFTP remote does before it
 * authenticates. Pure functions over the files' text (the caller reads the files); imports only node:crypto.
 *
 * Supported, as sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT" describes: plain host names and addresses, `[host]:port`
 * for ports other than 22, comma-separated lists, `*`/`?` wildcards and `!` negations, hashed entries
 * (`|1|salt|hash`, written by `ssh-keygen -H` or HashKnownHosts), any key type, comments and blank lines,
 * `@revoked` (a revoked key is refused even where another line accepts it). `@cert-authority` lines are read
 * but never accept a key: host certificates are not supported.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'

/** One key line of a known_hosts file. */
export interface KnownHostEntry {
  /** The file the line came from (for messages). */
  file: string
  /** 1-based line number. */
  line: number
  marker: 'revoked' | 'cert-authority' | null
  /** Host patterns of a plain entry (lower case), or null for a hashed one. */
  patterns: string[] | null
  /** Salt and HMAC-SHA1 of a hashed entry (`|1|salt|hash`). */
  hashed: { salt: Buffer; hash: Buffer } | null
  /** The key type as written (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`...). */
  keyType: string
  /** The public key blob (the base64 field decoded). */
  key: Buffer
}

/** Parses known_hosts text. Lines that are not valid entries are skipped, as ssh does. */
export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const fields = lines[i].trim().split(/[ \t]+/)
    if (fields[0] === '' || fields[0].startsWith('#')) continue
    let marker: KnownHostEntry['marker'] = null
    if (fields[0].startsWith('@')) {
      const m = fields.shift()
      if (m === '@revoked') marker = 'revoked'
      else if (m === '@cert-authority') marker = 'cert-authority'
      else continue // unknown marker: ssh ignores the line
    }
    if (fields.length < 3) continue
    const [hosts, keyType, b64] = fields
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) continue
    const key = Buffer.from(b64, 'base64')
    // The blob starts with its own type; a line whose two disagree is damaged (ssh skips it too).
    if (blobType(key) !== keyType) continue
    let patterns: string[] | null = null
    let hashed: KnownHostEntry['hashed'] = null
    if (hosts.startsWith('|')) {
      const m = /^\|1\|([A-Za-z0-9+/]+={0,2})\|([A-Za-z0-9+/]+={0,2})$/.exec(hosts)
      if (!m) continue
      hashed = { salt: Buffer.from(m[1], 'base64'), hash: Buffer.from(m[2], 'base64') }
      if (hashed.hash.length !== 20) continue
    } else {
      patterns = hosts.toLowerCase().split(',').filter((p) => p !== '')
    }
    out.push({ file, line: i + 1, marker, patterns, hashed, keyType, key })
  }
  return out
}

/** The name ssh looks up for a host and port: `host` for port 22, `[host]:port` otherwise (lower case). */
export function hostLookupName(host: string, port: number): string {
  const h = host.toLowerCase()
  return port === 22 ? h : `[${h}]:${port}`
}

/** `*` and `?` wildcard match of a whole string (ssh's match_pattern). */
function wildcardMatch(text: string, pattern: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's')
  return re.test(text)
}

/** True when `entry` names `name` (a `hostLookupName`). */
export function entryMatches(entry: KnownHostEntry, name: string): boolean {
  if (entry.hashed) {
    const mac = createHmac('sha1', entry.hashed.salt).update(name).digest()
    return timingSafeEqual(mac, entry.hashed.hash)
  }
  let matched = false
  for (const p of entry.patterns ?? []) {
    if (p.startsWith('!')) {
      if (wildcardMatch(name, p.slice(1))) return false // a matching negation wins over everything
    } else if (wildcardMatch(name, p)) {
      matched = true
    }
  }
  return matched
}

/** The type named at the start of an SSH public key blob (`ssh-ed25519`...), or '' when malformed. */
export function blobType(blob: Buffer): string {
  if (blob.length < 4) return ''
  const n = blob.readUInt32BE(0)
  if (n === 0 || n > 64 || 4 + n > blob.length) return ''
  return blob.subarray(4, 4 + n).toString('latin1')
}

/** The key's fingerprint as ssh prints it: `SHA256:` and the unpadded base64 of the blob's SHA-256. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`
}

/** Host key algorithms (as SSH negotiates them) that can present a key of `keyType`. */
export function algorithmsForKeyType(keyType: string): string[] {
  // An RSA key signs with SHA-2 (RFC 8332) or, on old servers, SHA-1.
  if (keyType === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']
  return [keyType]
}

/** What `checkHostKey` decided. */
export type HostKeyVerdict =
  | { status: 'ok'; entry: KnownHostEntry }
  /** A `@revoked` line lists this key. */
  | { status: 'revoked'; entry: KnownHostEntry }
  /** Lines name the host with a key of the same type, but none is this key. */
  | { status: 'mismatch'; entries: KnownHostEntry[] }
  /** No usable line names the host with a key of this type; `otherTypes` are the types that are known for it. */
  | { status: 'unknown'; otherTypes: string[]; certAuthorityOnly: boolean }

/** Lines naming `name`, usable for plain key checks or revocation. */
export function entriesFor(entries: readonly KnownHostEntry[], name: string): KnownHostEntry[] {
  return entries.filter((e) => entryMatches(e, name))
}

/**
 * Checks the key `blob` a server presented for `host`:`port` against known_hosts entries, as ssh's
 * StrictHostKeyChecking=yes does: revoked first, then an exact key match, then same-type keys (a changed key).
 */
export function checkHostKey(entries: readonly KnownHostEntry[], host: string, port: number, blob: Buffer): HostKeyVerdict {
  const name = hostLookupName(host, port)
  const forHost = entriesFor(entries, name)
  // @revoked lines apply to the hosts they name; `*` revokes a key everywhere.
  const revoked = forHost.find((e) => e.marker === 'revoked' && e.key.equals(blob))
  if (revoked) return { status: 'revoked', entry: revoked }
  const plain = forHost.filter((e) => e.marker === null)
  const exact = plain.find((e) => e.key.equals(blob))
  if (exact) return { status: 'ok', entry: exact }
  const type = blobType(blob)
  const sameType = plain.filter((e) => e.keyType === type)
  if (sameType.length > 0) return { status: 'mismatch', entries: sameType }
  return {
    status: 'unknown',
    otherTypes: [...new Set(plain.map((e) => e.keyType))],
    certAuthorityOnly: plain.length === 0 && forHost.some((e) => e.marker === 'cert-authority'),
  }
}

/**
 * The host key algorithms to offer, best first: those whose keys known_hosts lists for the host, then the
 * rest of `defaults` (as ssh does, so a server with several host keys presents the one the client knows).
 * Algorithms not in `defaults` are left out (the SSH library could not use them).
 */
export function preferredHostKeyAlgorithms(entries: readonly KnownHostEntry[], host: string, port: number, defaults: readonly string[]): string[] {
  const known = entriesFor(entries, hostLookupName(host, port))
    .filter((e) => e.marker === null)
    .flatMap((e) => algorithmsForKeyType(e.keyType))
    .filter((a) => defaults.includes(a))
  return [...new Set([...known, ...defaults])]
}
