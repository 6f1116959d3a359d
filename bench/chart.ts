/**
 * Hand-written SVG chart of a bench run: grouped bars per step and tool for
 * wall time (log scale), repository size after each snapshot step, and peak
 * RSS. No dependencies; opens in any browser.
 *
 * Usage: node dist/bench/chart.js results.json > chart.svg
 */
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import type { Results, StepResult } from './run.js'

const COLORS: Record<string, string> = { coldstore: '#2563eb', restic: '#ea580c', borg: '#16a34a' }
const TOOL_ORDER = ['coldstore', 'restic', 'borg']
const MiB = 1024 * 1024

const STEP_LABEL: Record<string, string> = {
  initial: 'initial snapshot', rerun: 'unchanged re-run', restore: 'full restore', 'restore-file': 'restore one 80 MiB file', ls: 'list snapshot',
}
export function stepLabel(step: string): string {
  return STEP_LABEL[step] ?? (/^m\d+$/.test(step) ? `milestone ${step.slice(1)}` : step)
}
const SHORT: Record<string, string> = { initial: 'initial', rerun: 're-run', restore: 'restore', 'restore-file': '1 file', ls: 'ls' }

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

interface Panel {
  title: string
  steps: string[]
  tools: string[]
  value: (s: StepResult) => number | null
  scale: 'log' | 'linear'
  unit: (v: number) => string
  axis: (v: number) => string
}

function niceStep(max: number): number {
  const raw = max / 5
  const p = 10 ** Math.floor(Math.log10(raw))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p
  return 10 * p
}

function panel(r: Results, p: Panel, x0: number, y0: number, w: number, h: number): string {
  const out: string[] = []
  const left = 64
  const right = 10
  const top = 28
  const bottom = 34
  const pw = w - left - right
  const ph = h - top - bottom
  const px = x0 + left
  const py = y0 + top
  out.push(`<text x="${x0 + left}" y="${y0 + 18}" class="title">${esc(p.title)}</text>`)
  const vals: { step: string; tool: string; v: number | null; failed: boolean }[] = []
  for (const step of p.steps) {
    for (const tool of p.tools) {
      const s = r.steps.find((x) => x.tool === tool && x.step === step)
      const v = s && s.ok ? p.value(s) : null
      vals.push({ step, tool, v: v !== null && Number.isFinite(v) ? v : null, failed: Boolean(s && !s.ok) })
    }
  }
  const present = vals.map((x) => x.v).filter((v): v is number => v !== null && v > 0)
  const maxV = present.length ? Math.max(...present) : 1
  const minV = present.length ? Math.min(...present) : 1
  let yOf: (v: number) => number
  const ticks: number[] = []
  if (p.scale === 'log') {
    const lo = Math.floor(Math.log10(minV))
    const hi = Math.ceil(Math.log10(maxV * 1.05))
    const span = Math.max(1, hi - lo)
    yOf = (v) => py + ph - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / span) * ph
    for (let k = lo; k <= lo + span; k++) ticks.push(10 ** k)
  } else {
    const step = niceStep(maxV)
    const top2 = Math.ceil((maxV * 1.05) / step) * step
    yOf = (v) => py + ph - (v / top2) * ph
    for (let t = 0; t <= top2 + 1e-9; t += step) ticks.push(t)
  }
  // grid and axis labels
  for (const t of ticks) {
    const y = yOf(t).toFixed(1)
    out.push(`<line x1="${px}" x2="${px + pw}" y1="${y}" y2="${y}" class="grid"/>`)
    out.push(`<text x="${px - 6}" y="${(Number(y) + 4).toFixed(1)}" class="axis" text-anchor="end">${esc(p.axis(t))}</text>`)
  }
  if (p.scale === 'log') {
    for (let i = 0; i + 1 < ticks.length; i++) {
      for (const m of [2, 5]) {
        const y = yOf(ticks[i] * m).toFixed(1)
        out.push(`<line x1="${px}" x2="${px + pw}" y1="${y}" y2="${y}" class="minor"/>`)
      }
    }
  }
  out.push(`<line x1="${px}" x2="${px + pw}" y1="${py + ph}" y2="${py + ph}" class="base"/>`)
  // bars
  const gw = pw / p.steps.length
  const bw = Math.min(46, (gw * 0.8) / p.tools.length)
  p.steps.forEach((step, gi) => {
    const gx = px + gi * gw + (gw - bw * p.tools.length) / 2
    p.tools.forEach((tool, ti) => {
      const it = vals.find((x) => x.step === step && x.tool === tool)!
      const bx = gx + ti * bw
      if (it.v === null) {
        out.push(`<text x="${(bx + bw / 2).toFixed(1)}" y="${py + ph - 4}" class="val" text-anchor="middle">${it.failed ? '✗' : '–'}</text>`)
        return
      }
      const y = p.scale === 'linear' || it.v > 0 ? yOf(it.v) : py + ph
      const height = Math.max(1, py + ph - y)
      out.push(`<rect x="${(bx + 1).toFixed(1)}" y="${(py + ph - height).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${height.toFixed(1)}" fill="${COLORS[tool] ?? '#666'}"><title>${esc(`${tool} ${stepLabel(step)}: ${p.unit(it.v)}`)}</title></rect>`)
      out.push(`<text x="${(bx + bw / 2).toFixed(1)}" y="${(py + ph - height - 3).toFixed(1)}" class="val" text-anchor="middle">${esc(p.unit(it.v))}</text>`)
    })
    out.push(`<text x="${(px + gi * gw + gw / 2).toFixed(1)}" y="${py + ph + 16}" class="step" text-anchor="middle">${esc(SHORT[step] ?? step)}</text>`)
  })
  return out.join('\n')
}

