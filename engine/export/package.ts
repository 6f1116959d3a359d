/**
 * Export packages: one snapshot as a self-contained .tar or .tar.zst that can
 * be checked with b3sum or sha256sum alone. Layout (FORMAT.md, "Export packages"):
 *
 *   <name>/README.txt               how to verify without coldstore
 *   <name>/coldstore-metadata.yaml  every field of the snapshot object, and the package's own facts
 *   <name>/files/...                the snapshot's folders, files and symlinks (modes, mtimes)
 *   <name>/MANIFEST.b3              `<blake3>  files/<path>` per file (b3sum format)
 *   <name>/SHA256SUMS               `<sha256>  files/<path>` per file (sha256sum format)
 *
 * Everything is streamed: file contents chunk by chunk, the manifests through
 * temporary files; the package is written to a temporary name and renamed
 * when complete, so an interrupted export leaves no package that looks whole.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs'
import * as fs from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import { Transform, type Readable, type Writable } from 'node:stream'
import * as tar from 'tar-stream'
import { CompressStream, DecompressStream } from 'zstd-napi'
import { stringify as yamlStringify } from 'yaml'
import { IntegrityError, UsageError } from '../errors.js'
import { StreamHasher } from '../hash/index.js'
import type { Repository } from '../repo/index.js'
import type { Snapshot } from '../snapshot/index.js'
import { TreeReader, isUtf8, type TreeNode } from '../tree/index.js'

export const MANIFEST_B3 = 'MANIFEST.b3'
export const SHA256SUMS = 'SHA256SUMS'
export const METADATA_YAML = 'coldstore-metadata.yaml'
export const README_TXT = 'README.txt'
export const FILES_DIR = 'files'

/** Chunks read ahead of the one being written. */
const READ_AHEAD = 4

export interface ExportProgress {
  files: number
  bytes: number
  totalFiles: number
  totalBytes: number
  current?: string
}

export interface ExportOptions {
  snapshot: Snapshot
  /** The package file: `.tar` or `.tar.zst` (zstd-compressed). */
  output: string
  /** The package's top folder; default `coldstore-<first 8 hex of the snapshot id>`. */
  name?: string
  /** zstd level for .tar.zst (default 3). */
  zstdLevel?: number
  /** Replace an existing output file. */
  overwrite?: boolean
  program: string
  now: () => Date
  /** Extra facts for the metadata file's `package` section (e.g. the audit head). */
  extra?: Record<string, unknown>
  onProgress?: (p: ExportProgress) => void
  /** Entries left out (FIFOs, sockets, devices). */
  onSkip?: (path: string, type: string) => void
}

export interface ExportResult {
  output: string
  name: string
  compressed: boolean
  files: number
  dirs: number
  symlinks: number
  bytes: number
  skipped: { path: string; type: string }[]
  /** Size of the package file. */
  package_bytes: number
  /** Plain BLAKE3 of MANIFEST.b3 (publish it to pin the manifest). */
  manifest_blake3: string
  manifest_sha256: string
}

/** True when `path` names a package by its ending (.tar, .tar.zst, .tzst). */
export function isPackageName(path: string): boolean {
  return /\.(tar|tar\.zst|tzst)$/i.test(path)
}

function isCompressedName(path: string): boolean {
  return /\.(tar\.zst|tzst)$/i.test(path)
}

/**
 * A manifest line in the b3sum / sha256sum format: names holding `\` or a
 * newline are escaped (`\\`, `\n`) and the line starts with `\`, as both tools
 * print and read them.
 */
export function manifestLine(digest: string, path: string): string {
  if (!/[\\\n]/.test(path)) return `${digest}  ${path}\n`
  return `\\${digest}  ${path.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n`
}

