/**
 * The run journal: append-only JSONL in `<state dir>/journal/`, one file per UTC day (`YYYY-MM-DD.jsonl`,
 * named by the time each event is written), shared by every process of the state directory (manual runs,
 * daemons). Each event is one `write` of one line to a file opened with O_APPEND, so lines of concurrent
 * writers never interleave on a local file system.
 *
 * `maintain` seals past days into `manifest.json` (BLAKE3 of each file's content, its size and event
 * count), compresses files older than 30 days (`YYYY-MM-DD.jsonl.zst`, zstd; the digest stays the one of
 * the uncompressed content, and the stored file's own digest is added), and deletes files older than
 * `journalDays`. `verify` checks the files against the manifest.
 */
import { createReadStream, watch, type FSWatcher } from 'node:fs'
import { mkdir, open, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { compress, decompress } from 'zstd-napi'
import { hashHex } from '../hash/index.js'
import { MAX_LOG_MESSAGE, type JournalEvent, type JournalEventInput } from './events.js'
import type { JobLocks } from './lock.js'

/** One journal file. */
export interface JournalFile {
  /** `YYYY-MM-DD` (UTC). */
  day: string
  name: string
  path: string
  compressed: boolean
}

/** A sealed day in the manifest. */
export interface ManifestEntry {
  day: string
  /** The file as it is now stored (`.jsonl` or `.jsonl.zst`). */
  name: string
  /** Size and BLAKE3 of the day's JSONL content (uncompressed). */
  bytes: number
  blake3: string
  events: number
  compressed: boolean
  /** For compressed files: size and BLAKE3 of the .zst file itself. */
  stored_bytes: number
  stored_blake3: string
}

/** `<journal>/manifest.json`. */
export interface JournalManifest {
  version: 1
  updated: string
  files: ManifestEntry[]
}

/** What `maintain` did. */
export interface MaintenanceReport {
  /** False when another process was maintaining the journal (nothing was done). */
  ran: boolean
  sealed: string[]
  compressed: string[]
  deleted: string[]
  /** Sealed files whose content no longer matches the manifest (left as they are). */
  altered: string[]
}

/** A problem `verify` found. */
export interface JournalFinding {
  day: string
  kind: 'missing' | 'altered' | 'unlisted'
  message: string
}

const DAY_MS = 86_400_000

/** The UTC day of a time, `YYYY-MM-DD`. */
export function dayOf(t: Date): string {
  return t.toISOString().slice(0, 10)
}

function daysBetween(a: string, b: string): number {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / DAY_MS)
}

/** Parses JSONL text into events; a torn or foreign line is skipped. */
export function parseJournalText(text: string): JournalEvent[] {
  const out: JournalEvent[] = []
  for (const line of text.split('\n')) {
    const e = parseLine(line)
    if (e) out.push(e)
  }
  return out
}

function parseLine(line: string): JournalEvent | null {
  if (line === '') return null
  try {
    const e = JSON.parse(line) as JournalEvent
    return e && e.v === 1 && typeof e.type === 'string' && typeof e.t === 'string' ? e : null
  } catch {
    return null
  }
}

/** Options of Journal. */
export interface JournalOptions {
  /** `<state dir>/journal`. */
  dir: string
  now: () => Date
  /** For `maintain`: only one process maintains at a time (lock `journal`). */
  locks?: JobLocks
}

/** The journal of one state directory. */
export class Journal {
  readonly dir: string
  private readonly now: () => Date
  private readonly locks: JobLocks | undefined
  private made = false

  constructor(o: JournalOptions) {
    this.dir = o.dir
    this.now = o.now
    this.locks = o.locks
  }

  /** The UTC day events are being written into now. */
  today(): string {
    return dayOf(this.now())
  }

  /** Appends one event (its version and time added) to today's file, in one write; returns it. */
  async append(input: JournalEventInput): Promise<JournalEvent> {
    const t = this.now()
    const e = { v: 1, t: t.toISOString(), ...input } as JournalEvent
    if (e.type === 'log' && e.message.length > MAX_LOG_MESSAGE) e.message = e.message.slice(0, MAX_LOG_MESSAGE - 1) + '…'
    if (!this.made) {
      await mkdir(this.dir, { recursive: true })
      this.made = true
    }
    const line = Buffer.from(JSON.stringify(e) + '\n')
    const fh = await open(join(this.dir, `${dayOf(t)}.jsonl`), 'a')
    try {
      let off = 0
      while (off < line.length) off += (await fh.write(line, off)).bytesWritten
    } finally {
      await fh.close()
    }
    return e
  }

