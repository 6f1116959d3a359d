/**
 * HTML building blocks of the dashboard: escaping (every text and attribute value goes through `esc`),
 * the page frame, and formatting of bytes, dollars, times and durations.
 */
import { formatUSD, formatWait, type Health, type RunResult } from '../../engine/index.js'
import { humanBytes } from '../html.js'

/** Escapes text for HTML element content and quoted attribute values. */
export function esc(s: string | number | null | undefined): string {
  return String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** 1536 → "1.5 KiB". */
export const bytes = humanBytes

/** Dollars for people: cents, or two significant digits below a cent (so small repositories show growth). */
export function usd(x: number | null | undefined): string {
  if (x === null || x === undefined) return '–'
  return formatUSD(x)
}

/** "2026-07-01 10:00 UTC" in a <time> element (the page's script shows it in the browser's zone). */
export function when(iso: string | null | undefined): string {
  if (!iso) return '–'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return esc(iso)
  return `<time datetime="${esc(d.toISOString())}">${esc(d.toISOString().replace('T', ' ').slice(0, 16))} UTC</time>`
}

/** "3 min ago", "in 2 h" relative to `now`. */
export function ago(iso: string | null | undefined, now: Date): string {
  if (!iso) return ''
  const ms = now.getTime() - Date.parse(iso)
  if (Number.isNaN(ms)) return ''
  const a = Math.abs(ms)
  const text = a < 60_000 ? `${Math.round(a / 1000)} s` : a < 3_600_000 ? `${Math.round(a / 60_000)} min` : a < 172_800_000 ? `${Math.round(a / 3_600_000)} h` : `${Math.round(a / 86_400_000)} days`
  return ms >= 0 ? `${text} ago` : `in ${text}`
}

/** 666608 → "11 min 7 s". */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–'
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`
  const s = Math.round(ms / 1000)
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
}

/** Typical hours as words: "at once", "1–5 minutes", "24–48 hours" (the cost report's wording). */
export function hours(h: [number, number]): string {
  return formatWait(h)
}

/** Shortens a long text (an error naming a whole hook command) for cards and tables. */
export function cut(s: string, max = 200): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`
}

/** A health pill. */
export function healthPill(h: Health): string {
  return `<span class="pill h-${h}" data-health="${h}">${h}</span>`
}

/** A run result pill. */
export function resultPill(r: RunResult | null, running = false): string {
  if (running || r === null) return '<span class="pill r-running">running</span>'
  return `<span class="pill r-${r}">${r}</span>`
}

/** The href of a dashboard page of a job. */
export function jobHref(name: string): string {
  return `/-/jobs/${encodeURIComponent(name)}`
}

/** The href of a run's page. */
export function runHref(id: string): string {
  return `/-/runs/${encodeURIComponent(id)}`
}

/** What every page gets: the CSRF token for its forms and whether a logout button is shown. */
export interface PageContext {
  csrf: string
  /** The logged-in user (a session), or null (bearer/Basic clients, or no authentication). */
  user: string | null
  now: Date
}

/** The page frame: head (stylesheet, script, CSRF token), top bar, main. */
export function page(o: { title: string; ctx: PageContext; body: string; head?: string; bare?: boolean }): string {
  const logout = o.ctx.user !== null
    ? `<form method="post" action="/-/logout" class="inline"><input type="hidden" name="csrf" value="${esc(o.ctx.csrf)}"><button type="submit" class="link">Log out</button></form>`
    : ''
  const nav = o.bare ? '' : `<nav><a href="/-/">Jobs</a><a href="/?browse">Files</a>${logout}</nav>`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="csrf-token" content="${esc(o.ctx.csrf)}">
<title>${esc(o.title)} · coldstore</title>
<link rel="stylesheet" href="/-/static/dashboard.css"><script src="/-/static/dashboard.js" defer></script>${o.head ?? ''}
</head><body>
<header class="top"><a class="brand" href="/-/">coldstore</a>${nav}</header>
<main>
${o.body}
</main>
<footer>coldstore daemon · ${when(o.ctx.now.toISOString())}</footer>
</body></html>
`
}

/** A table inside a horizontally scrolling box (wide tables stay usable on a phone). */
export function table(head: string[], rows: string[][], o: { cls?: string; empty?: string } = {}): string {
  if (rows.length === 0) return `<p class="note">${esc(o.empty ?? 'Nothing yet.')}</p>`
  const th = head.map((h) => `<th>${h}</th>`).join('')
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n')
  return `<div class="scroll"><table${o.cls ? ` class="${o.cls}"` : ''}><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table></div>`
}