/** Parses one manifest line (see manifestLine); null when it is not one. */
export function parseManifestLine(line: string): { digest: string; path: string } | null {
  const escaped = line.startsWith('\\')
  const m = /^([0-9a-f]{64})  (.*)$/s.exec(escaped ? line.slice(1) : line)
  if (!m) return null
  let path = m[2]
  if (escaped) {
    let out = ''
    for (let i = 0; i < path.length; i++) {
      if (path[i] !== '\\') {
        out += path[i]
        continue
      }
      const n = path[++i]
      if (n === '\\') out += '\\'
      else if (n === 'n') out += '\n'
      else return null
    }
    path = out
  }
  return { digest: m[1], path }
}

/** Why a path cannot go into a package, or null. */
function unexportable(path: Buffer): string | null {
  if (!isUtf8(path)) return 'its name is not valid UTF-8 (b3sum and sha256sum could not name it exactly)'
  if (path.includes(0x0d)) return 'its name holds a carriage return (b3sum and sha256sum escape it differently)'
  return null
}

/** Writes to a stream, waiting while its buffer is full. */
async function writeOrWait(w: Writable, data: Uint8Array): Promise<void> {
  if (!w.write(data)) await once(w, 'drain')
}

/** The file's content, chunk by chunk, with READ_AHEAD chunks in flight. */
async function* readFile(repo: Repository, node: TreeNode): AsyncGenerator<Buffer> {
  const chunks = node.chunks ?? []
  const pending: Promise<Buffer>[] = []
  let next = 0
  const fill = (): void => {
    while (next < chunks.length && pending.length < READ_AHEAD) {
      const p = repo.loadBlob(chunks[next++])
      p.catch(() => undefined)
      pending.push(p)
    }
  }
  fill()
  while (pending.length > 0) {
    const buf = await pending.shift()!
    fill()
    yield buf
  }
}

function mtimeOf(node: TreeNode): Date {
  return new Date(Number(node.mtimeNs / 1_000_000n))
}

function readme(name: string, snap: Snapshot, pkgFile: string, compressed: boolean): string {
  const unpack = compressed
    ? `  zstd -d < ${pkgFile} | tar -xf -          (or: tar --zstd -xf ${pkgFile})`
    : `  tar -xf ${pkgFile}`
  return `This folder is a coldstore export package of snapshot ${snap.id}
(${snap.kind}, taken ${snap.time} on ${snap.host} of ${snap.paths.join(', ')}).

  files/                   the snapshot's files and folders, with their modes and modification times
  MANIFEST.b3              the BLAKE3 digest of every file under files/ (b3sum format)
  SHA256SUMS               the SHA-256 digest of every file under files/ (sha256sum format)
  coldstore-metadata.yaml  the snapshot's metadata (time, host, paths, tags, event and git details)

How to verify it without coldstore
----------------------------------

1. Unpack it with plain tar (and zstd for a .tar.zst):

${unpack}

2. Check every file against the manifests (Debian/Ubuntu: apt install b3sum; sha256sum is in coreutils):

  cd ${name}
  b3sum --check MANIFEST.b3
  sha256sum --check SHA256SUMS

   Each prints "<file>: OK" per file and exits non-zero if any file is missing or differs.

3. Check that no file was added: every regular file under files/ must be listed in the manifests:

  find files -type f | sort > /tmp/present
  sed -e 's/^\\\\//' -e 's/^[0-9a-f]*  //' MANIFEST.b3 | sort > /tmp/listed
  diff /tmp/present /tmp/listed && echo "no extra files"

   (Names holding a backslash or a newline are escaped in the manifests, as b3sum writes them; such
   names show up in this diff even when nothing was added.)

4. To make sure the manifests themselves are the ones published, compare the digest of MANIFEST.b3
   (b3sum MANIFEST.b3) with the one published alongside the package (the release notes, the
   verification report, or what the sender gave you).

With coldstore installed, "coldstore verify ${pkgFile}" does steps 2 and 3 without unpacking.
Hard links are stored as separate copies; symbolic links are kept as links and have no digest.
`
}

interface Counted {
  files: number
  bytes: number
}

