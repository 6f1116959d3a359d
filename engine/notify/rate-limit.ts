/**
 * Rate limiting of notifications: at most one message per (event kind, job) in a window; the ones held
 * back are counted, and the next message that goes out says how many and since when. The state lives in a
 * RateLimitStore: in memory, or a JSON file (the daemon's state folder) so that separate `coldstore run`
 * processes and daemon restarts share it.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Suppressed } from './message.js'

/** The state of one (kind, job) key. */
export interface RateLimitEntry {
  /** When a message for the key last went out (ms since the epoch). */
  lastSentMs: number | null
  /** Messages held back since then. */
  suppressed: number
  /** When the first of those was held back (ms), or null. */
  suppressedSinceMs: number | null
}

/** Every key's state. */
export type RateLimitState = Record<string, RateLimitEntry>

/**
 * Where the state is kept. `load` and `save` are called under the notifier's own lock (one process);
 * between processes the file store's last writer wins, which at worst sends one message more.
 */
export interface RateLimitStore {
  load(): Promise<RateLimitState>
  save(state: RateLimitState): Promise<void>
}

/** A store in memory (one process). */
export class MemoryRateLimitStore implements RateLimitStore {
  private state: RateLimitState = {}
  async load(): Promise<RateLimitState> {
    return structuredClone(this.state)
  }
  async save(state: RateLimitState): Promise<void> {
    this.state = structuredClone(state)
  }
}

/**
 * A store in a JSON file, replaced atomically (temporary file, rename). A missing or unreadable file is an
 * empty state: losing it costs at most one message more per key.
 */
export class FileRateLimitStore implements RateLimitStore {
  readonly path: string
  constructor(path: string) {
    this.path = path
  }
  async load(): Promise<RateLimitState> {
    try {
      const doc = JSON.parse(await readFile(this.path, 'utf8')) as { version?: number; entries?: RateLimitState }
      return doc.version === 1 && doc.entries && typeof doc.entries === 'object' ? doc.entries : {}
    } catch {
      return {}
    }
  }
  async save(state: RateLimitState): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true })
    const tmp = `${this.path}.tmp-${process.pid}`
    await writeFile(tmp, JSON.stringify({ version: 1, entries: state }) + '\n', { mode: 0o600 })
    await rename(tmp, this.path)
  }
}

/** The key of an event: kind and job. */
export function rateLimitKey(kind: string, job: string | null): string {
  return `${kind}:${job ?? ''}`
}

/** What `decide` says. */
export type RateDecision = { send: true; suppressed: Suppressed | null } | { send: false; suppressed: number }

/**
 * Decides about one event of `key` at `nowMs` and updates `state`: send (with the count held back since the
 * last one) or hold back. `windowMs` 0 sends everything. Call `markSent` when at least one channel took it.
 */
export function decide(state: RateLimitState, key: string, nowMs: number, windowMs: number): RateDecision {
  const e = state[key] ?? { lastSentMs: null, suppressed: 0, suppressedSinceMs: null }
  state[key] = e
  if (windowMs <= 0 || e.lastSentMs === null || nowMs - e.lastSentMs >= windowMs || nowMs < e.lastSentMs) {
    const suppressed = e.suppressed > 0 && e.suppressedSinceMs !== null ? { count: e.suppressed, since: new Date(e.suppressedSinceMs).toISOString() } : null
    return { send: true, suppressed }
  }
  e.suppressed++
  e.suppressedSinceMs ??= nowMs
  return { send: false, suppressed: e.suppressed }
}

/** Records that a message for `key` went out at `nowMs`: the window starts, the held-back count is reset. */
export function markSent(state: RateLimitState, key: string, nowMs: number): void {
  state[key] = { lastSentMs: nowMs, suppressed: 0, suppressedSinceMs: null }
}
