/**
 * StagedObjectWriter: an ObjectWriter for network remotes. The pieces go to a temporary file in a local
 * staging directory; `commit` streams that file to the remote with `putFile` (multipart or resumable
 * uploads) and removes it. One pack is staged at a time per writer, never a whole snapshot: each pack is
 * uploaded as soon as it is complete while the backup goes on, and memory does not grow with pack size.
 *
 * Imports only node builtins and ../remote.js.
 */
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import type { ObjectWriter, PutOptions } from './remote.js'

/** What a StagedObjectWriter needs of its remote. */
export interface FileUploader {
  putFile(name: string, path: string, options?: PutOptions): Promise<void>
}

/** Staging files are named `<STAGE_PREFIX><pid>-<random>`; `cleanStaging` removes abandoned ones. */
export const STAGE_PREFIX = 'coldstore-stage-'

/** An ObjectWriter that stages in a local file and uploads it at `commit`. */
export class StagedObjectWriter implements ObjectWriter {
  private readonly remote: FileUploader
  private readonly file: string
  private handle: Promise<fs.FileHandle> | null = null
  private position = 0
  private pending: Promise<unknown>[] = []
  private done = false

  constructor(remote: FileUploader, stagingDir: string) {
    this.remote = remote
    this.file = path.join(stagingDir, `${STAGE_PREFIX}${process.pid}-${randomBytes(8).toString('hex')}`)
  }

  private open(): Promise<fs.FileHandle> {
    this.handle ??= fs.mkdir(path.dirname(this.file), { recursive: true }).then(() => fs.open(this.file, 'wx', 0o600))
    return this.handle
  }

  write(data: Uint8Array): Promise<void> {
    if (this.done) return Promise.reject(new Error('StagedObjectWriter: write after commit or abort'))
    // The offset is taken now, in call order, so writes may be issued without waiting for earlier ones.
    const at = this.position
    this.position += data.length
    const p = this.open().then(async (h) => {
      let written = 0
      while (written < data.length) {
        const { bytesWritten } = await h.write(data, written, data.length - written, at + written)
        written += bytesWritten
      }
    })
    this.pending.push(p)
    return p
  }

  async commit(name: string): Promise<void> {
    if (this.done) throw new Error('StagedObjectWriter: commit after commit or abort')
    this.done = true
    try {
      const h = await this.open()
      await Promise.all(this.pending)
      await h.close()
      this.handle = null
      await this.remote.putFile(name, this.file)
    } finally {
      await this.cleanup()
    }
  }

  async abort(): Promise<void> {
    this.done = true
    await Promise.allSettled(this.pending)
    await this.cleanup()
  }

  private async cleanup(): Promise<void> {
    const h = this.handle
    this.handle = null
    this.pending = []
    if (h) await h.then((fh) => fh.close()).catch(() => undefined)
    await fs.rm(this.file, { force: true }).catch(() => undefined)
  }
}

/**
 * Removes staging files older than `olderThanMs` (left by killed processes) from `stagingDir`. Files of
 * running processes are younger than that, so several processes can share one staging directory.
 * Never throws.
 */
export async function cleanStaging(stagingDir: string, olderThanMs: number, now: number): Promise<number> {
  let removed = 0
  let names: string[]
  try {
    names = await fs.readdir(stagingDir)
  } catch {
    return 0
  }
  for (const n of names) {
    if (!n.startsWith(STAGE_PREFIX)) continue
    const file = path.join(stagingDir, n)
    try {
      const st = await fs.stat(file)
      if (now - st.mtimeMs > olderThanMs) {
        await fs.rm(file, { force: true })
        removed++
      }
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed
}