/** Walks the snapshot once to count files and bytes and to refuse names the manifests cannot hold. */
async function precheck(trees: TreeReader, snap: Snapshot, onSkip?: (path: string, type: string) => void): Promise<Counted & { skipped: { path: string; type: string }[] }> {
  let files = 0
  let bytes = 0
  const skipped: { path: string; type: string }[] = []
  const bad: string[] = []
  for await (const [path, node] of trees.walk(snap.tree)) {
    const why = unexportable(path)
    if (why && (node.type === 'file' || node.type === 'dir' || node.type === 'symlink')) {
      bad.push(`${path.toString('utf8')}: ${why}`)
      continue
    }
    if (node.type === 'symlink' && node.target && !isUtf8(node.target)) bad.push(`${path.toString('utf8')}: its link target is not valid UTF-8`)
    if (node.type === 'file') {
      files++
      bytes += node.size ?? 0
    } else if (node.type !== 'dir' && node.type !== 'symlink') {
      skipped.push({ path: path.toString('utf8'), type: node.type })
      onSkip?.(path.toString('utf8'), node.type)
    }
  }
  if (bad.length) {
    throw new UsageError(`cannot export snapshot ${snap.id.slice(0, 8)}: ${bad.length} entries cannot be named in the manifests:\n  ${bad.slice(0, 10).join('\n  ')}${bad.length > 10 ? `\n  … and ${bad.length - 10} more` : ''}`)
  }
  return { files, bytes, skipped }
}

