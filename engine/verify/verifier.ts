import { randomInt } from 'node:crypto'
import { isNotFound } from '../errors.js'
import { parseKeyFile } from '../crypto/index.js'
import { hashHex } from '../hash/index.js'
import type { BlobLocation, IndexedPack } from '../index/index.js'
import { decodeTrailer, packObjectName, type PackKind } from '../pack/index.js'
import { forEachLimit, type Repository } from '../repo/index.js'
import { listSnapshots, loadSnapshot, type Snapshot } from '../snapshot/index.js'
import { decodeTree, type TreeNode } from '../tree/index.js'

/** Kinds of problems verify reports. */
export type FindingKind =
  | 'damaged_index'
  | 'missing_pack'
  | 'pack_size_mismatch'
  | 'unindexed_pack'
  | 'damaged_pack'
  | 'damaged_pack_header'
  | 'damaged_blob'
  | 'missing_blob'
  | 'damaged_snapshot'
  | 'damaged_tree'
  | 'archived_packs_unread'
  | 'damaged_key'

/** One problem found. `error` findings make the repository fail verification; `warning` ones do not. */
export interface Finding {
  kind: FindingKind
  severity: 'error' | 'warning'
  message: string
  packId?: string
  blobId?: string
  snapshotId?: string
  object?: string
  /** Files whose content is affected, as `<snapshot id prefix>:<path>`. */
  files?: string[]
}

export interface VerifyOptions {
  /** Check only these snapshots' trees (default: all). */
  snapshots?: readonly Snapshot[]
  /** Read and check pack contents: every pack (1) or a random fraction of them (0 < f < 1). 0/undefined: structure only. */
  readData?: number
  /**
   * Called with the data packs (id → size) the data check is about to read. Returning false leaves them
   * unread (archive storage classes whose retrieval is not done yet): the report then carries an
   * `archived_packs_unread` warning and metadata packs are still read.
   */
  beforeReadData?: (dataPacks: ReadonlyMap<string, number>) => Promise<boolean>
  onProgress?: (p: { phase: string; done: number; total: number }) => void
}

export interface VerifyReport {
  ok: boolean
  findings: Finding[]
  stats: { snapshots: number; trees: number; blobs: number; packs: number; packs_read: number; bytes_read: number }
}

/** Affected files listed per finding at most. */
const MAX_FILES = 100

/**
 * Checks a repository without trusting the local cache: every index object,
 * every pack named by them, every snapshot and tree reachable, and (with
 * readData) the bytes of packs. Returns every problem found, not just the first.
 */
