import { hashHex } from '../hash/index.js'

/** One regular file of a freeze: path (bytes, relative to the freeze's top level, '/'-separated), BLAKE3, size. */
export interface ManifestEntry {
  path: Buffer
  blake3: string
  size: number
}

const BACKSLASH = 0x5c
const ESCAPES: Record<number, string> = { 0x5c: '\\\\', 0x09: '\\t', 0x0a: '\\n', 0x0d: '\\r' }

/** A path with `\`, tab, LF and CR escaped as `\\`, `\t`, `\n`, `\r` (other bytes as they are). */
export function escapeManifestPath(path: Buffer): Buffer {
  if (!path.some((b) => b in ESCAPES)) return path
  const parts: Buffer[] = []
  let start = 0
  for (let i = 0; i < path.length; i++) {
    const e = ESCAPES[path[i]]
    if (e === undefined) continue
    parts.push(path.subarray(start, i), Buffer.from(e))
    start = i + 1
  }
  parts.push(path.subarray(start))
  return Buffer.concat(parts)
}

/**
 * The canonical manifest (FORMAT.md, "Freeze manifest"): one line
 * `<escaped path> TAB <blake3 hex> TAB <size in decimal> LF` per regular file,
 * sorted by the bytes of the escaped path. Its BLAKE3 is the manifest digest.
 */
export function canonicalManifest(entries: readonly ManifestEntry[]): Buffer {
  const lines = entries.map((e) => ({ key: escapeManifestPath(e.path), e }))
  lines.sort((a, b) => Buffer.compare(a.key, b.key))
  const out: Buffer[] = []
  for (const { key, e } of lines) out.push(key, Buffer.from(`\t${e.blake3}\t${e.size}\n`))
  return Buffer.concat(out)
}

/** Hex BLAKE3 of the canonical manifest. */
export function manifestDigest(entries: readonly ManifestEntry[]): string {
  return hashHex(canonicalManifest(entries))
}

/**
 * The same files as a `b3sum --check` list (`<hex>  <path>`, paths relative to
 * the restore target; a name holding `\` or LF is written as b3sum does: the
 * line starts with `\` and those bytes are escaped).
 */
export function b3sumList(entries: readonly ManifestEntry[]): Buffer {
  const sorted = [...entries].sort((a, b) => Buffer.compare(a.path, b.path))
  const out: Buffer[] = []
  for (const e of sorted) {
    const special = e.path.includes(BACKSLASH) || e.path.includes(0x0a)
    if (!special) {
      out.push(Buffer.from(`${e.blake3}  `), e.path, Buffer.from('\n'))
    } else {
      const esc = Buffer.from(e.path.toString('latin1').replace(/\\/g, '\\\\').replace(/\n/g, '\\n'), 'latin1')
      out.push(Buffer.from(`\\${e.blake3}  `), esc, Buffer.from('\n'))
    }
  }
  return Buffer.concat(out)
}
