/**
 * `coldstore restore --interactive`: on a terminal, pick a job (or freezes),
 * a snapshot, then files and folders, and restore them. Line-based prompts
 * on stderr (so it works over ssh and in plain terminals); browsing goes
 * through engine's SnapshotView, restoring through engine's restore().
 */
import { createInterface, type Interface } from 'node:readline/promises'
import { join } from 'node:path'
import { SnapshotView, restore, type Repository, type RestoreResult, type VfsEntry } from '../engine/index.js'
import { CliError, EXIT, Progress, formatBytes, printable, type GlobalArgs } from './common.js'

/** What was picked and restored. */
export interface InteractiveResult {
  snapshot: string | null
  paths: string[]
  result: RestoreResult
}

const show = (b: Buffer): string => printable(b)
const SLASH = Buffer.from('/')

/**
 * Lines from the terminal through readline's async iterator, which queues
 * lines typed (or pasted) ahead of the next prompt instead of dropping them.
 */
class Prompter {
  private readonly rl: Interface
  private readonly lines: AsyncIterator<string>
  constructor() {
    // terminal: false: the terminal's own line discipline echoes and edits; prompts go to stderr.
    this.rl = createInterface({ input: process.stdin, terminal: false })
    this.lines = this.rl[Symbol.asyncIterator]()
  }
  async ask(prompt: string): Promise<string> {
    process.stderr.write(prompt)
    const n = await this.lines.next()
    return n.done ? 'q' : n.value.trim() // input closed (Ctrl-D): quit
  }
  close(): void {
    this.rl.close()
  }
}

function quitResult(): InteractiveResult {
  return { snapshot: null, paths: [], result: { files: 0, dirs: 0, bytes: 0, others: 0, errors: [] } }
}