/** Writes the export package of `o.snapshot` to `o.output`. */
export async function exportSnapshot(repo: Repository, o: ExportOptions): Promise<ExportResult> {
  if (!isPackageName(o.output)) throw new UsageError(`the package name must end in .tar or .tar.zst: ${o.output}`)
  const snap = o.snapshot
  const name = o.name ?? `coldstore-${snap.id.slice(0, 8)}`
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new UsageError(`package name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-'`)
  const compressed = isCompressedName(o.output)
  if (!o.overwrite) {
    try {
      await fs.lstat(o.output)
      throw new UsageError(`${o.output} exists: not replacing it (--overwrite replaces it)`)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }
  try {
    if (!(await fs.stat(dirname(o.output))).isDirectory()) throw new UsageError(`${dirname(o.output)} is not a folder`)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`the folder ${dirname(o.output)} does not exist`)
    throw err
  }
  const trees = new TreeReader(repo)
  const counted = await precheck(trees, snap, o.onSkip)

  const dir = dirname(o.output)
  const tag = randomBytes(6).toString('hex')
  const tmpPackage = join(dir, `.${basename(o.output)}.tmp-${tag}`)
  const tmpB3 = join(dir, `.${basename(o.output)}.b3.tmp-${tag}`)
  const tmpSha = join(dir, `.${basename(o.output)}.sha256.tmp-${tag}`)
  const b3Out = createWriteStream(tmpB3)
  const shaOut = createWriteStream(tmpSha)
  const closeStream = (s: WriteStream): Promise<void> => new Promise((res, rej) => s.end((e?: Error | null) => (e ? rej(e) : res())))

  const pack = tar.pack()
  const sink = createWriteStream(tmpPackage, { flags: 'wx' })
  const stages: (Readable | Writable)[] = [pack as unknown as Readable, padToRecord()]
  if (compressed) stages.push(new CompressStream({ compressionLevel: o.zstdLevel ?? 3, checksumFlag: true }))
  stages.push(sink)
  const piped = pipeline(stages as unknown as [Readable, Writable])
  piped.catch(() => undefined)

  const addBuffer = (entryName: string, data: Buffer, mtime: Date): Promise<void> =>
    new Promise((res, rej) => pack.entry({ name: entryName, type: 'file', mode: 0o644, mtime, size: data.length }, data, (e) => (e ? rej(e) : res())))
  const addFile = async (entryName: string, path: string, mtime: Date): Promise<void> => {
    const size = (await fs.stat(path)).size
    await new Promise<void>((res, rej) => {
      const w = pack.entry({ name: entryName, type: 'file', mode: 0o644, mtime, size }, (e) => (e ? rej(e) : res()))
      createReadStream(path).on('error', rej).pipe(w as unknown as Writable)
    })
  }

  const result: ExportResult = {
    output: o.output, name, compressed, files: 0, dirs: 0, symlinks: 0, bytes: 0, skipped: counted.skipped,
    package_bytes: 0, manifest_blake3: '', manifest_sha256: '',
  }
  const created = o.now()
  try {
    await addBuffer(`${name}/${README_TXT}`, Buffer.from(readme(name, snap, basename(o.output), compressed)), created)
    const metadata = {
      coldstore_package: 1,
      snapshot: { id: snap.id, ...Object.fromEntries(Object.entries(snap).filter(([k]) => k !== 'id')) },
      package: {
        name, created: created.toISOString(), program: o.program, files: counted.files, bytes: counted.bytes,
        skipped: counted.skipped, manifests: [MANIFEST_B3, SHA256SUMS], ...(o.extra ?? {}),
      },
    }
    await addBuffer(`${name}/${METADATA_YAML}`, Buffer.from(yamlStringify(metadata, { lineWidth: 0 })), created)
    pack.entry({ name: `${name}/${FILES_DIR}/`, type: 'directory', mode: 0o755, mtime: created })
    for await (const [pathBuf, node] of trees.walk(snap.tree)) {
      const path = pathBuf.toString('utf8')
      const entryName = `${name}/${FILES_DIR}/${path}`
      const base = { mode: node.mode & 0o7777, mtime: mtimeOf(node), uid: 0, gid: 0 }
      if (node.type === 'dir') {
        pack.entry({ ...base, name: entryName + '/', type: 'directory' })
        result.dirs++
      } else if (node.type === 'symlink') {
        pack.entry({ ...base, name: entryName, type: 'symlink', linkname: (node.target ?? Buffer.alloc(0)).toString('utf8') })
        result.symlinks++
      } else if (node.type === 'file') {
        const size = node.size ?? 0
        const b3 = new StreamHasher()
        const sha = createHash('sha256')
        let written = 0
        await new Promise<void>((res, rej) => {
          const w = pack.entry({ ...base, name: entryName, type: 'file', size }, (e) => (e ? rej(e) : res()))
          w.on('error', rej) // destroyed below on a read error: the error is this promise's, not an uncaught one
          void (async () => {
            try {
              for await (const buf of readFile(repo, node)) {
                written += buf.length
                if (written > size) throw new IntegrityError(`${path}: content is longer than its recorded size ${size}`)
                b3.update(buf)
                sha.update(buf)
                await writeOrWait(w as unknown as Writable, buf)
                result.bytes += buf.length
                o.onProgress?.({ files: result.files, bytes: result.bytes, totalFiles: counted.files, totalBytes: counted.bytes, current: path })
              }
              if (written !== size) throw new IntegrityError(`${path}: content is ${written} bytes, its recorded size ${size}`)
              w.end(Buffer.alloc(0))
            } catch (err) {
              w.destroy(err as Error)
              rej(err)
            }
          })()
        })
        const b3hex = b3.digestHex()
        if (node.blake3 && node.blake3 !== b3hex) throw new IntegrityError(`${path}: content does not match its recorded BLAKE3`)
        const rel = `${FILES_DIR}/${path}`
        await writeOrWait(b3Out, Buffer.from(manifestLine(b3hex, rel)))
        await writeOrWait(shaOut, Buffer.from(manifestLine(sha.digest('hex'), rel)))
        result.files++
        o.onProgress?.({ files: result.files, bytes: result.bytes, totalFiles: counted.files, totalBytes: counted.bytes, current: path })
      }
    }
    await closeStream(b3Out)
    await closeStream(shaOut)
    result.manifest_blake3 = (await hashFile(tmpB3, 'blake3'))
    result.manifest_sha256 = (await hashFile(tmpSha, 'sha256'))
    await addFile(`${name}/${MANIFEST_B3}`, tmpB3, created)
    await addFile(`${name}/${SHA256SUMS}`, tmpSha, created)
    pack.finalize()
    await piped
    const fh = await fs.open(tmpPackage, 'r')
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
    if (o.overwrite) await fs.rename(tmpPackage, o.output)
    else {
      // link fails when the name appeared meanwhile: never replace a file the user did not ask to replace
      await fs.link(tmpPackage, o.output).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') throw new UsageError(`${o.output} exists: not replacing it (--overwrite replaces it)`)
        throw err
      })
      await fs.rm(tmpPackage, { force: true })
    }
    result.package_bytes = (await fs.stat(o.output)).size
    return result
  } catch (err) {
    pack.destroy(err as Error)
    await piped.catch(() => undefined)
    await fs.rm(tmpPackage, { force: true })
    throw err
  } finally {
    b3Out.destroy()
    shaOut.destroy()
    await fs.rm(tmpB3, { force: true })
    await fs.rm(tmpSha, { force: true })
  }
}

