import { BlobEncoder, NULL_SINK, PackWriter, type EncodedBlob, type PackKind } from '../pack/index.js'
import type { ObjectWriter } from '../remote/index.js'
import { packKindOf, type Repository } from '../repo/index.js'
import type { BlobType } from '../types.js'

/** An index object is written every this many uploaded packs (1 GiB with 16 MiB packs)... */
const INDEX_EVERY_PACKS = 64
/**
 * ...or once the packs not yet indexed hold this many blobs: writing an index
 * object decodes every pending pack's entries (~150 bytes of objects each),
 * and 64 packs of small files hold ~500,000 (restic starts a new index file at
 * 50,000 blobs).
 */
const INDEX_EVERY_BLOBS = 32_768

/** A pack being written, and the remote object its bytes stream to (none in dry-run mode). */
interface OpenPack {
  writer: PackWriter
  object: ObjectWriter | null
}

/**
 * Collects new blobs into data and meta packs. Blob bytes stream to the
 * remote as they are added (no pack is held in memory); a full pack is then
 * sealed and committed while the next one fills (at most `maxUploads`
 * commits at once; `add` waits when that many are in flight). In dry-run
 * mode it only counts.
 */
export class Packer {
  private readonly repo: Repository
  private readonly dryRun: boolean
  private readonly open: Record<PackKind, OpenPack | null> = { data: null, meta: null }
  private readonly uploads = new Set<Promise<void>>()
  private readonly maxUploads: number
  private error: unknown = null
  private readonly encoder: BlobEncoder
  /** Packs uploaded since the last index object; and the index write in progress, if any. */
  private unindexed = 0
  private unindexedBlobs = 0
  private readonly indexEvery: number
  private indexing: Promise<void> = Promise.resolve()
  /** Packs being written or committed, to abort on failure. */
  private readonly unfinished = new Set<ObjectWriter>()
  /**
   * Ids added in this run and not yet in the cache's blob table: once a pack
   * is saved its ids are dropped here (the cache answers for them), so the
   * set holds only what is in flight, not every new blob of a long run.
   * A dry run saves nothing and keeps them all.
   */
  private readonly added = new Set<string>()
  packs = 0
  packBytes = 0
  /** Of packBytes, per kind of pack. */
  readonly packBytesByKind: Record<PackKind, number> = { data: 0, meta: 0 }
  blobs = 0
  /** Of the new blobs: plaintext bytes, and stored (compressed, sealed) bytes, per kind of pack. Exact in a dry run too: they do not depend on how blobs fall into packs. */
  readonly rawBytesByKind: Record<PackKind, number> = { data: 0, meta: 0 }
  readonly storedBytesByKind: Record<PackKind, number> = { data: 0, meta: 0 }

  constructor(repo: Repository, opts: { dryRun: boolean; maxUploads?: number; indexEveryPacks?: number }) {
    this.repo = repo
    this.dryRun = opts.dryRun
    this.maxUploads = opts.maxUploads ?? 2
    this.encoder = new BlobEncoder(repo.sealer, repo.config.compression.level)
    this.indexEvery = opts.indexEveryPacks ?? INDEX_EVERY_PACKS
  }

  /** True when `id` is stored or was added in this run. */
  known(id: string): boolean {
    return this.added.has(id) || this.repo.cache.hasBlob(id)
  }

  /**
   * Adds an encoded blob unless a blob with this id was added already in
   * this run (callers check `known` first: a stored blob is not re-checked).
   * Resolves once its bytes are written: keep `blob.sealed` unchanged until then.
   */
  async add(id: string, type: BlobType, blob: EncodedBlob): Promise<boolean> {
    if (this.error) throw this.error
    if (this.added.has(id)) return false
    this.added.add(id)
    this.blobs++
    const kind = packKindOf(type)
    this.rawBytesByKind[kind] += blob.rawLength
    this.storedBytesByKind[kind] += blob.sealed.length
    let p = this.current(kind)
    // Finish first when this blob would take the pack past its target.
    if (p.writer.wouldOverflow(blob.sealed.length)) {
      this.seal(kind)
      p = this.current(kind)
    }
    const written = p.writer.add(id, type, blob)
    if (p.writer.full) this.seal(kind)
    await written
    while (this.uploads.size > this.maxUploads) await Promise.race(this.uploads)
    if (this.error) throw this.error
    return true
  }

  /** Encodes (on this thread) and adds a blob given as plaintext: used for trees. */
  async addPlain(type: BlobType, plain: Buffer): Promise<string> {
    const id = this.repo.ids.idHex(plain)
    if (!this.known(id)) await this.add(id, type, this.encoder.encode(plain))
    return id
  }

  private current(kind: PackKind): OpenPack {
    let p = this.open[kind]
    if (!p) {
      if (this.dryRun) {
        p = { writer: new PackWriter(kind, this.repo.config.pack_size_bytes, NULL_SINK), object: null }
      } else {
        p = this.repo.newPackWriter(kind)
        this.unfinished.add(p.object!)
      }
      this.open[kind] = p
    }
    return p
  }

  /** Seals the open pack of `kind` (if any) and commits it in the background; the next add opens a new one. */
  private seal(kind: PackKind): void {
    const p = this.open[kind]
    this.open[kind] = null
    if (!p || p.writer.count === 0) {
      if (p?.object) void this.abortPack(p.object)
      return
    }
    this.packs++
    const u: Promise<void> = (async () => {
      const pack = await p.writer.finish(this.repo.sealer)
      this.packBytes += pack.size
      this.packBytesByKind[kind] += pack.size
      if (!p.object) return
      await this.repo.savePack(p.object, pack)
      this.unfinished.delete(p.object)
      for (const e of pack.entries) this.added.delete(e.id)
      this.unindexedBlobs += pack.entries.length
      if (++this.unindexed >= this.indexEvery || this.unindexedBlobs >= INDEX_EVERY_BLOBS) {
        // Index as we go: after a crash, another host (or a lost cache) finds these packs without a repair.
        this.unindexed = 0
        this.unindexedBlobs = 0
        this.indexing = this.indexing.then(() => this.repo.indexPendingPacks()).then(() => {}, (err) => { this.error ??= err })
      }
    })().then(
      () => { this.uploads.delete(u) },
      (err) => { this.uploads.delete(u); this.error ??= err },
    )
    this.uploads.add(u)
  }

  private async abortPack(object: ObjectWriter): Promise<void> {
    this.unfinished.delete(object)
    await object.abort().catch(() => undefined)
  }

  /** Finishes partly filled packs and waits for every upload. */
  async flush(): Promise<void> {
    this.seal('data')
    this.seal('meta')
    while (this.uploads.size > 0) await Promise.race(this.uploads)
    await this.indexing
    if (this.error) throw this.error
  }

  /** Waits for uploads in flight (used when aborting). */
  async settle(): Promise<void> {
    while (this.uploads.size > 0) await Promise.allSettled([...this.uploads])
    await this.indexing
    // Packs never committed (a failed run): remove their temporary objects.
    for (const o of [...this.unfinished]) await this.abortPack(o)
    this.open.data = this.open.meta = null
  }
}