function secs(v: number): string {
  return v < 1 ? v.toFixed(2) : v < 10 ? v.toFixed(1) : v.toFixed(0)
}

function num(v: number): string {
  return v === 0 ? '0' : v < 10 ? v.toFixed(1) : v.toFixed(0)
}

export function renderChart(r: Results): string {
  const tools = TOOL_ORDER.filter((t) => r.tools.some((x) => x.name === t))
  const rounds = r.options.rounds
  const steps = ['initial', 'rerun', ...Array.from({ length: rounds }, (_, i) => `m${i + 1}`), 'restore', 'restore-file', 'ls']
  const snapSteps = steps.filter((s) => s === 'initial' || s === 'rerun' || /^m\d+$/.test(s))
  const W = 980
  const H1 = 320
  const H2 = 270
  const header = 64
  const H = header + H1 + H2 * 2 + 16
  const sizeText = `${(r.options.size / 1e9).toFixed(r.options.size < 1e10 ? 1 : 0)} GB`
  const parts: string[] = []
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`)
  parts.push(`<style>
    .title { font-size: 14px; font-weight: bold; fill: #111; }
    .sub { font-size: 12px; fill: #444; }
    .axis { font-size: 11px; fill: #555; }
    .step { font-size: 12px; fill: #222; }
    .val { font-size: 10px; fill: #333; }
    .grid { stroke: #d4d4d4; stroke-width: 1; }
    .minor { stroke: #eeeeee; stroke-width: 1; }
    .base { stroke: #444; stroke-width: 1; }
  </style>`)
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`)
  parts.push(`<text x="16" y="24" class="title" style="font-size:17px">coldstore vs restic vs borg — ${esc(sizeText)} generated project, ${rounds} milestone${rounds === 1 ? '' : 's'}</text>`)
  parts.push(`<text x="16" y="44" class="sub">${esc(`${r.machine.cpu}, ${r.machine.cores} cores · ${r.harness.date.slice(0, 16).replace('T', ' ')} UTC · seed ${r.options.seed} · lower is better`)}</text>`)
  let lx = W - 16 - tools.length * 100
  for (const t of tools) {
    parts.push(`<rect x="${lx}" y="34" width="14" height="14" fill="${COLORS[t]}"/><text x="${lx + 19}" y="46" class="step">${t}</text>`)
    lx += 100
  }
  parts.push(panel(r, {
    title: 'Wall time per step (seconds, log scale)', steps, tools, value: (s) => s.wallSeconds, scale: 'log',
    unit: secs, axis: (v) => (v >= 1 ? String(v) : v.toPrecision(1)),
  }, 0, header, W, H1))
  parts.push(panel(r, {
    title: 'Repository size after each snapshot step (MiB)', steps: snapSteps, tools, value: (s) => s.repoBytes / MiB, scale: 'linear',
    unit: num, axis: num,
  }, 0, header + H1, W, H2))
  parts.push(panel(r, {
    title: 'Peak RSS per step (MiB)', steps, tools, value: (s) => (s.maxRssBytes === null ? null : s.maxRssBytes / MiB), scale: 'linear',
    unit: num, axis: num,
  }, 0, header + H1 + H2, W, H2))
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

/**
 * Memory over time of every measured command, one panel per step, one line per tool: RSS (solid) and,
 * for coldstore, its anonymous part (dashed), from the harness's 0.5 s samples. Time is each command's own
 * (seconds from its start). Flat memory shows as lines that level off; growth with the data, as lines
 * that keep rising to the end of a long step.
 */
export function renderMemoryChart(r: Results): string {
  const tools = TOOL_ORDER.filter((t) => r.tools.some((x) => x.name === t))
  const rounds = r.options.rounds
  const steps = ['initial', 'rerun', ...Array.from({ length: rounds }, (_, i) => `m${i + 1}`), 'restore', 'restore-file', 'ls']
    .filter((step) => r.steps.some((s) => s.step === step && s.memory?.samples.length))
  const W = 980
  const cols = 2
  const PW = W / cols
  const PH = 230
  const header = 64
  const H = header + Math.ceil(steps.length / cols) * PH + 16
  const parts: string[] = []
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`)
  parts.push(`<style>
    .title { font-size: 14px; font-weight: bold; fill: #111; }
    .sub { font-size: 12px; fill: #444; }
    .axis { font-size: 11px; fill: #555; }
    .step { font-size: 12px; fill: #222; }
    .grid { stroke: #d4d4d4; stroke-width: 1; }
    .base { stroke: #444; stroke-width: 1; }
  </style>`)
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`)
  const sizeText = `${(r.options.size / 1e9).toFixed(r.options.size < 1e10 ? 1 : 0)} GB`
  parts.push(`<text x="16" y="24" class="title" style="font-size:17px">Memory over time per step (MiB) — ${esc(sizeText)} generated project</text>`)
  parts.push(`<text x="16" y="44" class="sub">${esc('RSS every 0.5 s (solid), coldstore\'s anonymous part (dashed); x: seconds since the start')}</text>`)
  let lx = W - 16 - tools.length * 100
  for (const t of tools) {
    parts.push(`<rect x="${lx}" y="34" width="14" height="14" fill="${COLORS[t]}"/><text x="${lx + 19}" y="46" class="step">${t}</text>`)
    lx += 100
  }
  steps.forEach((step, i) => {
    const x0 = (i % cols) * PW
    const y0 = header + Math.floor(i / cols) * PH
    const left = 52
    const right = 14
    const top = 26
    const bottom = 30
    const pw = PW - left - right
    const ph = PH - top - bottom
    const px = x0 + left
    const py = y0 + top
    const series = tools.map((tool) => ({ tool, s: r.steps.find((x) => x.tool === tool && x.step === step) })).filter((x) => x.s?.memory?.samples.length)
    const maxT = Math.max(0.5, ...series.map((x) => x.s!.memory!.samples.at(-1)!.t))
    const maxV = Math.max(1, ...series.flatMap((x) => x.s!.memory!.samples.map((m) => m.rss / MiB)))
    const vStep = niceStep(maxV)
    const vTop = Math.ceil((maxV * 1.05) / vStep) * vStep
    const tStep = niceStep(maxT)
    const xOf = (t: number): number => px + (t / maxT) * pw
    const yOf = (v: number): number => py + ph - (v / vTop) * ph
    parts.push(`<text x="${px}" y="${y0 + 18}" class="title">${esc(stepLabel(step))}</text>`)
    for (let v = 0; v <= vTop + 1e-9; v += vStep) {
      parts.push(`<line x1="${px}" x2="${px + pw}" y1="${yOf(v).toFixed(1)}" y2="${yOf(v).toFixed(1)}" class="grid"/>`)
      parts.push(`<text x="${px - 6}" y="${(yOf(v) + 4).toFixed(1)}" class="axis" text-anchor="end">${num(v)}</text>`)
    }
    for (let t = 0; t <= maxT + 1e-9; t += tStep) parts.push(`<text x="${xOf(t).toFixed(1)}" y="${py + ph + 15}" class="axis" text-anchor="middle">${secs(t)}</text>`)
    parts.push(`<line x1="${px}" x2="${px + pw}" y1="${py + ph}" y2="${py + ph}" class="base"/>`)
    for (const { tool, s } of series) {
      const m = s!.memory!.samples
      const line = (f: (x: MemoryPoint) => number): string => m.map((x, k) => `${k ? 'L' : 'M'}${xOf(x.t).toFixed(1)},${yOf(f(x) / MiB).toFixed(1)}`).join(' ')
      parts.push(`<path d="${line((x) => x.rss)}" fill="none" stroke="${COLORS[tool] ?? '#666'}" stroke-width="1.6"><title>${esc(`${tool} ${stepLabel(step)}: peak ${num((s!.maxRssBytes ?? 0) / MiB)} MiB`)}</title></path>`)
      if (tool === 'coldstore') parts.push(`<path d="${line((x) => x.anon)}" fill="none" stroke="${COLORS[tool]}" stroke-width="1" stroke-dasharray="4 3"/>`)
    }
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

interface MemoryPoint {
  t: number
  rss: number
  anon: number
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2]
  if (!file) {
    process.stderr.write('usage: chart.js results.json > chart.svg\n')
    process.exit(2)
  }
  process.stdout.write(renderChart(JSON.parse(readFileSync(file, 'utf8')) as Results))
}
