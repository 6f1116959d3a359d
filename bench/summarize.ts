/**
 * Medians over several runs of the harness (each a results.json): wall time,
 * CPU, peak RSS and repository growth per step and tool, as Markdown, with
 * the range in brackets. Runs on a shared 2-core machine vary by 10–50 %
 * (restores most); medians of three are what BENCHMARKS.md quotes.
 *
 * Usage: node dist/bench/summarize.js run1/results.json run2/results.json ...
 */
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { stepLabel } from './chart.js'
import type { Results, StepResult } from './run.js'

const TOOLS = ['coldstore', 'restic', 'borg']
const MiB = 1024 * 1024

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

export function summarize(runs: Results[]): string {
  const rounds = Math.min(...runs.map((r) => r.options.rounds))
  const steps = ['initial', 'rerun', ...Array.from({ length: rounds }, (_, i) => `m${i + 1}`), 'restore', 'restore-file', 'ls']
  const tools = TOOLS.filter((t) => runs.every((r) => r.tools.some((x) => x.name === t)))
  const peers = tools.filter((t) => t !== 'coldstore')
  const table = (title: string, list: string[], get: (s: StepResult) => number | null, show: (n: number) => string, withRange = true): string => {
    const head = ['step', ...tools, ...(tools.includes('coldstore') ? peers.map((p) => `coldstore / ${p}`) : [])]
    const out = [`**${title}** (median of ${runs.length}${withRange ? ', [min–max]' : ''})`, '', `| ${head.join(' | ')} |`, `|${head.map((_, i) => (i ? '---:' : '---')).join('|')}|`]
    for (const step of list) {
      const med: Record<string, number | null> = {}
      const cells = [stepLabel(step)]
      for (const t of tools) {
        const xs = runs
          .map((r) => r.steps.find((s) => s.tool === t && s.step === step))
          .filter((s): s is StepResult => Boolean(s && s.ok))
          .map(get)
          .filter((x): x is number => x !== null)
        if (!xs.length) {
          med[t] = null
          cells.push('–')
          continue
        }
        med[t] = median(xs)
        cells.push(withRange && xs.length > 1 ? `${show(med[t]!)} [${show(Math.min(...xs))}–${show(Math.max(...xs))}]` : show(med[t]!))
      }
      if (tools.includes('coldstore')) {
        for (const p of peers) {
          const a = med.coldstore
          const b = med[p]
          cells.push(a != null && b != null && b > 0 ? (a / b).toFixed(2) : '–')
        }
      }
      out.push(`| ${cells.join(' | ')} |`)
    }
    return out.join('\n') + '\n'
  }
  const secs = (n: number): string => n.toFixed(n < 10 ? 2 : 1)
  const mib = (n: number): string => (n >= 100 * MiB ? (n / MiB).toFixed(0) : (n / MiB).toFixed(1))
  const snap = steps.filter((s) => s === 'initial' || s === 'rerun' || /^m\d+$/.test(s))
  return [
    table('Wall time (s)', steps, (s) => s.wallSeconds, secs),
    table('CPU, user + system (s)', steps, (s) => s.cpuSeconds, secs),
    table('Peak RSS (MiB)', steps, (s) => s.maxRssBytes, mib),
    table('Repository size after the step (MiB)', snap, (s) => s.repoBytes, mib),
    table('Added to the repository by the step (MiB)', snap.filter((s) => s !== 'rerun'), (s) => s.repoAddedBytes, mib),
  ].join('\n')
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const files = process.argv.slice(2)
  if (!files.length) {
    process.stderr.write('usage: summarize.js results.json [results.json ...]\n')
    process.exit(2)
  }
  process.stdout.write(summarize(files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Results)))
}
