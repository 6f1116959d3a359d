import { StreamHasher } from '../hash/index.js'
import { forEachLimit, type Repository } from '../repo/index.js'
import type { Snapshot } from '../snapshot/index.js'
import { TreeReader, displayName, type TreeNode } from '../tree/index.js'
import type { FreezeMeta } from './freeze.js'
import { manifestDigest, type ManifestEntry } from './manifest.js'

/** One file whose content does not match the tree (or could not be read). */
export interface FreezeFileProblem {
  path: string
  problem: 'blake3_mismatch' | 'size_mismatch' | 'unreadable'
  expected?: string
  actual?: string
  message: string
}

/** The verification report of one freeze (`coldstore verify <freeze>`). */
export interface FreezeVerification {
  ok: boolean
  snapshot: string
  kind: 'snapshot' | 'freeze'
  time: string
  event: FreezeMeta['event'] | null
  checked_at: string
  /** What was done, in words, for people reading the report. */
  checks: string[]
  files: { checked: number; bytes: number; ok: number; failed: number }
  manifest: { recorded_digest: string | null; computed_digest: string; match: boolean | null; files: number; bytes: number }
  problems: FreezeFileProblem[]
}

/** Problems listed at most (all are counted). */
const MAX_PROBLEMS = 1000

/**
 * Checks a freeze end to end: walks its trees, re-reads every file's chunks
 * from the packs (each chunk is authenticated and checked against its id),
 * recomputes each file's BLAKE3 and size and compares them with the tree,
 * and recomputes the manifest digest from the tree and compares it with the
 * one recorded when the freeze was made.
 */
export async function verifyFreeze(
  repo: Repository, snap: Snapshot, o: { now: () => Date; onProgress?: (p: { files: number; bytes: number }) => void } = { now: () => new Date() },
): Promise<FreezeVerification> {
  const meta = (snap.kind === 'freeze' ? snap.meta : undefined) as FreezeMeta | undefined
  const generated = meta?.generated?.folder ?? null
  const reader = new TreeReader(repo)
  const files: { path: Buffer; node: TreeNode; inManifest: boolean }[] = []
  for await (const [path, node] of reader.walk(snap.tree)) {
    if (node.type !== 'file') continue
    const top = path.subarray(0, path.indexOf(0x2f) < 0 ? path.length : path.indexOf(0x2f)).toString()
    files.push({ path, node, inManifest: generated === null || top !== generated })
  }
  const problems: FreezeFileProblem[] = []
  let failed = 0
  let bytes = 0
  let checked = 0
  const problem = (p: FreezeFileProblem): void => {
    failed++
    if (problems.length < MAX_PROBLEMS) problems.push(p)
  }
  await forEachLimit(files, 4, async ({ path, node }) => {
    const h = new StreamHasher()
    let size = 0
    try {
      for (const c of node.chunks ?? []) {
        const plain = await repo.loadBlob(c)
        h.update(plain)
        size += plain.length
      }
    } catch (err) {
      problem({ path: displayName(path), problem: 'unreadable', message: (err as Error).message })
      return
    } finally {
      checked++
      o.onProgress?.({ files: checked, bytes })
    }
    bytes += size
    const digest = h.digestHex()
    if (size !== node.size) problem({ path: displayName(path), problem: 'size_mismatch', expected: String(node.size), actual: String(size), message: `read ${size} bytes, the tree says ${node.size}` })
    else if (digest !== node.blake3) problem({ path: displayName(path), problem: 'blake3_mismatch', expected: node.blake3, actual: digest, message: 'content does not match its recorded BLAKE3' })
  })
  problems.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  const manifestEntries: ManifestEntry[] = files.filter((f) => f.inManifest).map((f) => ({ path: f.path, blake3: f.node.blake3 ?? '', size: f.node.size ?? 0 }))
  const computed = manifestDigest(manifestEntries)
  const recorded = meta?.verification?.manifest_digest ?? null
  const match = recorded === null ? null : recorded === computed
  const checks = [
    'every tree of the freeze was read, authenticated and checked against its id',
    'every file was re-read from the packs, chunk by chunk (each chunk authenticated and checked against its id), and its size and BLAKE3 compared with the tree',
    recorded === null
      ? 'no manifest digest was recorded (not a freeze): the digest of the tree is reported'
      : 'the manifest digest was recomputed from the tree and compared with the one recorded when the freeze was made',
  ]
  return {
    ok: failed === 0 && match !== false,
    snapshot: snap.id,
    kind: snap.kind,
    time: snap.time,
    event: meta?.event ?? null,
    checked_at: o.now().toISOString(),
    checks,
    files: { checked, bytes, ok: checked - failed, failed },
    manifest: {
      recorded_digest: recorded, computed_digest: computed, match,
      files: manifestEntries.length, bytes: manifestEntries.reduce((s, e) => s + e.size, 0),
    },
    problems,
  }
}
