/**
 * StagingRemote: gives a remote that can upload files (`putFile`) but has no writer of its own (the network
 * kinds) a `createWriter` that stages each object in a local file and uploads it whole with `putFile` at
 * commit (StagedObjectWriter). Put on top of the wrapper stack, so every staged upload goes through the
 * retries, the breaker and the limits below it, and a failed upload is retried as a whole object.
 *
 * Imports only ../remote.js, ../staged-writer.js and this folder.
 */
import type { ObjectWriter, Remote } from '../remote.js'
import { StagedObjectWriter } from '../staged-writer.js'
import { ForwardingRemote, type CallInfo } from './forward.js'

/** A Remote that is `inner` plus a staging `createWriter` when `inner` has putFile and no createWriter of its own. Owns `inner`. */
export class StagingRemote extends ForwardingRemote {
  /** The directory staged objects are written to. */
  readonly stagingDir: string

  constructor(inner: Remote, stagingDir: string) {
    super(inner)
    this.stagingDir = stagingDir
    if (!this.createWriter && this.putFile) this.createWriter = (_dir: string): ObjectWriter => new StagedObjectWriter(this as { putFile: NonNullable<Remote['putFile']> }, stagingDir)
  }

  /** True when `createWriter` stages (a remote with its own writer keeps it). */
  static stages(inner: Remote): boolean {
    return inner.putFile !== undefined && inner.createWriter === undefined
  }

  protected around<T>(_info: CallInfo, fn: () => Promise<T>): Promise<T> {
    return fn()
  }
}
