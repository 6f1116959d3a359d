/** The browser view of a folder: breadcrumbs, a table of entries, archive links. */
import type { VfsEntry } from '../engine/index.js'
import { encodeComponent, encodePath } from './paths.js'
import { shownName } from './propfind.js'

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** 1536 → "1.5 KiB". */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let i = 0
  let v = n
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`
}

function when(d: Date): string {
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace('T', ' ').slice(0, 19) + ' UTC'
}

const STYLE = `
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2329;background:#fafbfc}
header{background:#22303c;color:#fff;padding:.7em 1.2em}header a{color:#cfe3ff}
main{padding:1em 1.2em;max-width:70em}nav.crumbs{font-size:1.05em;margin-bottom:.8em}nav.crumbs a{text-decoration:none}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e1e4e8}
th,td{padding:.35em .7em;text-align:left;border-bottom:1px solid #eef0f2}th{background:#f3f5f7;font-weight:600}
td.size,th.size{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.mtime{white-space:nowrap;color:#57606a}
a{color:#0b5cad}.dl{font-size:.85em;margin-left:.6em}.note{color:#57606a}.archive a{margin-right:1em}
.archive{margin:.2em 0 1em}td{overflow-wrap:anywhere}
@media (max-width:600px){main{padding:.8em .6em}td.mtime,th.mtime{display:none}th,td{padding:.35em .4em}}`

/**
 * Renders a folder listing. `parts` is the folder's path; `archives` says
 * whether the folder can be downloaded as .tar/.zip (inside a snapshot).
 */
export function renderListing(o: {
  parts: readonly Buffer[]
  entries: readonly VfsEntry[]
  archives: boolean
  title: string
  /** The href of the root folder (default `/`). */
  rootHref?: string
  /** A link shown in the header (the daemon's dashboard). */
  home?: { href: string; label: string }
}): string {
  const root = o.rootHref ?? '/'
  const crumbs = [`<a href="${esc(root)}">${esc(o.title)}</a>`]
  for (let i = 0; i < o.parts.length; i++) {
    const name = shownName({ name: o.parts[i] } as VfsEntry)
    crumbs.push(i === o.parts.length - 1 ? `<strong>${esc(name)}</strong>` : `<a href="${esc(encodePath(o.parts.slice(0, i + 1), true))}">${esc(name)}</a>`)
  }
  const here = encodePath(o.parts, true)
  const rows: string[] = []
  if (o.parts.length > 0) rows.push(`<tr><td><a href="${esc(o.parts.length === 1 ? root : encodePath(o.parts.slice(0, -1), true))}">../</a></td><td class="size"></td><td class="mtime"></td></tr>`)
  for (const e of o.entries) {
    const name = shownName(e)
    const href = (here === '/' ? '/' : here) + encodeComponent(e.name)
    if (e.type === 'dir') {
      // Snapshot folders: what the snapshot holds, and its tags.
      const st = e.snapshot?.stats
      const about = e.snapshot ? ` <span class="note">${st ? `${st.files} files` : ''}${e.snapshot.tags.length ? ` · ${esc(e.snapshot.tags.join(', '))}` : ''}</span>` : ''
      rows.push(`<tr><td><a href="${esc(href)}/">${esc(name)}/</a>${about}</td><td class="size">${st ? humanBytes(st.bytes) : ''}</td><td class="mtime">${when(e.mtime)}</td></tr>`)
    } else if (e.type === 'file') {
      rows.push(`<tr><td><a href="${esc(href)}">${esc(name)}</a><a class="dl" href="${esc(href)}?download=1" download>download</a></td><td class="size" title="${e.size} bytes">${humanBytes(e.size)}</td><td class="mtime">${when(e.mtime)}</td></tr>`)
    } else {
      const target = e.node?.target ? ` → ${esc(shownName({ name: e.node.target } as VfsEntry))}` : ''
      rows.push(`<tr><td><span class="note">${esc(name)}${target} (${e.type})</span></td><td class="size"></td><td class="mtime">${when(e.mtime)}</td></tr>`)
    }
  }
  const folderName = o.parts.length ? shownName({ name: o.parts[o.parts.length - 1] } as VfsEntry) : o.title
  const archive = o.archives
    ? `<p class="archive">Download this folder: <a href="${esc(here)}?download=tar" download>${esc(folderName)}.tar</a><a href="${esc(here)}?download=zip" download>${esc(folderName)}.zip</a></p>`
    : o.parts.length < 2 ? '<p class="note">Open a snapshot to browse its files or download them as .tar or .zip.</p>' : ''
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(folderName)} · coldstore</title><style>${STYLE}</style></head>
<body><header>${o.home ? `<a href="${esc(o.home.href)}">${esc(o.home.label)}</a> · ` : ''}coldstore · read-only view of the repository's snapshots</header><main>
<nav class="crumbs">${crumbs.join(' / ')}</nav>
${archive}
<table><thead><tr><th>Name</th><th class="size">Size</th><th class="mtime">Modified</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>
<p class="note">${o.entries.length} ${o.entries.length === 1 ? 'entry' : 'entries'}</p>
</main></body></html>
`
}
