/**
 * URL paths ↔ the view's path components. Percent-escapes decode to raw
 * bytes (names that are not UTF-8 round-trip); the view itself refuses `.`,
 * `..`, NUL and empty components, so nothing decoded here can leave it.
 */

/** A request path that cannot be decoded (malformed percent-escape). */
export class BadPathError extends Error {}

const HEX = /^[0-9a-fA-F]{2}$/

/**
 * Decodes the path part of a request target into name components (bytes).
 * Empty components (leading, trailing, doubled '/') are dropped; `.` and `..`
 * are kept so the view refuses them (a client that sends them on purpose is
 * answered 400, never resolved upward).
 */
export function parseUrlPath(rawPath: string): Buffer[] {
  const bytes: number[] = []
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i)
    if (c === 0x25) {
      const hex = rawPath.slice(i + 1, i + 3)
      if (!HEX.test(hex)) throw new BadPathError(`malformed percent-escape in ${JSON.stringify(rawPath.slice(0, 200))}`)
      bytes.push(parseInt(hex, 16))
      i += 2
    } else if (c < 0x80) {
      bytes.push(c)
    } else {
      // Raw non-ASCII in the request line (some clients do not escape): take its UTF-8 bytes.
      const cp = rawPath.codePointAt(i)!
      for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) bytes.push(b)
      if (cp > 0xffff) i++
    }
  }
  const buf = Buffer.from(bytes)
  const out: Buffer[] = []
  let start = 0
  for (let i = 0; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === 0x2f) {
      if (i > start) out.push(buf.subarray(start, i))
      start = i + 1
    }
  }
  return out
}

const KEEP = new Uint8Array(256)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&\'()*+,;=:@') KEEP[c.charCodeAt(0)] = 1

/** Percent-encodes one name component (bytes) for use in a URL path. */
export function encodeComponent(name: Buffer): string {
  let s = ''
  for (const c of name) s += KEEP[c] ? String.fromCharCode(c) : `%${c < 16 ? '0' : ''}${c.toString(16).toUpperCase()}`
  return s
}

/** The URL path of components: `/a/b` (plus a trailing '/' for folders). */
export function encodePath(parts: readonly Buffer[], folder: boolean): string {
  const p = '/' + parts.map(encodeComponent).join('/')
  return folder && parts.length > 0 ? p + '/' : p
}

const TYPES: Record<string, string> = {
  txt: 'text/plain; charset=utf-8', md: 'text/markdown; charset=utf-8', log: 'text/plain; charset=utf-8', csv: 'text/csv; charset=utf-8',
  tsv: 'text/tab-separated-values; charset=utf-8', json: 'application/json', xml: 'application/xml', yaml: 'text/yaml; charset=utf-8',
  yml: 'text/yaml; charset=utf-8', html: 'text/html; charset=utf-8', htm: 'text/html; charset=utf-8', css: 'text/css', js: 'text/javascript',
  ts: 'text/plain; charset=utf-8', py: 'text/x-python; charset=utf-8', sh: 'text/x-shellscript; charset=utf-8', c: 'text/x-c; charset=utf-8',
  pdf: 'application/pdf', png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp', svg: 'image/svg+xml',
  heic: 'image/heic', tif: 'image/tiff', tiff: 'image/tiff', mp4: 'video/mp4', mov: 'video/quicktime', mkv: 'video/x-matroska',
  webm: 'video/webm', mp3: 'audio/mpeg', flac: 'audio/flac', wav: 'audio/wav', ogg: 'audio/ogg', zip: 'application/zip',
  gz: 'application/gzip', tar: 'application/x-tar', zst: 'application/zstd', xz: 'application/x-xz', bz2: 'application/x-bzip2',
  '7z': 'application/x-7z-compressed', doc: 'application/msword', docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xls: 'application/vnd.ms-excel', xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  ppt: 'application/vnd.ms-powerpoint', pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  odt: 'application/vnd.oasis.opendocument.text', ipynb: 'application/x-ipynb+json', parquet: 'application/vnd.apache.parquet',
  h5: 'application/x-hdf5', npy: 'application/octet-stream',
}

/** Content-Type by file extension; application/octet-stream when unknown. */
export function contentType(name: Buffer): string {
  const s = name.toString('latin1')
  const dot = s.lastIndexOf('.')
  if (dot <= 0) return 'application/octet-stream'
  return TYPES[s.slice(dot + 1).toLowerCase()] ?? 'application/octet-stream'
}
