/**
 * A test double of archive storage classes (only for tests; not exported from engine/index.ts): wraps a
 * real remote and behaves like S3 with data packs in DEEP_ARCHIVE: objects under data/ are unreadable
 * (ArchivedError) until a restore is requested and the test completes it. The S3 gateway in
 * engine/remote/s3/testing does the same in front of a real S3 server; this one serves engine tests.
 */
import { ArchivedError } from '../errors.js'
import type { ArchiveAccess, ArchiveState, ByteRange, ObjectInfo, PutOptions, Remote, RemoteProperties, RetrievalTier } from '../remote/remote.js'
import { DATA_PREFIX } from '../remote/remote.js'

export class ArchiveSimRemote implements Remote {
  readonly properties: RemoteProperties
  readonly archive: ArchiveAccess
  /** Restore requests as made: name, tier, days. */
  readonly requests: { name: string; tier: RetrievalTier; days: number }[] = []
  /** Every `get` of an object under data/, readable or not. */
  readonly dataGets: string[] = []
  private readonly inner: Remote
  private readonly restoring = new Set<string>()
  private readonly restored = new Set<string>()

  constructor(inner: Remote, o: { dataClass?: string; provider?: string } = {}) {
    this.inner = inner
    this.properties = inner.properties
    const dataClass = o.dataClass ?? 'DEEP_ARCHIVE'
    this.archive = {
      provider: o.provider ?? 'aws-s3',
      dataClass,
      hotClass: 'STANDARD',
      dataNeedsRestore: dataClass === 'DEEP_ARCHIVE' || dataClass === 'GLACIER',
      state: (name) => this.state(name),
      requestRestore: async (name, r) => {
        await this.inner.stat(name)
        if (!this.archive.dataNeedsRestore || !name.startsWith(DATA_PREFIX) || this.restored.has(name) || this.restoring.has(name)) return
        this.restoring.add(name)
        this.requests.push({ name, ...r })
      },
    }
  }

  /** Completes every pending restore (the provider's hours of waiting), or those `names`. */
  completeRestores(names?: readonly string[]): void {
    for (const n of names ?? [...this.restoring]) {
      if (this.restoring.delete(n)) this.restored.add(n)
    }
  }

  private classOf(name: string): string {
    return name.startsWith(DATA_PREFIX) ? this.archive.dataClass : this.archive.hotClass
  }

  private async state(name: string): Promise<ArchiveState> {
    await this.inner.stat(name)
    const storageClass = this.classOf(name)
    if (!this.archive.dataNeedsRestore || storageClass !== this.archive.dataClass) return { storageClass, readable: true, restore: 'none' }
    if (this.restored.has(name)) return { storageClass, readable: true, restore: 'restored', restoredUntil: new Date(Date.now() + 86_400_000) }
    if (this.restoring.has(name)) return { storageClass, readable: false, restore: 'in-progress' }
    return { storageClass, readable: false, restore: 'none' }
  }

  put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    return this.inner.put(name, data, options)
  }

  async get(name: string, range?: ByteRange): Promise<Buffer> {
    if (name.startsWith(DATA_PREFIX)) {
      this.dataGets.push(name)
      const s = await this.state(name)
      if (!s.readable) throw new ArchivedError(name, { storageClass: s.storageClass, restoring: s.restore === 'in-progress' })
    }
    return this.inner.get(name, range)
  }

  async stat(name: string): Promise<ObjectInfo> {
    return { ...(await this.inner.stat(name)), storageClass: this.classOf(name) }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for await (const info of this.inner.list(prefix)) yield { ...info, storageClass: this.classOf(info.name) }
  }

  delete(name: string): Promise<void> {
    this.restoring.delete(name)
    this.restored.delete(name)
    return this.inner.delete(name)
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}

