/**
 * The stored-bytes chart: an inline SVG line chart (no script, no external file), one line per job, from
 * the run journal. Each line is the bytes the job's successful runs added to its repository, summed over
 * time (before anything was pruned); a dashed line marks what the remote's listing says is stored now,
 * when the cost estimate has it.
 */
import type { RunSummary } from '../../engine/index.js'
import { bytes, esc } from './render.js'

/** One line of the chart. */
export interface ChartSeries {
  name: string
  /** Points, oldest first: time (ms) and bytes. */
  points: { t: number; v: number }[]
}

/** The cumulative bytes added by a job's successful runs, oldest first. */
export function addedBytesSeries(name: string, runs: readonly RunSummary[]): ChartSeries {
  const done = runs
    .filter((r) => r.job === name && r.kind === 'backup' && (r.result === 'success' || r.result === 'warning') && r.stats)
    .sort((a, b) => Date.parse(a.finished ?? a.started) - Date.parse(b.finished ?? b.started))
  let sum = 0
  return { name, points: done.map((r) => ({ t: Date.parse(r.finished ?? r.started), v: (sum += r.stats!.added_bytes) })) }
}

const W = 480
const H = 200
const M = { left: 62, right: 12, top: 12, bottom: 26 }

function day(t: number): string {
  return new Date(t).toISOString().slice(0, 10)
}

/** Renders the chart; a note instead when there is nothing to draw. */
export function renderChart(o: { title: string; series: readonly ChartSeries[]; storedNow?: number | null }): string {
  const series = o.series.filter((s) => s.points.length > 0)
  if (series.length === 0) return '<p class="note">No successful backup yet: the chart starts with the first one.</p>'
  const all = series.flatMap((s) => s.points)
  let t0 = Math.min(...all.map((p) => p.t))
  let t1 = Math.max(...all.map((p) => p.t))
  if (t1 - t0 < 3_600_000) {
    t0 -= 1_800_000
    t1 += 1_800_000
  }
  const vMax = Math.max(1, ...all.map((p) => p.v), o.storedNow ?? 0) * 1.1
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const x = (t: number): number => M.left + ((t - t0) / (t1 - t0)) * pw
  const y = (v: number): number => M.top + ph - (v / vMax) * ph
  const r1 = (n: number): string => n.toFixed(1)
  const parts: string[] = []
  // Axes and grid: 0, half, top.
  for (const f of [0, 0.5, 1]) {
    const v = vMax * f
    parts.push(`<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${r1(y(v))}" y2="${r1(y(v))}"/>`)
    parts.push(`<text class="axis" x="${M.left - 6}" y="${r1(y(v) + 4)}" text-anchor="end">${esc(bytes(Math.round(v)))}</text>`)
  }
  parts.push(`<text class="axis" x="${M.left}" y="${H - 6}" text-anchor="start">${esc(day(t0))}</text>`)
  parts.push(`<text class="axis" x="${W - M.right}" y="${H - 6}" text-anchor="end">${esc(day(t1))}</text>`)
  if (o.storedNow !== undefined && o.storedNow !== null) {
    parts.push(`<line class="now" x1="${M.left}" x2="${W - M.right}" y1="${r1(y(o.storedNow))}" y2="${r1(y(o.storedNow))}"><title>stored now (the remote's listing): ${esc(bytes(o.storedNow))}</title></line>`)
  }
  series.forEach((s, i) => {
    const cls = `s${i % 8}`
    const pts = s.points.map((p) => `${r1(x(p.t))},${r1(y(p.v))}`).join(' ')
    parts.push(`<polyline class="line ${cls}" points="${pts}"/>`)
    for (const p of s.points) {
      parts.push(`<circle class="dot ${cls}" cx="${r1(x(p.t))}" cy="${r1(y(p.v))}" r="3"><title>${esc(s.name)}: ${esc(bytes(p.v))} on ${esc(new Date(p.t).toISOString().replace('T', ' ').slice(0, 16))} UTC</title></circle>`)
    }
  })
  const legend = series.map((s, i) => `<li><span class="sw s${i % 8}"></span>${esc(s.name)}</li>`).join('')
  const nowLegend = o.storedNow !== undefined && o.storedNow !== null ? '<li><span class="sw now"></span>stored now</li>' : ''
  return `<figure class="chart"><svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(o.title)}" xmlns="http://www.w3.org/2000/svg"><title>${esc(o.title)}</title>${parts.join('')}</svg>
<figcaption><ul class="legend">${legend}${nowLegend}</ul>${esc(o.title)}</figcaption></figure>`
}
