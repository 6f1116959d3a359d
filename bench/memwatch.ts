/**
 * Memory sampler: where a process's resident memory is, over time, from
 * /proc (Linux only). Every `intervalMs` it reads the process's
 * /proc/PID/status (VmRSS, VmHWM, RssAnon, RssFile, RssShmem) and, from
 * /proc/PID/smaps, the resident bytes of the LMDB index cache's map
 * (`index.lmdb`); at the highest VmRSS seen it keeps a breakdown of every
 * mapping (what the peak was made of).
 *
 *   node dist/bench/memwatch.js [--interval 0.5] [--out FILE.json] [--tsv FILE] -- CMD ARGS...
 *
 * The harness (run.ts) uses `MemorySampler` on every command it measures,
 * for the per-step memory curves; the command line form is for looking at
 * one command by hand. When PID is a wrapper (/usr/bin/time, sh), the
 * sampler follows its newest descendant that is a different program.
 */
import { spawn } from 'node:child_process'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

/** One sample, sizes in bytes, `t` in seconds since sampling started. */
export interface MemorySample {
  t: number
  rss: number
  hwm: number
  anon: number
  file: number
  shmem: number
  /** Resident bytes of mappings of a file named index.lmdb (the index cache). */
  indexMap: number
  /** Resident bytes of [heap]: glibc's main malloc arena (the main thread's small allocations). */
  brk: number
}

/** Resident bytes per kind of mapping, at the sample with the highest RSS. */
export interface PeakBreakdown {
  t: number
  rss: number
  /** Resident bytes by mapping name ('[anon]', '[heap]', '[stack]', file names), largest first. */
  byName: { name: string; rssBytes: number; mappings: number }[]
  /** The largest anonymous mappings (address range size and resident bytes). */
  largestAnon: { sizeBytes: number; rssBytes: number }[]
}

/** A finished sampling: every sample, and the peak's breakdown. */
export interface MemoryTrace {
  intervalMs: number
  samples: MemorySample[]
  peak: PeakBreakdown | null
}

const KIB = 1024

function statusFields(pid: number): Record<string, number> | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return null
  }
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line)
    if (m) out[m[1]] = Number(m[2]) * KIB
  }
  return out
}

interface Mapping {
  name: string
  sizeBytes: number
  rssBytes: number
}

/** The mappings of /proc/PID/smaps with their resident bytes. */
function readSmaps(pid: number): Mapping[] | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8')
  } catch {
    return null
  }
  const maps: Mapping[] = []
  let cur: Mapping | null = null
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line)
    if (head) {
      cur = { name: head[3] || '[anon]', sizeBytes: parseInt(head[2], 16) - parseInt(head[1], 16), rssBytes: 0 }
      maps.push(cur)
      continue
    }
    if (cur && line.startsWith('Rss:')) cur.rssBytes = Number(/(\d+)/.exec(line)![1]) * KIB
  }
  return maps
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return ''
  }
}

function children(pid: number): number[] {
  const out: number[] = []
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const s = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim()
      if (s) for (const c of s.split(/\s+/)) out.push(Number(c))
    }
  } catch {
    // gone
  }
  return out
}

const WRAPPERS = new Set(['time', 'sh', 'dash', 'bash', 'env'])

/** `pid`, or when it is a wrapper (time, sh), the program it runs. */
function target(pid: number): number {
  let p = pid
  for (let depth = 0; depth < 4 && WRAPPERS.has(comm(p)); depth++) {
    const c = children(p)
    if (c.length === 0) break
    p = c[c.length - 1]
  }
  return p
}

/** Samples one process's memory from /proc until `stop`. */
export class MemorySampler {
  private readonly pid: number
  private readonly intervalMs: number
  private readonly started = process.hrtime.bigint()
  private readonly samples: MemorySample[] = []
  private peak: PeakBreakdown | null = null
  private timer: NodeJS.Timeout | null = null

  constructor(pid: number, opts: { intervalMs?: number } = {}) {
    this.pid = pid
    this.intervalMs = opts.intervalMs ?? 500
  }

  /** Takes a first sample now and then one every interval. */
  start(): this {
    this.sample()
    this.timer = setInterval(() => this.sample(), this.intervalMs)
    this.timer.unref()
    return this
  }

  private sample(): void {
    const pid = target(this.pid)
    const st = statusFields(pid)
    if (!st || st.VmRSS === undefined) return
    const maps = readSmaps(pid) ?? []
    const t = Number(process.hrtime.bigint() - this.started) / 1e9
    let indexMap = 0
    let brk = 0
    for (const m of maps) {
      if (m.name.endsWith('/index.lmdb')) indexMap += m.rssBytes
      else if (m.name === '[heap]') brk += m.rssBytes
    }
    this.samples.push({
      t: Math.round(t * 100) / 100, rss: st.VmRSS, hwm: st.VmHWM ?? st.VmRSS, anon: st.RssAnon ?? 0, file: st.RssFile ?? 0,
      shmem: st.RssShmem ?? 0, indexMap, brk,
    })
    if (!this.peak || st.VmRSS > this.peak.rss) this.peak = breakdown(t, st.VmRSS, maps)
  }

