/** HTTP Range header parsing (RFC 9110 §14): byte ranges only. */

/** An inclusive byte range [start, end]. */
export interface ByteRange {
  start: number
  end: number
}

/** Ranges a request may ask for at once; more is answered with the whole file (allowed by RFC 9110). */
export const MAX_RANGES = 64

/**
 * Parses a Range header against a representation of `size` bytes.
 * Returns null when the header is absent, not a byte range, malformed or has
 * too many ranges (the whole representation is sent), 'unsatisfiable' when
 * no range overlaps the content (416), else the satisfiable ranges in request
 * order, each clamped to the size.
 */
export function parseRange(header: string | undefined, size: number): ByteRange[] | 'unsatisfiable' | null {
  if (header === undefined) return null
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header)
  if (!m) return null
  const specs = m[1].split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (specs.length === 0 || specs.length > MAX_RANGES) return null
  const out: ByteRange[] = []
  for (const spec of specs) {
    const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec)
    if (!r || (r[1] === '' && r[2] === '')) return null
    if (r[1] === '') {
      // Suffix range: the last N bytes.
      const n = Number(r[2])
      if (!Number.isSafeInteger(n)) return null
      if (n === 0 || size === 0) continue
      out.push({ start: Math.max(0, size - n), end: size - 1 })
      continue
    }
    const start = Number(r[1])
    const end = r[2] === '' ? Infinity : Number(r[2])
    if (!Number.isSafeInteger(start) || (r[2] !== '' && !Number.isSafeInteger(end)) || end < start) return null
    if (start >= size) continue
    out.push({ start, end: Math.min(end, size - 1) })
  }
  return out.length === 0 ? 'unsatisfiable' : out
}