/** Tar's record size: GNU tar writes archives in records of 20 blocks, and `tar --delete` misreads the last one when it is short. */
const TAR_RECORD = 10240

/** Pads the archive with zero bytes to a whole number of records, as tar itself does. */
function padToRecord(): Transform {
  let size = 0
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length
      cb(null, chunk)
    },
    flush(cb) {
      const pad = (TAR_RECORD - (size % TAR_RECORD)) % TAR_RECORD
      cb(null, pad ? Buffer.alloc(pad) : undefined)
    },
  })
}

async function hashFile(path: string, alg: 'blake3' | 'sha256'): Promise<string> {
  const h = alg === 'blake3' ? new StreamHasher() : createHash('sha256')
  for await (const buf of createReadStream(path)) h.update(buf as Buffer)
  return h instanceof StreamHasher ? h.digestHex() : h.digest('hex')
}

// ---------------------------------------------------------------------------
// Checking a package.

export interface PackageProblem {
  kind: 'missing' | 'extra' | 'altered' | 'duplicate' | 'manifest' | 'layout' | 'unreadable'
  path?: string
  message: string
}

export interface PackageReport {
  ok: boolean
  package: string
  name: string | null
  files: number
  bytes: number
  checked_blake3: number
  checked_sha256: number
  manifest_blake3: string | null
  manifest_sha256: string | null
  problems: PackageProblem[]
}

/**
 * Reads a package (streamed; .tar.zst is recognised by its zstd magic) and
 * checks every file under files/ against MANIFEST.b3 and SHA256SUMS: files
 * missing, not listed (extra), or with other content (altered), entries named
 * twice, and entries outside the package's top folder.
 */
