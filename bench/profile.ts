/**
 * Summarises V8 CPU profiles (`node --cpu-prof --cpu-prof-dir=DIR`): self
 * time per function, over the main thread and every worker thread (Node
 * writes one .cpuprofile per thread). Used by run.ts --profile to say where
 * coldstore's time goes.
 *
 * Usage: node dist/bench/profile.js DIR [--top 25]
 */
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

interface CpuProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}

interface CpuProfile {
  nodes: CpuProfileNode[]
  startTime: number
  endTime: number
  samples?: number[]
  timeDeltas?: number[]
}

export interface ProfileRow {
  /** "function (file:line)", or a V8 pseudo-frame like "(garbage collector)". */
  name: string
  selfSeconds: number
  share: number
}

export interface ProfileSummary {
  files: number
  /** Sum over threads of each thread's profiled wall time. */
  threadSeconds: number
  /** Sum of sampled time that was not "(idle)". */
  busySeconds: number
  perThread: { file: string; seconds: number; busySeconds: number }[]
  top: ProfileRow[]
}

function frameName(n: CpuProfileNode): string {
  const f = n.callFrame
  if (!f.url) return f.functionName || '(anonymous)'
  // dist/engine/pack/format.js → engine/pack/format.js; .../node_modules/x/y.js → x/y.js
  const file = f.url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, '')
  return `${f.functionName || '(anonymous)'} (${file}:${f.lineNumber + 1})`
}

export function summarizeProfiles(dir: string, top = 25): ProfileSummary {
  const self = new Map<string, number>()
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()
  const perThread: ProfileSummary['perThread'] = []
  let threadSeconds = 0
  let busy = 0
  for (const f of files) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile
    const byId = new Map(p.nodes.map((n) => [n.id, n]))
    const samples = p.samples ?? []
    const deltas = p.timeDeltas ?? []
    let threadBusy = 0
    for (let i = 0; i < samples.length; i++) {
      const node = byId.get(samples[i])
      if (!node) continue
      // timeDeltas[i] is the time before sample i; attribute the following delta to it.
      const us = deltas[i + 1] ?? 0
      const name = frameName(node)
      self.set(name, (self.get(name) ?? 0) + us)
      if (name !== '(idle)') threadBusy += us
    }
    const seconds = (p.endTime - p.startTime) / 1e6
    threadSeconds += seconds
    busy += threadBusy / 1e6
    perThread.push({ file: f, seconds, busySeconds: threadBusy / 1e6 })
  }
  const rows = [...self.entries()]
    .filter(([name]) => name !== '(idle)')
    .map(([name, us]) => ({ name, selfSeconds: us / 1e6, share: busy ? us / 1e6 / busy : 0 }))
    .sort((a, b) => b.selfSeconds - a.selfSeconds)
    .slice(0, top)
  return { files: files.length, threadSeconds, busySeconds: busy, perThread, top: rows }
}

export function profileMarkdown(s: ProfileSummary): string {
  const lines = [
    `${s.files} thread profiles, ${s.busySeconds.toFixed(2)} s busy (sampled, all threads).`,
    '',
    '| self s | share | function |',
    '|---:|---:|---|',
    ...s.top.map((r) => `| ${r.selfSeconds.toFixed(2)} | ${(r.share * 100).toFixed(1)} % | \`${r.name.replace(/\|/g, '\\|')}\` |`),
  ]
  return lines.join('\n') + '\n'
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2]
  if (!dir) {
    process.stderr.write('usage: profile.js DIR [--top N]\n')
    process.exit(2)
  }
  const i = process.argv.indexOf('--top')
  process.stdout.write(profileMarkdown(summarizeProfiles(dir, i > 0 ? Number(process.argv[i + 1]) : 25)))
}
