/**
 * PROPFIND (RFC 4918 §9.1): parsing the request body and writing the
 * multistatus answer for the properties file managers ask for.
 */
import { isUtf8 } from 'node:buffer'
import type { VfsEntry } from '../engine/index.js'
import { contentType } from './paths.js'

const DAV = 'DAV:'
const MS = 'urn:schemas-microsoft-com:'

/** What a PROPFIND asks for. */
export type PropRequest = { kind: 'allprop' } | { kind: 'propname' } | { kind: 'prop'; props: { ns: string; name: string }[] }

/** A PROPFIND body that is not well-formed enough to understand. */
export class BadPropfindError extends Error {}

/**
 * Reads the request body: empty or `allprop` → every live property;
 * `propname` → names only; `prop` → the listed properties (unknown ones are
 * answered 404 in their own propstat). A small namespace-aware scan of start
 * tags, enough for the bodies real clients send (no DTDs, no entities).
 */
export function parsePropfind(body: string): PropRequest {
  const text = body.replace(/<\?[\s\S]*?\?>/g, '').replace(/<!--[\s\S]*?-->/g, '').trim()
  if (text === '') return { kind: 'allprop' }
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new BadPropfindError('DTDs are not accepted')
  const tagRe = /<(\/?)([A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/g
  const scopes: Map<string, string>[] = []
  const stack: { ns: string; name: string }[] = []
  let inProp = -1
  let sawPropfind = false
  const props: { ns: string; name: string }[] = []
  let kind: PropRequest['kind'] | null = null
  let m: RegExpExecArray | null
  while ((m = tagRe.exec(text))) {
    const [, close, qname, attrs, selfClose] = m
    if (close) {
      stack.pop()
      scopes.pop()
      if (inProp >= 0 && stack.length <= inProp) inProp = -1
      continue
    }
    const scope = new Map<string, string>()
    for (const a of attrs.matchAll(/([^\s=]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
      const value = a[2] ?? a[3] ?? ''
      if (a[1] === 'xmlns') scope.set('', value)
      else if (a[1].startsWith('xmlns:')) scope.set(a[1].slice(6), value)
    }
    scopes.push(scope)
    const colon = qname.indexOf(':')
    const prefix = colon >= 0 ? qname.slice(0, colon) : ''
    const local = colon >= 0 ? qname.slice(colon + 1) : qname
    let ns: string | undefined
    for (let i = scopes.length - 1; i >= 0 && ns === undefined; i--) ns = scopes[i].get(prefix)
    const el = { ns: ns ?? '', name: local }
    const depth = stack.length
    if (depth === 0) {
      if (el.ns !== DAV || el.name !== 'propfind') throw new BadPropfindError('the body is not a DAV:propfind')
      sawPropfind = true
    } else if (depth === 1 && el.ns === DAV && (el.name === 'allprop' || el.name === 'propname' || el.name === 'prop')) {
      kind ??= el.name
      if (el.name === 'prop') inProp = 1
    } else if (inProp === 1 && depth === 2) {
      props.push(el)
    }
    if (selfClose) {
      scopes.pop()
      if (inProp === 1 && depth === 1) inProp = -1
    } else {
      stack.push(el)
    }
  }
  if (!sawPropfind) throw new BadPropfindError('the body is not XML this server understands')
  if (kind === 'prop') return { kind: 'prop', props }
  return { kind: kind === 'propname' ? 'propname' : 'allprop' }
}

const NEEDS_ESCAPE = /[&<>\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/

/** XML text escaping; characters XML 1.0 cannot carry become U+FFFD. */
export function xmlEscape(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s
  return s
    .replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'))
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '\ufffd')
}

/** The ETag of an entry (strong: files by content digest, folders by subtree or listing). */
export function etagOf(e: VfsEntry): string {
  return `"${e.tag}"`
}

/** The name shown for an entry: UTF-8 when valid, else with \xNN escapes. */
export function shownName(e: Pick<VfsEntry, 'name'>): string {
  if (isUtf8(e.name)) return e.name.toString('utf8')
  let out = ''
  for (const c of e.name) out += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`
  return out
}

/** Properties answered to allprop/propname (RFC 4918 live properties plus the Windows attributes). */
const ALLPROP = [
  `${DAV} displayname`, `${DAV} resourcetype`, `${DAV} getcontentlength`, `${DAV} getcontenttype`, `${DAV} getlastmodified`,
  `${DAV} creationdate`, `${DAV} getetag`, `${DAV} supportedlock`, `${DAV} lockdiscovery`, `${MS} Win32FileAttributes`,
]

/**
 * One live property of an entry as XML; null when it does not apply to this
 * entry (getcontentlength of a folder), undefined when the server does not
 * know the property at all.
 */
function propValue(key: string, e: VfsEntry): string | null | undefined {
  const dir = e.type === 'dir'
  switch (key) {
    case `${DAV} displayname`: return `<D:displayname>${xmlEscape(shownName(e))}</D:displayname>`
    case `${DAV} resourcetype`: return dir ? '<D:resourcetype><D:collection/></D:resourcetype>' : '<D:resourcetype/>'
    case `${DAV} getcontentlength`: return dir ? null : `<D:getcontentlength>${e.size}</D:getcontentlength>`
    case `${DAV} getcontenttype`: return dir ? null : `<D:getcontenttype>${xmlEscape(contentType(e.name))}</D:getcontenttype>`
    case `${DAV} getlastmodified`: return `<D:getlastmodified>${e.mtime.toUTCString()}</D:getlastmodified>`
    case `${DAV} creationdate`: return `<D:creationdate>${isoSeconds(e.mtime)}</D:creationdate>`
    case `${DAV} getetag`: return `<D:getetag>${etagOf(e)}</D:getetag>` // hex digests: nothing to escape
    // No locking: an empty supportedlock tells clients (Finder, Office) not to try.
    case `${DAV} supportedlock`: return '<D:supportedlock/>'
    case `${DAV} lockdiscovery`: return '<D:lockdiscovery/>'
    // Windows Explorer: FILE_ATTRIBUTE_READONLY (plus DIRECTORY for folders).
    case `${MS} Win32FileAttributes`: return `<Z:Win32FileAttributes>${dir ? '00000011' : '00000001'}</Z:Win32FileAttributes>`
    case `${DAV} iscollection`: return `<D:iscollection>${dir ? 1 : 0}</D:iscollection>`
    case `${DAV} ishidden`: return '<D:ishidden>0</D:ishidden>'
    case `${DAV} isreadonly`: return '<D:isreadonly>1</D:isreadonly>'
    default: return undefined
  }
}

function isoSeconds(d: Date): string {
  return Number.isNaN(d.getTime()) ? '1970-01-01T00:00:00Z' : d.toISOString().slice(0, 19) + 'Z'
}

function emptyElement(key: string): string {
  const sp = key.indexOf(' ')
  const ns = key.slice(0, sp)
  const name = key.slice(sp + 1)
  if (ns === DAV) return `<D:${name}/>`
  if (ns === MS) return `<Z:${name}/>`
  return `<X:${name} xmlns:X="${xmlEscape(ns)}"/>`
}

/** The opening of a multistatus document. */
export const MULTISTATUS_HEAD = `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:" xmlns:Z="${MS}">\n`
export const MULTISTATUS_TAIL = '</D:multistatus>\n'

/** One `<D:response>` for an entry at `href` (already percent-encoded). */
export function propResponse(href: string, e: VfsEntry, req: PropRequest): string {
  let found = ''
  let missing = ''
  if (req.kind === 'allprop') {
    for (const k of ALLPROP) found += propValue(k, e) ?? ''
  } else if (req.kind === 'propname') {
    for (const k of ALLPROP) if (propValue(k, e) !== null) found += emptyElement(k)
  } else {
    for (const p of req.props) {
      const key = `${p.ns} ${p.name}`
      const v = propValue(key, e)
      if (v) found += v
      else missing += emptyElement(key)
    }
  }
  let s = `<D:response><D:href>${xmlEscape(href)}</D:href>`
  if (found !== '' || missing === '') s += `<D:propstat><D:prop>${found}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>`
  if (missing !== '') s += `<D:propstat><D:prop>${missing}</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>`
  return s + '</D:response>\n'
}
