import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb } from 'node:crypto'
import { deriveKey } from '../hash/index.js'
import { KeyError } from '../errors.js'

/** scrypt cost parameters, stored in each key file. */
export interface KdfParams {
  N: number
  r: number
  p: number
}

/** Default scrypt parameters: 64 MiB and ~0.2 s here, about what restic calibrates to (it aims at 0.5 s within 60 MiB). */
export const DEFAULT_KDF: KdfParams = { N: 2 ** 16, r: 8, p: 1 }
/** Cheap parameters for tests only. */
export const TEST_KDF: KdfParams = { N: 2 ** 10, r: 8, p: 1 }

/** The key file as stored under `keys/<id>` (JSON, see FORMAT.md). */
export interface KeyFile {
  version: 1
  kdf: 'scrypt'
  N: number
  r: number
  p: number
  salt: string
  nonce: string
  data: string
  created: string
  hostname: string
  username: string
}

/** Subkeys derived from the 32-byte master key. */
export interface RepoKeys {
  /** AES-256-GCM key for every sealed object. */
  encKey: Buffer
  /** Key of the keyed BLAKE3 that names blobs. */
  idKey: Buffer
  /** Seed of the chunker's gear table. */
  gearSeed: Buffer
}

const AAD = Buffer.from('coldstore key v1')

function scrypt(password: Buffer, salt: Buffer, p: KdfParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, 32, { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 64 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    )
  })
}

/** Derives the subkeys from the master key (BLAKE3 derive_key mode; contexts in FORMAT.md). */
export function deriveRepoKeys(master: Buffer): RepoKeys {
  return {
    encKey: deriveKey('coldstore 2026-11 blob encryption key', master),
    idKey: deriveKey('coldstore 2026-11 blob id key', master),
    gearSeed: deriveKey('coldstore 2026-11 chunker gear seed', master),
  }
}

/** Wraps `master` with a key derived from `password`. */
export async function wrapMasterKey(
  master: Buffer,
  password: string,
  kdf: KdfParams,
  who: { hostname: string; username: string; created: string },
): Promise<KeyFile> {
  const salt = randomBytes(32)
  const kek = await scrypt(Buffer.from(password, 'utf8'), salt, kdf)
  const nonce = randomBytes(12)
  const c = createCipheriv('aes-256-gcm', kek, nonce)
  c.setAAD(AAD)
  const ct = Buffer.concat([c.update(master), c.final(), c.getAuthTag()])
  return {
    version: 1,
    kdf: 'scrypt',
    N: kdf.N,
    r: kdf.r,
    p: kdf.p,
    salt: salt.toString('base64'),
    nonce: nonce.toString('base64'),
    data: ct.toString('base64'),
    ...who,
  }
}

/** Parses and validates a key file's JSON; throws KeyError when it is malformed. */
export function parseKeyFile(bytes: Uint8Array, name: string): KeyFile {
  let k: KeyFile
  try {
    k = JSON.parse(Buffer.from(bytes).toString('utf8')) as KeyFile
  } catch (err) {
    throw new KeyError(`key file ${name} is damaged: not valid JSON`, { cause: err })
  }
  const ok =
    k && k.version === 1 && k.kdf === 'scrypt' &&
    Number.isInteger(k.N) && k.N >= 2 && (k.N & (k.N - 1)) === 0 && k.N <= 2 ** 22 &&
    Number.isInteger(k.r) && k.r >= 1 && k.r <= 64 && Number.isInteger(k.p) && k.p >= 1 && k.p <= 16 &&
    typeof k.salt === 'string' && typeof k.nonce === 'string' && typeof k.data === 'string' &&
    Buffer.from(k.nonce, 'base64').length === 12 && Buffer.from(k.data, 'base64').length === 48
  if (!ok) throw new KeyError(`key file ${name} is damaged: unexpected fields or values`)
  return k
}

/** Unwraps the master key; resolves null when the password does not open this key. */
export async function unwrapMasterKey(k: KeyFile, password: string): Promise<Buffer | null> {
  const kek = await scrypt(Buffer.from(password, 'utf8'), Buffer.from(k.salt, 'base64'), k)
  const data = Buffer.from(k.data, 'base64')
  const d = createDecipheriv('aes-256-gcm', kek, Buffer.from(k.nonce, 'base64'))
  d.setAAD(AAD)
  d.setAuthTag(data.subarray(32))
  try {
    return Buffer.concat([d.update(data.subarray(0, 32)), d.final()])
  } catch {
    return null
  }
}
