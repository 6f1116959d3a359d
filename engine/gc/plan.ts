import { compress, decompress } from 'zstd-napi'
import { FormatError, IntegrityError, isNotFound } from '../errors.js'
import { hashHex } from '../hash/index.js'
import { decodeIndexBody, encodeIndexBody, type IndexedPack } from '../index/index.js'
import { forEachLimit, type Repository } from '../repo/index.js'

/**
 * A prune plan (`prune/<id>`): what one prune run marked, for a later run to delete once the safety delay
 * has passed and the packs are still unreferenced. FORMAT.md, "Prune plans".
 */
export interface PrunePlanDoc {
  version: 1
  /** When the packs were marked (the marking prune's clock). */
  time: string
  host: string
  username: string
  program: string
  /** The plan may be carried out from `time` + this many seconds. */
  safety_delay_s: number
  /** Lock objects (`locks/<id>`) that existed when the plan was made: one still there unchanged at the sweep was not refreshed since. */
  locks: string[]
  /** Packs no snapshot needed at `time` (object names): deleted at the sweep if still unneeded. Writers do not reuse their blobs. */
  delete: string[]
  /** Packs whose used blobs were copied into new packs at `time` and that no index object names any more: deleted at the sweep unless a snapshot needs a blob only they hold. */
  repacked: string[]
}

/** A plan as read back: its id, document, and the index records of every pack it names. */
export interface StoredPrunePlan {
  id: string
  name: string
  doc: PrunePlanDoc
  /** The packs of `delete` and `repacked`, as index records (so a sweep can index a pack again). */
  packs: IndexedPack[]
}

const PLAN_VERSION = 1

/** Plaintext body of a plan object (before compression and sealing). */
export function encodePlanBody(doc: PrunePlanDoc, packs: readonly IndexedPack[]): Buffer {
  const json = Buffer.from(JSON.stringify(doc))
  const head = Buffer.alloc(5)
  head[0] = PLAN_VERSION
  head.writeUInt32LE(json.length, 1)
  return Buffer.concat([head, json, encodeIndexBody(packs)])
}

/** Parses a plan body; throws FormatError when it does not follow FORMAT.md. */
export function decodePlanBody(body: Buffer, name: string): { doc: PrunePlanDoc; packs: IndexedPack[] } {
  if (body.length < 5 || body[0] !== PLAN_VERSION) throw new FormatError(`${name}: unknown prune plan version ${body[0]}`)
  const n = body.readUInt32LE(1)
  if (5 + n > body.length) throw new FormatError(`${name}: prune plan is truncated`)
  let doc: PrunePlanDoc
  try {
    doc = JSON.parse(body.toString('utf8', 5, 5 + n)) as PrunePlanDoc
  } catch (err) {
    throw new FormatError(`${name}: prune plan header is not JSON`, { cause: err })
  }
  if (doc.version !== 1 || !Array.isArray(doc.delete) || !Array.isArray(doc.repacked) || typeof doc.time !== 'string') throw new FormatError(`${name}: not a version 1 prune plan`)
  return { doc, packs: decodeIndexBody(body.subarray(5 + n)) }
}

/** Seals, stores and returns a plan; its name is `prune/<BLAKE3 of the stored bytes>`. */
export async function writePrunePlan(repo: Repository, doc: PrunePlanDoc, packs: readonly IndexedPack[]): Promise<StoredPrunePlan> {
  const bytes = repo.sealer.seal(compress(encodePlanBody(doc, packs), { compressionLevel: 3 }))
  const id = hashHex(bytes)
  const name = `prune/${id}`
  await repo.remote.put(name, bytes)
  return { id, name, doc, packs: [...packs] }
}

/** Reads one plan, checking its name; throws IntegrityError or FormatError when damaged. */
export async function readPrunePlan(repo: Repository, name: string): Promise<StoredPrunePlan> {
  const bytes = await repo.remote.get(name)
  const id = name.slice('prune/'.length)
  if (hashHex(bytes) !== id) throw new IntegrityError(`${name}: content does not match its name (damaged)`)
  const sealed = repo.sealer.open(bytes, name)
  let body: Buffer
  try {
    body = decompress(sealed)
  } catch (err) {
    throw new IntegrityError(`${name}: damaged compressed body`, { }, { cause: err })
  }
  return { id, name, ...decodePlanBody(body, name) }
}

/**
 * Every plan in the repository, oldest first. Plans that cannot be read go to `onError` (writers then do
 * not count them as seen, so their sweep waits for the writer) or, without it, throw.
 */
export async function listPrunePlans(repo: Repository, onError?: (name: string, err: unknown) => void): Promise<StoredPrunePlan[]> {
  const names: string[] = []
  for await (const o of repo.remote.list('prune/')) if (/^prune\/[0-9a-f]{64}$/.test(o.name)) names.push(o.name)
  const out: StoredPrunePlan[] = []
  await forEachLimit(names, repo.remote.properties.maxConnections, async (name) => {
    try {
      out.push(await readPrunePlan(repo, name))
    } catch (err) {
      if (isNotFound(err)) return // carried out and removed meanwhile
      if (onError) onError(name, err)
      else throw err
    }
  })
  return out.sort((a, b) => (a.doc.time < b.doc.time ? -1 : a.doc.time > b.doc.time ? 1 : a.id < b.id ? -1 : 1))
}
