/**
 * BandwidthLimitRemote: caps the average upload and download rate of an inner remote with token buckets
 * (`--limit-upload 20MiB/s`, `--limit-download 50MiB/s`), and parseByteRate for such values.
 *
 * Imports only ../../errors.js, ../remote.js and this folder.
 */
import { ConfigError } from '../../errors.js'
import type { ByteRange, PutOptions, Remote } from '../remote.js'
import { SYSTEM_CLOCK, type Clock } from './clock.js'
import { ForwardingRemote, knownRangeBytes, type CallInfo } from './forward.js'
import { fileSize } from './timeout.js'

const UNITS: Readonly<Record<string, number>> = {
  B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, KB: 1000, kB: 1000, MB: 1000 ** 2, GB: 1000 ** 3,
}

/**
 * Parses a rate in bytes per second: `20MiB/s`, `1.5 GiB/s`, `500KB/s`, `100B/s` or a plain number of
 * bytes per second (`1048576`). KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000.
 *
 * @throws ConfigError for anything else, zero, or a rate below one byte per second.
 */
export function parseByteRate(value: string | number): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 1) return value
    throw new ConfigError(`invalid rate ${value}: expected at least 1 byte per second`)
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:(B|KiB|MiB|GiB|KB|kB|MB|GB)\/s)?\s*$/.exec(value)
  const rate = m ? Number(m[1]) * UNITS[m[2] ?? 'B'] : Number.NaN
  if (!(rate >= 1) || !Number.isFinite(rate)) {
    throw new ConfigError(`invalid rate ${JSON.stringify(value)}: expected a number with a unit per second, like 20MiB/s, 500KB/s or 1GiB/s (KiB/s, MiB/s, GiB/s, KB/s, MB/s, GB/s, B/s), or plain bytes per second`)
  }
  return rate
}

/**
 * A token bucket of bytes: `rate` tokens per second, up to `burst` saved up. `take(n)` always succeeds but
 * may leave the bucket in debt; the caller then waits until the debt would be paid off, and later callers
 * wait for it too, so the average rate over any period stays under `rate` (plus one burst), whatever the
 * concurrency.
 */
export class TokenBucket {
  readonly bytesPerSecond: number
  readonly burstBytes: number
  private readonly clock: Clock
  private tokens: number
  private last: number

  /** `burstBytes` defaults to one second's worth. The bucket starts full. */
  constructor(bytesPerSecond: number, o: { burstBytes?: number; clock?: Clock } = {}) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`bytes per second must be positive, got ${bytesPerSecond}`)
    this.bytesPerSecond = bytesPerSecond
    this.burstBytes = o.burstBytes ?? bytesPerSecond
    this.clock = o.clock ?? SYSTEM_CLOCK
    this.tokens = this.burstBytes
    this.last = this.clock.now()
  }

  private refill(): void {
    const now = this.clock.now()
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond)
    this.last = now
  }

  /** Takes `n` tokens; resolves when the caller may send (or has received) `n` bytes. */
  async take(n: number): Promise<void> {
    if (n <= 0) return
    this.refill()
    this.tokens -= n
    if (this.tokens < 0) await this.clock.sleep((-this.tokens / this.bytesPerSecond) * 1000)
  }

  /** Gives back tokens taken for bytes that were not moved after all (a short read). */
  refund(n: number): void {
    if (n <= 0) return
    this.refill()
    this.tokens = Math.min(this.burstBytes, this.tokens + n)
  }
}

/** Settings of BandwidthLimitRemote: a rate or a bucket (to share one limit between remotes) per direction. Absent: unlimited. */
export interface BandwidthOptions {
  uploadBytesPerSecond?: number
  downloadBytesPerSecond?: number
  upload?: TokenBucket
  download?: TokenBucket
  clock?: Clock
}

/**
 * A Remote whose uploads (put, putFile by the file's size, a writer's writes) and downloads (get) go at most
 * at the configured average rates. Whole-object calls are paced per object: the call waits for its bytes'
 * tokens and then goes at full speed, so the rate holds over a few objects, not within one. A ranged get
 * takes its tokens before the call (and gets back what a short read did not use); a get of a whole object,
 * whose size is known only afterwards, pays after the call, delaying its caller and the next ones. Owns `inner`.
 */
export class BandwidthLimitRemote extends ForwardingRemote {
  /** null: that direction is not limited. */
  readonly upload: TokenBucket | null
  readonly download: TokenBucket | null

  constructor(inner: Remote, options: BandwidthOptions) {
    super(inner)
    const clock = options.clock
    this.upload = options.upload ?? (options.uploadBytesPerSecond !== undefined ? new TokenBucket(options.uploadBytesPerSecond, { clock }) : null)
    this.download = options.download ?? (options.downloadBytesPerSecond !== undefined ? new TokenBucket(options.downloadBytesPerSecond, { clock }) : null)
  }

  protected async around<T>(info: CallInfo, fn: () => Promise<T>): Promise<T> {
    if (this.upload && (info.call === 'put' || info.call === 'putFile' || info.call === 'write')) await this.upload.take(info.bytes ?? 0)
    return fn()
  }

  protected override async forwardPutFile(name: string, path: string, options: PutOptions | undefined, putFile: NonNullable<Remote['putFile']>): Promise<void> {
    const bytes = this.upload ? await fileSize(path) : undefined
    return this.around({ call: 'putFile', name, bytes }, () => putFile(name, path, options))
  }

  override async get(name: string, range?: ByteRange): Promise<Buffer> {
    const bucket = this.download
    if (!bucket) return this.inner.get(name, range)
    const before = knownRangeBytes(range)
    if (before !== undefined) await bucket.take(before)
    let data: Buffer
    try {
      data = await this.inner.get(name, range)
    } catch (err) {
      if (before !== undefined) bucket.refund(before)
      throw err
    }
    if (before === undefined) await bucket.take(data.length)
    else bucket.refund(before - data.length)
    return data
  }
}