/** Runs the picker; restores into `target`. Throws CliError (usage) when not on a terminal. */
export async function interactiveRestore(repo: Repository, a: GlobalArgs & { target: string; overwrite?: boolean }): Promise<InteractiveResult> {
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new CliError('--interactive needs a terminal (stdin and stderr); without one, give <snap>[:<path>] and --include/--exclude', EXIT.usage)
  }
  const view = await SnapshotView.open(repo)
  const rl = new Prompter()
  const say = (s = ''): void => void process.stderr.write(s + '\n')
  try {
    // 1. Job or freezes.
    let groups: VfsEntry[]
    let group: VfsEntry | undefined
    let snap: VfsEntry | undefined
    for (;;) {
      groups = await view.list([])
      if (groups.length === 0) {
        say('the repository has no snapshots')
        return quitResult()
      }
      if (!group) {
        say('\nJobs and freezes:')
        for (const [i, g] of groups.entries()) {
          const n = (await view.list([g.name])).filter((e) => e.name.toString() !== 'latest').length
          say(`  ${String(i + 1).padStart(3)}) ${show(g.name)}  (${n} snapshot${n === 1 ? '' : 's'}, newest ${g.mtime.toISOString().slice(0, 16).replace('T', ' ')} UTC)`)
        }
        const c = await rl.ask(`pick 1-${groups.length} (q quits): `)
        if (c === 'q') return quitResult()
        group = groups[Number(c) - 1]
        if (!group) continue
      }
      // 2. Snapshot, newest first.
      const snaps = (await view.list([group.name])).filter((e) => e.name.toString() !== 'latest').reverse()
      say(`\nSnapshots in ${show(group.name)} (newest first):`)
      for (const [i, s] of snaps.entries()) {
        const st = s.snapshot?.stats
        say(`  ${String(i + 1).padStart(3)}) ${show(s.name)}${st ? `  ${st.files} files, ${formatBytes(st.bytes)}` : ''}${s.snapshot?.tags.length ? `  [${s.snapshot.tags.join(', ')}]` : ''}`)
      }
      const c = await rl.ask(`pick 1-${snaps.length} (b back, q quits): `)
      if (c === 'q') return quitResult()
      if (c === 'b') {
        group = undefined
        continue
      }
      snap = snaps[Number(c) - 1]
      if (snap) break
    }

    // 3. Paths: browse the tree, select entries.
    const base = [group.name, snap.name]
    let cwd: Buffer[] = []
    const selected = new Map<string, Buffer[]>()
    const key = (p: Buffer[]): string => p.map((x) => x.toString('hex')).join('/')
    for (;;) {
      const entries = await view.list([...base, ...cwd])
      say(`\n/${cwd.map(show).join('/')}  (${show(snap.name)}; ${selected.size} selected)`)
      for (const [i, e] of entries.entries()) {
        const mark = selected.has(key([...cwd, e.name])) ? '[x]' : '[ ]'
        const size = e.type === 'file' ? `  ${formatBytes(e.size)}` : ''
        say(`  ${String(i + 1).padStart(4)}) ${mark} ${show(e.name)}${e.type === 'dir' ? '/' : e.type === 'file' ? '' : ` (${e.type})`}${size}`)
      }
      say('  N: open folder / select file   +N -N: select / unselect (also N-M, N,M)   a: all here   ..: up   r: restore   q: quit')
      const c = await rl.ask('> ')
      if (c === 'q') return quitResult()
      if (c === '..') {
        cwd = cwd.slice(0, -1)
        continue
      }
      if (c === 'a') {
        for (const e of entries) selected.set(key([...cwd, e.name]), [...cwd, e.name])
        continue
      }
      const sel = /^([+-])\s*([\d,\s-]+)$/.exec(c)
      if (sel) {
        for (const i of parseNumbers(sel[2], entries.length)) {
          const p = [...cwd, entries[i].name]
          if (sel[1] === '+') selected.set(key(p), p)
          else selected.delete(key(p))
        }
        continue
      }
      if (/^\d+$/.test(c)) {
        const e = entries[Number(c) - 1]
        if (!e) continue
        if (e.type === 'dir') cwd = [...cwd, e.name]
        else {
          const p = [...cwd, e.name]
          if (selected.has(key(p))) selected.delete(key(p))
          else selected.set(key(p), p)
        }
        continue
      }
      if (c !== 'r') continue
      const paths = selected.size ? [...selected.values()] : cwd.length ? [cwd] : []
      if (paths.length === 0) {
        say('nothing selected (select entries, or open a folder to restore it)')
        continue
      }
      say(`\nRestore into ${a.target}:`)
      for (const p of paths) say(`  ${p.map(show).join('/')}`)
      if (!/^y(es)?$/i.test(await rl.ask(`restore ${paths.length} path${paths.length === 1 ? '' : 's'}? [y/N] `))) continue
      rl.close()
      // Each path goes to target/<its folder in the snapshot>/<name>, so picks from several folders do not collide.
      const total: RestoreResult = { files: 0, dirs: 0, bytes: 0, others: 0, errors: [] }
      const progress = new Progress(a)
      try {
        for (const p of paths) {
          const r = await restore(repo, {
            snapshot: snap.snapshot!, path: Buffer.concat(p.flatMap((x, i) => (i ? [SLASH, x] : [x]))), target: join(a.target, ...p.slice(0, -1).map(show)),
            overwrite: a.overwrite, onProgress: (x) => progress.counts(x),
          })
          total.files += r.files
          total.dirs += r.dirs
          total.bytes += r.bytes
          total.others += r.others
          total.errors.push(...r.errors)
        }
      } finally {
        progress.done()
      }
      return { snapshot: snap.snapshot!.id, paths: paths.map((p) => p.map(show).join('/')), result: total }
    }
  } finally {
    rl.close()
  }
}

/** "1,3-5" → zero-based indexes below `n`. */
function parseNumbers(s: string, n: number): number[] {
  const out: number[] = []
  for (const part of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(part)
    if (!m) continue
    const from = Number(m[1])
    const to = m[2] ? Number(m[2]) : from
    for (let i = from; i <= to; i++) if (i >= 1 && i <= n) out.push(i - 1)
  }
  return out
}
