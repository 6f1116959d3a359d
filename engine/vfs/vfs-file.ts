import { IntegrityError, UsageError } from '../errors.js'
import type { Repository } from '../repo/index.js'
import type { TreeNode } from '../tree/index.js'
import type { ChunkCache } from './chunk-cache.js'

/** Chunks loaded ahead of the one being consumed by a sequential read. */
const READ_AHEAD = 2

/**
 * A file of a snapshot, readable by byte range without reading anything
 * else: opening it looks up its chunks' sizes in the index (no data is
 * read); `read(start, end)` loads only the chunks covering [start, end).
 */
export class VfsFile {
  readonly node: TreeNode
  readonly size: number
  private readonly chunks: readonly string[]
  /** offsets[i] = first byte of chunk i; offsets[chunks.length] = size. */
  private readonly offsets: Float64Array
  private readonly cache: ChunkCache

  private constructor(node: TreeNode, chunks: readonly string[], offsets: Float64Array, cache: ChunkCache) {
    this.node = node
    this.chunks = chunks
    this.offsets = offsets
    this.size = offsets[chunks.length]
    this.cache = cache
  }

  /**
   * Prepares reading `node`: chunk sizes come from the index. Throws
   * IntegrityError when a chunk is not in the index or the chunk sizes do
   * not add up to the stored file size.
   */
  static open(repo: Repository, cache: ChunkCache, node: TreeNode): VfsFile {
    if (node.type !== 'file') throw new UsageError(`not a file: ${node.name.toString()}`)
    const chunks = node.chunks ?? []
    const offsets = new Float64Array(chunks.length + 1)
    let pos = 0
    for (let i = 0; i < chunks.length; i++) {
      offsets[i] = pos
      const loc = repo.lookup(chunks[i])
      // The tree names a chunk the index does not know: damage (or a stale index), not a missing path.
      if (!loc) throw new IntegrityError(`chunk ${chunks[i]} of ${node.name.toString()} is not in the index (run 'coldstore verify')`, { blobId: chunks[i] })
      pos += loc.rawLength
    }
    offsets[chunks.length] = pos
    if (node.size !== undefined && node.size !== pos) {
      throw new IntegrityError(`${node.name.toString()}: its chunks hold ${pos} bytes but the tree says ${node.size}`)
    }
    return new VfsFile(node, chunks, offsets, cache)
  }

  /** Number of chunks of the file. */
  get chunkCount(): number {
    return this.chunks.length
  }

  /** Index of the chunk holding byte `pos` (0 <= pos < size). */
  private chunkAt(pos: number): number {
    let lo = 0
    let hi = this.chunks.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (this.offsets[mid] <= pos) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  /** Number of chunks a read of [start, end) touches (for tests and diagnostics). */
  chunksCovering(start: number, end: number): number {
    if (end <= start) return 0
    return this.chunkAt(end - 1) - this.chunkAt(start) + 1
  }

  /**
   * Yields the bytes [start, end) (end exclusive, clamped to the size) in
   * order, one slice per chunk, loading a couple of chunks ahead. Slices are
   * views of cached chunks: do not modify them.
   */
  async *read(start = 0, end = this.size): AsyncGenerator<Buffer> {
    end = Math.min(end, this.size)
    if (start < 0 || start >= end) return
    const first = this.chunkAt(start)
    const last = this.chunkAt(end - 1)
    const ahead: Promise<Buffer>[] = []
    let next = first
    const fill = (): void => {
      while (next <= last && ahead.length <= READ_AHEAD) {
        const p = this.cache.get(this.chunks[next++])
        p.catch(() => undefined) // surfaced when awaited below
        ahead.push(p)
      }
    }
    for (let i = first; i <= last; i++) {
      fill()
      const plain = await ahead.shift()!
      const base = this.offsets[i]
      const from = Math.max(start, base) - base
      const to = Math.min(end, this.offsets[i + 1]) - base
      yield plain.subarray(from, to)
    }
  }
}
