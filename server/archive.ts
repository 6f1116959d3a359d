/**
 * Folder downloads as .tar (tar-stream) or .zip (yazl), streamed: entries are
 * produced while the folder's trees are walked and file bytes are read chunk
 * by chunk with backpressure, so memory does not grow with the folder.
 */
import { PassThrough, type Writable } from 'node:stream'
import * as tar from 'tar-stream'
import yazl from 'yazl'
import type { BrowseView, VfsEntry } from '../engine/index.js'
import { writeOrWait } from './backpressure.js'
import { shownName } from './propfind.js'


function archiveName(prefix: string, parts: readonly Buffer[]): string {
  return [prefix, ...parts.map((p) => shownName({ name: p } as VfsEntry))].join('/')
}

/**
 * Streams the folder at `path` as a tar archive to `out` (entries under
 * `prefix/`). Files, folders and symlinks; other special files are left out.
 * Rejects on the first read error (the caller aborts the response: a
 * truncated download must not look complete).
 */
export async function streamTar(view: BrowseView, path: readonly Buffer[], prefix: string, out: Writable): Promise<void> {
  const pack = tar.pack()
  const piped = new Promise<void>((resolve, reject) => {
    pack.on('error', reject)
    out.on('error', reject)
    out.on('close', resolve)
    out.on('finish', resolve)
  })
  piped.catch(() => undefined) // awaited below; an early failure must not be an unhandled rejection meanwhile
  pack.pipe(out)
  // A client that goes away mid-download: end the pack, which ends the entry being written, so nothing waits forever.
  out.on('close', () => {
    if (!out.writableFinished) pack.destroy(new Error('download closed by the client'))
  })
  pack.entry({ name: prefix + '/', type: 'directory', mode: 0o755, mtime: new Date() })
  for await (const [parts, e] of view.walk(path)) {
    if (out.destroyed) break
    const name = archiveName(prefix, parts)
    const base = { name, mode: e.node?.mode ?? 0o755, mtime: e.mtime, uid: e.node?.uid ?? 0, gid: e.node?.gid ?? 0 }
    if (e.type === 'dir') {
      pack.entry({ ...base, name: name + '/', type: 'directory' })
    } else if (e.type === 'symlink' && e.node?.target) {
      pack.entry({ ...base, type: 'symlink', linkname: e.node.target.toString('utf8') })
    } else if (e.type === 'file' && e.node) {
      const file = view.openNode(e.node)
      const done = new Promise<void>((resolve, reject) => {
        const w = pack.entry({ ...base, type: 'file', size: file.size }, (err) => (err ? reject(err) : resolve()))
        void (async () => {
          try {
            for await (const chunk of file.read()) {
              if (!(await writeOrWait(w, chunk))) return reject(new Error('download closed'))
            }
            w.end(Buffer.alloc(0))
          } catch (err) {
            w.destroy(err as Error)
            reject(err)
          }
        })()
      })
      await done
    }
  }
  pack.finalize()
  await piped
}

/**
 * Streams the folder at `path` as a zip archive (stored, not compressed;
 * ZIP64 when sizes need it). Entries are added as the walk proceeds; each
 * file's bytes are read only when yazl reaches it.
 */
export async function streamZip(view: BrowseView, path: readonly Buffer[], prefix: string, out: Writable): Promise<void> {
  const zip = new yazl.ZipFile()
  const failed = new Promise<never>((_, reject) => zip.on('error', reject))
  failed.catch(() => undefined)
  // Zip readers take '\\' for a path separator (and yazl rewrites it to '/'): a name holding one would land in
  // another folder, so it becomes '_' in zip archives (tar keeps names exactly).
  const zipName = (name: string): string => name.replace(/\\/g, '_')
  const output = zip.outputStream as unknown as PassThrough
  const piped = new Promise<void>((resolve, reject) => {
    out.on('error', reject)
    out.on('close', resolve)
    out.on('finish', resolve)
  })
  piped.catch(() => undefined)
  output.pipe(out)
  let current: PassThrough | null = null
  out.on('close', () => {
    if (out.writableFinished) return
    current?.destroy()
    output.destroy()
  })
  zip.addEmptyDirectory(zipName(prefix) + '/', { mtime: new Date() })
  for await (const [parts, e] of view.walk(path)) {
    if (out.destroyed) break
    const name = archiveName(prefix, parts)
    if (e.type === 'dir') {
      zip.addEmptyDirectory(zipName(name) + '/', { mtime: e.mtime, mode: 0o40000 | (e.node?.mode ?? 0o755) })
    } else if (e.type === 'file' && e.node) {
      const node = e.node
      // Opened only when yazl reaches the entry: a folder of many files holds no chunk tables meanwhile.
      zip.addReadStreamLazy(zipName(name), { size: e.size, mtime: e.mtime, mode: 0o100000 | (node.mode & 0o7777), compress: false }, (cb) => {
        const pt = new PassThrough({ highWaterMark: 1 << 20 })
        current = pt
        void (async () => {
          try {
            const file = view.openNode(node)
            cb(null, pt)
            for await (const chunk of file.read()) {
              if (!(await writeOrWait(pt, chunk))) return
            }
            pt.end()
          } catch (err) {
            zip.emit('error', err)
          }
        })()
      })
    }
  }
  zip.end()
  await Promise.race([piped, failed])
}