export async function verifyPackage(path: string, onProgress?: (p: { files: number; bytes: number }) => void): Promise<PackageReport> {
  const report: PackageReport = {
    ok: false, package: path, name: null, files: 0, bytes: 0, checked_blake3: 0, checked_sha256: 0,
    manifest_blake3: null, manifest_sha256: null, problems: [],
  }
  const fh = await fs.open(path, 'r')
  const magic = Buffer.alloc(4)
  try {
    await fh.read(magic, 0, 4, 0)
  } finally {
    await fh.close()
  }
  const zstd = magic.readUInt32LE(0) === 0xfd2fb528
  const digests = new Map<string, { b3: string; sha: string }>()
  const seen = new Set<string>()
  let manifestB3: Buffer | null = null
  let manifestSha: Buffer | null = null
  let hasMetadata = false
  const extract = tar.extract()
  const done = (async () => {
    for await (const entry of extract) {
      const h = entry.header
      const full = h.name.replace(/\/+$/, '')
      const slash = full.indexOf('/')
      const top = slash < 0 ? full : full.slice(0, slash)
      const rest = slash < 0 ? '' : full.slice(slash + 1)
      if (report.name === null) report.name = top
      if (top !== report.name) report.problems.push({ kind: 'layout', path: h.name, message: `${h.name}: outside the package folder ${report.name}/` })
      if (h.type === 'file' && seen.has(full)) report.problems.push({ kind: 'duplicate', path: rest, message: `${rest}: stored twice (tar tools would extract the last copy)` })
      if (h.type === 'file') seen.add(full)
      if (h.type === 'file' && rest.startsWith(`${FILES_DIR}/`)) {
        const b3 = new StreamHasher()
        const sha = createHash('sha256')
        for await (const buf of entry) {
          b3.update(buf as Buffer)
          sha.update(buf as Buffer)
          report.bytes += (buf as Buffer).length
          onProgress?.({ files: report.files, bytes: report.bytes })
        }
        digests.set(rest, { b3: b3.digestHex(), sha: sha.digest('hex') })
        report.files++
        continue
      }
      if (h.type === 'file' && (rest === MANIFEST_B3 || rest === SHA256SUMS)) {
        const parts: Buffer[] = []
        for await (const buf of entry) parts.push(buf as Buffer)
        if (rest === MANIFEST_B3) manifestB3 = Buffer.concat(parts)
        else manifestSha = Buffer.concat(parts)
        continue
      }
      if (h.type === 'file' && rest === METADATA_YAML) hasMetadata = true
      else if (h.type === 'file' && rest !== README_TXT) report.problems.push({ kind: 'extra', path: rest, message: `${rest}: not part of a package's layout` })
      else if (h.type !== 'file' && h.type !== 'directory' && h.type !== 'symlink') report.problems.push({ kind: 'extra', path: rest, message: `${rest}: a ${h.type} entry, which packages do not hold` })
      entry.resume()
    }
  })()
  try {
    const src = createReadStream(path)
    await Promise.all([
      zstd ? pipeline(src, new DecompressStream(), extract as unknown as Writable) : pipeline(src, extract as unknown as Writable),
      done,
    ])
  } catch (err) {
    report.problems.push({ kind: 'unreadable', message: `the package cannot be read to the end: ${(err as Error).message}` })
    return finish(report)
  }
  if (!hasMetadata) report.problems.push({ kind: 'layout', path: METADATA_YAML, message: `${METADATA_YAML} is missing` })
  const check = (buf: Buffer | null, file: string, which: 'b3' | 'sha'): void => {
    if (buf === null) {
      report.problems.push({ kind: 'manifest', path: file, message: `${file} is missing` })
      return
    }
    if (which === 'b3') report.manifest_blake3 = new StreamHasher().update(buf).digestHex()
    else report.manifest_sha256 = createHash('sha256').update(buf).digest('hex')
    const text = buf.toString('utf8')
    const listed = new Set<string>()
    const lines = text.split('\n')
    if (lines.at(-1) === '') lines.pop()
    for (const [i, line] of lines.entries()) {
      const p = parseManifestLine(line)
      if (!p) {
        report.problems.push({ kind: 'manifest', path: file, message: `${file} line ${i + 1}: not a digest line` })
        continue
      }
      if (listed.has(p.path)) report.problems.push({ kind: 'manifest', path: file, message: `${file} line ${i + 1}: ${p.path} listed twice` })
      listed.add(p.path)
      const d = digests.get(p.path)
      if (!d) report.problems.push({ kind: 'missing', path: p.path, message: `${p.path}: listed in ${file} but not in the package` })
      else if ((which === 'b3' ? d.b3 : d.sha) !== p.digest) report.problems.push({ kind: 'altered', path: p.path, message: `${p.path}: content does not match ${file}` })
      else if (which === 'b3') report.checked_blake3++
      else report.checked_sha256++
    }
    for (const f of digests.keys()) {
      if (!listed.has(f)) report.problems.push({ kind: 'extra', path: f, message: `${f}: in the package but not listed in ${file}` })
    }
  }
  check(manifestB3, MANIFEST_B3, 'b3')
  check(manifestSha, SHA256SUMS, 'sha')
  return finish(report)
}

function finish(r: PackageReport): PackageReport {
  // One problem per path and kind (a file altered is reported by both manifests otherwise).
  const seen = new Set<string>()
  r.problems = r.problems.filter((p) => {
    const k = `${p.kind}\0${p.path ?? ''}\0${p.kind === 'manifest' ? p.message : ''}`
    if (seen.has(k)) return false
    seen.add(k)
    return true
  })
  r.ok = r.problems.length === 0
  return r
}