  /** Stops sampling (taking a last sample if the process still runs) and returns what was seen. */
  stop(): MemoryTrace {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    this.sample()
    return { intervalMs: this.intervalMs, samples: this.samples, peak: this.peak }
  }
}

function breakdown(t: number, rss: number, maps: Mapping[]): PeakBreakdown {
  const by = new Map<string, { rssBytes: number; mappings: number }>()
  for (const m of maps) {
    const name = m.name.replace(/ \(deleted\)$/, '')
    const e = by.get(name) ?? { rssBytes: 0, mappings: 0 }
    e.rssBytes += m.rssBytes
    e.mappings++
    by.set(name, e)
  }
  const byName = [...by].map(([name, e]) => ({ name, ...e })).filter((e) => e.rssBytes > 0).sort((a, b) => b.rssBytes - a.rssBytes)
  const largestAnon = maps
    .filter((m) => m.name === '[anon]' && m.rssBytes > 0)
    .sort((a, b) => b.rssBytes - a.rssBytes)
    .slice(0, 24)
    .map((m) => ({ sizeBytes: m.sizeBytes, rssBytes: m.rssBytes }))
  return { t: Math.round(t * 100) / 100, rss, byName, largestAnon }
}

/** Samples as tab-separated lines (MiB), with a header: for plotting or reading by eye. */
export function samplesTsv(samples: readonly MemorySample[]): string {
  const mib = (n: number): string => (n / 1048576).toFixed(1)
  const lines = ['t_s\trss_mib\thwm_mib\tanon_mib\tfile_mib\tshmem_mib\tindex_map_mib\tbrk_heap_mib']
  for (const s of samples) lines.push([s.t.toFixed(1), mib(s.rss), mib(s.hwm), mib(s.anon), mib(s.file), mib(s.shmem), mib(s.indexMap), mib(s.brk)].join('\t'))
  return lines.join('\n') + '\n'
}

/** At most `n` samples, evenly spread (the highest-RSS sample always kept): for charts and JSON reports. */
export function thinSamples(samples: readonly MemorySample[], n: number): MemorySample[] {
  if (samples.length <= n) return [...samples]
  let top = 0
  for (let i = 1; i < samples.length; i++) if (samples[i].rss > samples[top].rss) top = i
  const out: MemorySample[] = []
  for (let k = 0; k < n; k++) {
    const i = Math.round((k * (samples.length - 1)) / (n - 1))
    out.push(samples[i])
  }
  if (!out.includes(samples[top])) {
    out.push(samples[top])
    out.sort((a, b) => a.t - b.t)
  }
  return out
}

async function cli(argv: string[]): Promise<void> {
  const sep = argv.indexOf('--')
  if (sep < 0 || sep === argv.length - 1) {
    process.stderr.write('usage: node dist/bench/memwatch.js [--interval 0.5] [--out FILE.json] [--tsv FILE] -- CMD ARGS...\n')
    process.exitCode = 2
    return
  }
  const opts = argv.slice(0, sep)
  const cmd = argv.slice(sep + 1)
  const opt = (name: string): string | undefined => {
    const i = opts.indexOf(name)
    return i >= 0 ? opts[i + 1] : undefined
  }
  const intervalMs = Number(opt('--interval') ?? '0.5') * 1000
  const child = spawn(cmd[0], cmd.slice(1), { stdio: 'inherit' })
  const sampler = new MemorySampler(child.pid!, { intervalMs }).start()
  const started = Date.now()
  const code = await new Promise<number>((res) => child.on('exit', (c, s) => res(c ?? (s ? 128 : 1))))
  const trace = sampler.stop()
  const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`
  const max = (f: (s: MemorySample) => number): number => trace.samples.reduce((m, s) => Math.max(m, f(s)), 0)
  const lines = [
    `memwatch: ${((Date.now() - started) / 1000).toFixed(1)} s, exit ${code}, ${trace.samples.length} samples`,
    `  peak VmHWM ${mib(max((s) => s.hwm))}; highest sampled RssAnon ${mib(max((s) => s.anon))}, RssFile ${mib(max((s) => s.file))}, index map ${mib(max((s) => s.indexMap))}, [heap] ${mib(max((s) => s.brk))}`,
  ]
  if (trace.peak) {
    lines.push(`  at the sampled peak (${mib(trace.peak.rss)}, t=${trace.peak.t} s):`)
    for (const e of trace.peak.byName.slice(0, 10)) lines.push(`    ${mib(e.rssBytes).padStart(10)}  ${e.name} (${e.mappings})`)
    lines.push(`    largest anonymous mappings (rss/size): ${trace.peak.largestAnon.slice(0, 12).map((a) => `${(a.rssBytes / 1048576).toFixed(0)}/${(a.sizeBytes / 1048576).toFixed(0)}`).join(' ')} MiB`)
  }
  process.stderr.write(lines.join('\n') + '\n')
  const out = opt('--out')
  if (out) writeFileSync(out, JSON.stringify(trace, null, 1) + '\n')
  const tsv = opt('--tsv')
  if (tsv) writeFileSync(tsv, samplesTsv(trace.samples))
  process.exitCode = code
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  cli(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`memwatch: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  })
}