  /** The journal's files, oldest first. */
  async files(): Promise<JournalFile[]> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const byDay = new Map<string, JournalFile>()
    for (const name of names) {
      const m = /^(\d{4}-\d{2}-\d{2})\.jsonl(\.zst)?$/.exec(name)
      if (!m) continue
      const f: JournalFile = { day: m[1], name, path: join(this.dir, name), compressed: m[2] !== undefined }
      // Both forms exist only between compressing and removing the original: the plain one is complete.
      if (!byDay.has(f.day) || !f.compressed) byDay.set(f.day, f)
    }
    return [...byDay.values()].sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0))
  }

  /** The content of one file (decompressed). */
  async content(f: JournalFile): Promise<Buffer> {
    const raw = await readFile(f.path)
    return f.compressed ? decompress(raw) : raw
  }

  /** Events of one file, in order. */
  async *read(f: JournalFile): AsyncGenerator<JournalEvent> {
    if (f.compressed) {
      for (const e of parseJournalText((await this.content(f)).toString('utf8'))) yield e
      return
    }
    let stream
    try {
      stream = createReadStream(f.path, { encoding: 'utf8' })
      for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
        const e = parseLine(line)
        if (e) yield e
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err // compressed meanwhile: the caller re-lists
    } finally {
      stream?.destroy()
    }
  }

  /**
   * Events from `fromDay` to `toDay` (inclusive, UTC days; default all), oldest first, or newest first with
   * `newestFirst` (each file is then read whole).
   */
  async *events(o: { fromDay?: string; toDay?: string; newestFirst?: boolean } = {}): AsyncGenerator<JournalEvent> {
    const files = (await this.files()).filter((f) => (o.fromDay === undefined || f.day >= o.fromDay) && (o.toDay === undefined || f.day <= o.toDay))
    if (!o.newestFirst) {
      for (const f of files) yield* this.read(f)
      return
    }
    for (const f of files.reverse()) {
      const all: JournalEvent[] = []
      for await (const e of this.read(f)) all.push(e)
      for (let i = all.length - 1; i >= 0; i--) yield all[i]
    }
  }

  /**
   * Events from the start of `fromDay` on, then new ones as they are written (also into later days' files),
   * until `signal` aborts. Woken by file changes, and every `pollMs` as a fallback. With `fromEnd`, only
   * events written after the call (`fromDay` is then ignored: today's file, from its current end).
   */
  async *follow(o: { fromDay: string; signal: AbortSignal; pollMs?: number; fromEnd?: boolean }): AsyncGenerator<JournalEvent> {
    let day = o.fromDay
    let offset = 0
    let rest = ''
    let wake: (() => void) | null = null
    let changed = false
    await mkdir(this.dir, { recursive: true })
    let watcher: FSWatcher | null = null
    try {
      watcher = watch(this.dir, () => {
        changed = true
        wake?.()
      })
    } catch {
      watcher = null
    }
    if (o.fromEnd) {
      day = dayOf(this.now())
      offset = await stat(join(this.dir, `${day}.jsonl`)).then((st) => st.size, () => 0)
    }
    try {
      // Whole days before today that are already compressed are read in one go.
      for (const f of o.fromEnd ? [] : await this.files()) {
        if (f.day < day || !f.compressed) continue
        if (o.signal.aborted) return
        for await (const e of this.read(f)) yield e
        day = nextDay(f.day)
      }
      while (!o.signal.aborted) {
        changed = false
        let got = false
        let size = -1
        const path = join(this.dir, `${day}.jsonl`)
        try {
          size = (await stat(path)).size
        } catch {
          size = -1
        }
        if (size > offset) {
          const fh = await open(path, 'r')
          try {
            const buf = Buffer.alloc(size - offset)
            let n = 0
            while (n < buf.length) {
              const r = await fh.read(buf, n, buf.length - n, offset + n)
              if (r.bytesRead === 0) break
              n += r.bytesRead
            }
            offset += n
            const lines = (rest + buf.subarray(0, n).toString('utf8')).split('\n')
            rest = lines.pop() ?? ''
            for (const l of lines) {
              const e = parseLine(l)
              if (e) {
                got = true
                yield e
              }
              if (o.signal.aborted) return
            }
          } finally {
            await fh.close()
          }
        }
        if (got) continue
        // Nothing new here: move on when a later day has begun (this one is then complete).
        const later = (await this.files()).find((f) => f.day > day)
        if (later && !changed) {
          day = later.day
          offset = 0
          rest = ''
          continue
        }
        if (changed) continue
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, o.pollMs ?? 1000)
          function done(): void {
            clearTimeout(timer)
            o.signal.removeEventListener('abort', done)
            wake = null
            resolve()
          }
          wake = done
          o.signal.addEventListener('abort', done, { once: true })
        })
      }
    } finally {
      watcher?.close()
    }
  }

  /** The manifest (empty when there is none yet). */
  async manifest(): Promise<JournalManifest> {
    try {
      const m = JSON.parse(await readFile(join(this.dir, 'manifest.json'), 'utf8')) as JournalManifest
      if (m.version === 1 && Array.isArray(m.files)) return m
    } catch {
      // none yet (or unreadable: rebuilt from the files)
    }
    return { version: 1, updated: this.now().toISOString(), files: [] }
  }

  private async writeManifest(m: JournalManifest): Promise<void> {
    m.updated = this.now().toISOString()
    m.files.sort((a, b) => (a.day < b.day ? -1 : 1))
    const tmp = join(this.dir, `.manifest.${process.pid}.tmp`)
    await writeFile(tmp, JSON.stringify(m, null, 1) + '\n')
    await rename(tmp, join(this.dir, 'manifest.json'))
  }

  /**
   * Seals, compresses and rotates (see the module comment). Days before today (UTC) are sealed: no event is
   * written into a past day's file. Only one process maintains at a time; the others return `ran: false`.
   */
  async maintain(o: { journalDays: number; compressAfterDays?: number }): Promise<MaintenanceReport> {
    const report: MaintenanceReport = { ran: false, sealed: [], compressed: [], deleted: [], altered: [] }
    const lock = this.locks ? await this.locks.tryAcquire('journal', { run: null, purpose: 'journal maintenance' }) : null
    if (lock && !lock.lock) return report
    try {
      report.ran = true
      await mkdir(this.dir, { recursive: true })
      const today = dayOf(this.now())
      const compressAfter = o.compressAfterDays ?? 30
      const m = await this.manifest()
      const entries = new Map(m.files.map((e) => [e.day, e]))
      for (const f of await this.files()) {
        if (f.day >= today) continue
        const age = daysBetween(f.day, today)
        if (age > o.journalDays) {
          await unlink(f.path).catch(() => undefined)
          await unlink(join(this.dir, `${f.day}.jsonl.zst`)).catch(() => undefined)
          entries.delete(f.day)
          report.deleted.push(f.day)
          continue
        }
        const content = await this.content(f)
        const digest = hashHex(content)
        let entry = entries.get(f.day)
        if (!entry) {
          entry = {
            day: f.day, name: f.name, bytes: content.length, blake3: digest, events: parseJournalText(content.toString('utf8')).length,
            compressed: f.compressed, stored_bytes: 0, stored_blake3: '',
          }
          if (f.compressed) {
            const raw = await readFile(f.path)
            entry.stored_bytes = raw.length
            entry.stored_blake3 = hashHex(raw)
          }
          entries.set(f.day, entry)
          report.sealed.push(f.day)
        } else if (entry.blake3 !== digest) {
          report.altered.push(f.day)
          continue
        }
        if (age > compressAfter && !f.compressed) {
          const packed = compress(content)
          if (hashHex(decompress(packed)) !== digest) throw new Error(`journal ${f.name}: compression did not round-trip`)
          const name = `${f.day}.jsonl.zst`
          const tmp = join(this.dir, `.${name}.${process.pid}.tmp`)
          const fh = await open(tmp, 'w')
          try {
            await fh.writeFile(packed)
            await fh.sync()
          } finally {
            await fh.close()
          }
          await rename(tmp, join(this.dir, name))
          entry.name = name
          entry.compressed = true
          entry.stored_bytes = packed.length
          entry.stored_blake3 = hashHex(packed)
          entries.set(f.day, entry)
          // The manifest names the compressed file before the plain one goes.
          await this.writeManifest({ ...m, files: [...entries.values()] })
          await unlink(f.path)
          report.compressed.push(f.day)
        }
      }
      await this.writeManifest({ ...m, files: [...entries.values()] })
      return report
    } finally {
      await lock?.lock?.release()
    }
  }

  /** Checks sealed files against the manifest: missing, altered (content or stored file), and unlisted. */
  async verify(): Promise<JournalFinding[]> {
    const out: JournalFinding[] = []
    const m = await this.manifest()
    const files = new Map((await this.files()).map((f) => [f.day, f]))
    const today = dayOf(this.now())
    for (const e of m.files) {
      const f = files.get(e.day)
      files.delete(e.day)
      if (!f) {
        out.push({ day: e.day, kind: 'missing', message: `${e.name} is in the manifest but not in the journal` })
        continue
      }
      const content = await this.content(f).catch(() => null)
      if (!content || hashHex(content) !== e.blake3) {
        out.push({ day: e.day, kind: 'altered', message: `${f.name}: its content does not match the manifest's BLAKE3` })
        continue
      }
      if (f.compressed && e.compressed && hashHex(await readFile(f.path)) !== e.stored_blake3) {
        out.push({ day: e.day, kind: 'altered', message: `${f.name}: the compressed file does not match the manifest's stored BLAKE3` })
      }
    }
    for (const f of files.values()) {
      if (f.day < today && daysBetween(f.day, today) > 1) out.push({ day: f.day, kind: 'unlisted', message: `${f.name} is not in the manifest (maintenance has not run since, or it was added)` })
    }
    return out
  }
}

function nextDay(day: string): string {
  return dayOf(new Date(Date.parse(`${day}T00:00:00Z`) + DAY_MS))
}
