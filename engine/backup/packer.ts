import { BlobEncoder, trailerSize, PackWriter, type EncodedBlob, type FinishedPack, type PackKind } from '../pack/index.js'
import { packKindOf, type Repository } from '../repo/index.js'
import type { BlobType } from '../types.js'

/** An index object is written every this many uploaded packs (1 GiB with 16 MiB packs). */
const INDEX_EVERY_PACKS = 64

/**
 * Collects new blobs into data and meta packs and uploads full packs while
 * the backup goes on (at most `maxUploads` at once; `add` waits when that
 * many are in flight, which bounds memory). In dry-run mode it only counts.
 */
export class Packer {
  private readonly repo: Repository
  private readonly dryRun: boolean
  private readonly writers: Record<PackKind, PackWriter>
  private readonly uploads = new Set<Promise<void>>()
  private readonly maxUploads: number
  private error: unknown = null
  private readonly spare: Buffer[] = []
  private readonly encoder: BlobEncoder
  /** Packs uploaded since the last index object; and the index write in progress, if any. */
  private unindexed = 0
  private readonly indexEvery: number
  private indexing: Promise<void> = Promise.resolve()
  /** Ids added in this run (stored or about to be). */
  readonly added = new Set<string>()
  packs = 0
  packBytes = 0
  blobs = 0

  constructor(repo: Repository, opts: { dryRun: boolean; maxUploads?: number; indexEveryPacks?: number }) {
    this.repo = repo
    this.dryRun = opts.dryRun
    // Each upload in flight holds a whole pack in memory: two keep the remote busy while the next pack fills.
    this.maxUploads = opts.maxUploads ?? 2
    this.encoder = new BlobEncoder(repo.sealer, repo.config.compression.level)
    this.indexEvery = opts.indexEveryPacks ?? INDEX_EVERY_PACKS
    const target = repo.config.pack_size_bytes
    // Pack buffers are recycled: allocating a fresh 16–64 MiB buffer per pack outpaces the garbage collector.
    const alloc = (n: number): Buffer => {
      const i = this.spare.findIndex((b) => b.length >= n)
      return i >= 0 ? this.spare.splice(i, 1)[0] : Buffer.allocUnsafeSlow(n)
    }
    this.writers = { data: new PackWriter('data', target, { alloc }), meta: new PackWriter('meta', target, { alloc }) }
  }

  /** True when `id` is stored or was added in this run. */
  known(id: string): boolean {
    return this.added.has(id) || this.repo.cache.hasBlob(id)
  }

  /** Adds an encoded blob unless a blob with this id was added already. */
  async add(id: string, type: BlobType, blob: EncodedBlob): Promise<boolean> {
    if (this.error) throw this.error
    if (this.added.has(id)) return false
    this.added.add(id)
    this.blobs++
    const w = this.writers[packKindOf(type)]
    // Finish first when this blob would take the pack past its target: packs stay within one buffer.
    if (w.wouldOverflow(blob.sealed.length)) {
      const pack = this.seal(w)
      w.add(id, type, blob) // copies the blob before anything awaits (callers may reuse its buffer)
      await this.upload(pack)
    } else {
      w.add(id, type, blob)
    }
    if (w.full) await this.finish(w)
    return true
  }

  /** Encodes (on this thread) and adds a blob given as plaintext: used for trees. */
  async addPlain(type: BlobType, plain: Buffer): Promise<string> {
    const id = this.repo.ids.idHex(plain)
    if (!this.known(id)) await this.add(id, type, this.encoder.encode(plain))
    return id
  }

  private async finish(w: PackWriter): Promise<void> {
    if (w.count === 0) return
    await this.upload(this.seal(w))
  }

  /** Seals the writer's pack (counting it); returns it for upload, or null in dry-run mode. */
  private seal(w: PackWriter): FinishedPack | null {
    this.packs++
    if (this.dryRun) {
      this.packBytes += w.sizeBytes + trailerSize(w.count, this.repo.sealer)
      const pack = w.finish(this.repo.sealer)
      if (pack.backing && this.spare.length < 2) this.spare.push(pack.backing)
      return null
    }
    const pack = w.finish(this.repo.sealer)
    this.packBytes += pack.bytes.length
    return pack
  }

  /** Uploads a sealed pack, waiting while `maxUploads` are in flight. */
  private async upload(pack: FinishedPack | null): Promise<void> {
    if (!pack) return
    while (this.uploads.size >= this.maxUploads) await Promise.race(this.uploads)
    const p: Promise<void> = this.repo.savePack(pack).then(
      () => {
        this.uploads.delete(p)
        if (pack.backing && this.spare.length < 2) this.spare.push(pack.backing)
        if (++this.unindexed >= this.indexEvery) {
          // Index as we go: after a crash, another host (or a lost cache) finds these packs without a repair.
          this.unindexed = 0
          this.indexing = this.indexing.then(() => this.repo.indexPendingPacks()).then(() => {}, (err) => { this.error ??= err })
        }
      },
      (err) => { this.uploads.delete(p); this.error ??= err },
    )
    this.uploads.add(p)
  }

  /** Finishes partly filled packs and waits for every upload. */
  async flush(): Promise<void> {
    await this.finish(this.writers.data)
    await this.finish(this.writers.meta)
    await Promise.all(this.uploads)
    await this.indexing
    if (this.error) throw this.error
  }

  /** Waits for uploads in flight (used when aborting). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.uploads)
    await this.indexing
  }
}