export async function verify(repo: Repository, o: VerifyOptions = {}): Promise<VerifyReport> {
  const findings: Finding[] = []
  const stats = { snapshots: 0, trees: 0, blobs: 0, packs: 0, packs_read: 0, bytes_read: 0 }
  const progress = o.onProgress ?? (() => {})

  // 0. Key files: each must match its name and parse (which password it opens cannot be known here). The
  // repository opened with one of them; a damaged other one is a password that no longer works.
  if (repo.config.encryption !== 'none') {
    for await (const obj of repo.remote.list('keys/')) {
      let bytes: Buffer
      try {
        bytes = await repo.remote.get(obj.name)
      } catch (err) {
        if (isNotFound(err)) continue // removed meanwhile
        throw err
      }
      let problem: string | null = null
      if (hashHex(bytes) !== obj.name.slice('keys/'.length)) problem = 'its content does not match its name'
      else {
        try {
          parseKeyFile(bytes, obj.name)
        } catch (err) {
          problem = (err as Error).message
        }
      }
      if (problem) findings.push({ kind: 'damaged_key', severity: 'error', object: obj.name, message: `key file ${obj.name} is damaged (${problem}): the password it held no longer opens the repository (the others still do)` })
    }
  }

  // 1. Index objects.
  const blobs = new Map<string, BlobLocation>()
  const packs = new Map<string, IndexedPack>()
  const indexNames: string[] = []
  for await (const obj of repo.remote.list('index/')) indexNames.push(obj.name)
  let done = 0
  await forEachLimit(indexNames, repo.remote.properties.maxConnections, async (name) => {
    try {
      for (const p of await repo.loadIndexObject(name)) {
        packs.set(p.packId, p)
        for (const e of p.entries) if (!blobs.has(e.id)) blobs.set(e.id, { packId: p.packId, type: e.type, compression: e.compression, offset: e.offset, length: e.length, rawLength: e.rawLength })
      }
    } catch (err) {
      findings.push({ kind: 'damaged_index', severity: 'error', object: name, message: `${name}: ${(err as Error).message}` })
    }
    progress({ phase: 'index', done: ++done, total: indexNames.length })
  })
  stats.blobs = blobs.size

  // 2. Packs on the remote against the index.
  const onRemote = new Map<string, { kind: PackKind; size: number }>()
  for (const kind of ['data', 'meta'] as const) {
    for await (const obj of repo.remote.list(`${kind}/`)) onRemote.set(obj.name.slice(obj.name.lastIndexOf('/') + 1), { kind, size: obj.size })
  }
  stats.packs = onRemote.size
  for (const [id, p] of packs) {
    const r = onRemote.get(id)
    if (!r) findings.push({ kind: 'missing_pack', severity: 'error', packId: id, object: packObjectName(p.kind, id), message: `pack ${id} is named by the index but missing` })
    else if (r.size !== p.size) findings.push({ kind: 'pack_size_mismatch', severity: 'error', packId: id, object: packObjectName(p.kind, id), message: `pack ${id} is ${r.size} bytes, the index says ${p.size} (truncated or damaged)` })
  }
  for (const [id, r] of onRemote) {
    if (!packs.has(id)) findings.push({ kind: 'unindexed_pack', severity: 'warning', packId: id, object: packObjectName(r.kind, id), message: `pack ${id} is not named by any index (left by an interrupted run; the next snapshot indexes it if it has it cached, 'repair index' recovers it, prune will remove it)` })
  }
  const badPacks = new Set(findings.filter((f) => f.kind === 'missing_pack' || f.kind === 'pack_size_mismatch').map((f) => f.packId!))

  // 3. Snapshots and trees.
  // Read from the remote, never the local cache: verify checks what is stored.
  const damaged = (id: string, err: unknown): void => {
    findings.push({ kind: 'damaged_snapshot', severity: 'error', snapshotId: id, object: `snapshots/${id}`, message: `snapshot ${id}: ${(err as Error).message}` })
  }
  const snaps: Snapshot[] = []
  if (o.snapshots) {
    for (const s of o.snapshots) {
      try {
        snaps.push(await loadSnapshot(repo, s.id, { fresh: true }))
      } catch (err) {
        if (isNotFound(err)) findings.push({ kind: 'damaged_snapshot', severity: 'error', snapshotId: s.id, object: `snapshots/${s.id}`, message: `snapshot ${s.id}: gone from the repository` })
        else damaged(s.id, err)
      }
    }
  } else {
    snaps.push(...(await listSnapshots(repo, damaged, { fresh: true })))
  }
  stats.snapshots = snaps.length
  const seenTrees = new Set<string>()
  const missingBlobs = new Set<string>()
  const loadTree = async (id: string): Promise<TreeNode[] | null> => {
    const loc = blobs.get(id)
    if (!loc) {
      missingBlobs.add(id)
      return null
    }
    try {
      const sealed = await repo.remote.get(packObjectName('meta', loc.packId), { offset: loc.offset, length: loc.length })
      return decodeTree(repo.decodeAndCheck(sealed, id, loc))
    } catch (err) {
      findings.push({ kind: 'damaged_tree', severity: 'error', blobId: id, packId: loc.packId, message: `tree ${id}: ${(err as Error).message}` })
      return null
    }
  }
  for (const s of snaps) {
    const walk = async (treeId: string): Promise<void> => {
      if (seenTrees.has(treeId)) return
      seenTrees.add(treeId)
      stats.trees++
      const nodes = await loadTree(treeId)
      if (!nodes) return
      for (const n of nodes) {
        if (n.type === 'dir' && n.subtree) await walk(n.subtree)
        for (const c of n.chunks ?? []) {
          const loc = blobs.get(c)
          if (!loc) missingBlobs.add(c)
          else if (badPacks.has(loc.packId)) missingBlobs.add(c)
        }
      }
    }
    await walk(s.tree)
    progress({ phase: 'trees', done: stats.trees, total: 0 })
  }

  // 4. Pack contents.
  const damagedBlobs = new Map<string, string>() // blob → pack
  if (o.readData && o.readData > 0) {
    let ids = [...packs.keys()].filter((id) => !badPacks.has(id))
    if (o.readData < 1) {
      const n = Math.max(1, Math.ceil(ids.length * o.readData))
      for (let i = ids.length - 1; i > 0; i--) {
        const j = randomInt(i + 1)
        ;[ids[i], ids[j]] = [ids[j], ids[i]]
      }
      ids = ids.slice(0, n).sort()
    }
    if (o.beforeReadData) {
      const data = new Map<string, number>()
      for (const id of ids) {
        const p = packs.get(id)!
        if (p.kind === 'data') data.set(id, p.size)
      }
      if (data.size > 0 && !(await o.beforeReadData(data))) {
        ids = ids.filter((id) => !data.has(id))
        let bytes = 0
        for (const size of data.values()) bytes += size
        findings.push({ kind: 'archived_packs_unread', severity: 'warning', message: `${data.size} data packs (${bytes} bytes) are in archive storage and were not read: request their retrieval (--request-retrieval) and verify again once they are readable` })
      }
    }
    let read = 0
    await forEachLimit(ids, Math.max(2, repo.remote.properties.maxConnections), async (id) => {
      const p = packs.get(id)!
      const bytes = await repo.remote.get(packObjectName(p.kind, id))
      stats.packs_read++
      stats.bytes_read += bytes.length
      const hashOk = hashHex(bytes) === id
      if (!hashOk) findings.push({ kind: 'damaged_pack', severity: 'error', packId: id, object: packObjectName(p.kind, id), message: `pack ${id}: content does not match its name (damaged)` })
      try {
        decodeTrailer(bytes, bytes.length, repo.sealer, id)
      } catch (err) {
        findings.push({ kind: 'damaged_pack_header', severity: hashOk ? 'error' : 'warning', packId: id, message: `pack ${id}: ${(err as Error).message}` })
      }
      for (const e of p.entries) {
        try {
          repo.decodeAndCheck(bytes.subarray(e.offset, e.offset + e.length), e.id, { packId: id, ...e })
        } catch {
          damagedBlobs.set(e.id, id)
        }
      }
      progress({ phase: 'read-data', done: ++read, total: ids.length })
    })
  }

  // 5. Which files are affected by missing or damaged blobs.
  if (missingBlobs.size || damagedBlobs.size) {
    const affected = new Map<string, string[]>()
    const bad = new Set([...missingBlobs, ...damagedBlobs.keys()])
    // Reads a tree for this listing only: its damage was reported above, so failures here add no finding.
    const readTree = async (id: string): Promise<TreeNode[] | null> => {
      const loc = blobs.get(id)
      if (!loc || damagedBlobs.has(id)) return null
      try {
        const sealed = await repo.remote.get(packObjectName('meta', loc.packId), { offset: loc.offset, length: loc.length })
        return decodeTree(repo.decodeAndCheck(sealed, id, loc))
      } catch {
        return null
      }
    }
    // Whether any file below a tree uses a bad blob, once per tree id. A subtree shared by several
    // directories (identical dirs, or across snapshots) is scanned once but listed under every path.
    const hasBad = new Map<string, boolean>()
    const scan = async (treeId: string): Promise<boolean> => {
      const known = hasBad.get(treeId)
      if (known !== undefined) return known
      hasBad.set(treeId, false)
      let found = false
      for (const n of (await readTree(treeId)) ?? []) {
        if (n.type === 'dir' && n.subtree && (await scan(n.subtree))) found = true
        if (n.chunks?.some((c) => bad.has(c))) found = true
      }
      hasBad.set(treeId, found)
      return found
    }
    for (const s of snaps) {
      const walk = async (treeId: string, prefix: string): Promise<void> => {
        if (!(await scan(treeId))) return
        for (const n of (await readTree(treeId)) ?? []) {
          const path = prefix ? `${prefix}/${n.name.toString()}` : n.name.toString()
          if (n.type === 'dir' && n.subtree) await walk(n.subtree, path)
          for (const c of n.chunks ?? []) {
            if (!bad.has(c)) continue
            const list = affected.get(c) ?? []
            if (list.length < MAX_FILES) list.push(`${s.id.slice(0, 8)}:${path}`)
            affected.set(c, list)
          }
        }
      }
      await walk(s.tree, '')
    }
    for (const b of missingBlobs) {
      const loc = blobs.get(b)
      findings.push({
        kind: 'missing_blob', severity: 'error', blobId: b, packId: loc?.packId,
        message: loc ? `blob ${b} is in pack ${loc.packId}, which is missing or truncated` : `blob ${b} is referenced but not in any index`,
        files: affected.get(b) ?? [],
      })
    }
    for (const [b, pack] of damagedBlobs) {
      findings.push({ kind: 'damaged_blob', severity: 'error', blobId: b, packId: pack, message: `blob ${b} in pack ${pack} is damaged`, files: affected.get(b) ?? [] })
    }
  }
  return { ok: !findings.some((f) => f.severity === 'error'), findings, stats }
}
