/**
 * Shared pieces of the command line: global options, password and cache
 * resolution, output (text or --json), progress lines, exit codes.
 * The only place that reads process.env, prints, and exits.
 */
import { readFileSync } from 'node:fs'
import { homedir, hostname, userInfo } from 'node:os'
import { join } from 'node:path'
import { resolveLocation } from './config-file.js'
import {
  EngineError, ExistsError, KeyError, NotFoundError, PasswordError, SourceError, UsageError, ConfigError, FormatError,
  closeRepository, displayName, openRepository, parseByteRate, type Repository, type OpenRemoteOptions, type RetryEvent, type CircuitEvent,
} from '../engine/index.js'

export const VERSION = '0.1.0'
export const PROGRAM = `coldstore ${VERSION}`

/** Exit codes (documented in the README). */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  partial: 3,
  /** Data is in an archive storage class and not readable yet: a retrieval must be requested, or is still in progress. */
  archived: 4,
  /** `coldstore run`: the job is already running (in another process or daemon) and --wait was not given. */
  busy: 5,
  noRepository: 10,
  password: 12,
} as const

export interface GlobalArgs {
  repo?: string
  config?: string
  'password-file'?: string
  'cache-dir'?: string
  json?: boolean
  quiet?: boolean
  /** --limit-upload, in bytes per second (parsed by `parseRateOption`). */
  'limit-upload'?: number
  /** --limit-download, in bytes per second. */
  'limit-download'?: number
}

/** A failure the CLI reports with its own exit code. */
export class CliError extends Error {
  readonly exitCode: number
  constructor(message: string, exitCode: number) {
    super(message)
    this.exitCode = exitCode
  }
}

/** The repository location as given: --repo or COLDSTORE_REPO (a path, URL, or `name://` of a named remote). */
export function repoLocation(a: GlobalArgs): string {
  const r = a.repo ?? process.env.COLDSTORE_REPO
  if (!r) throw new CliError('no repository given: use --repo PATH or set COLDSTORE_REPO', EXIT.usage)
  return r
}

/** The repository URL to open: repoLocation with a named remote of the configuration file expanded. */
export function repoUrl(a: GlobalArgs): string {
  return resolveLocation(repoLocation(a), a.config).url
}

/** The cache directory: --cache-dir, COLDSTORE_CACHE_DIR, $XDG_CACHE_HOME/coldstore or ~/.cache/coldstore. */
export function cacheDir(a: GlobalArgs): string {
  if (a['cache-dir']) return a['cache-dir']
  if (process.env.COLDSTORE_CACHE_DIR) return process.env.COLDSTORE_CACHE_DIR
  const xdg = process.env.XDG_CACHE_HOME
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'coldstore')
}

function readPasswordFile(path: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '')
  } catch (err) {
    throw new CliError(`cannot read password file ${path}: ${(err as Error).message}`, EXIT.usage)
  }
}

/** Reads a password from the terminal without echo. */
async function promptPassword(prompt: string): Promise<string> {
  const stdin = process.stdin
  process.stderr.write(prompt)
  return new Promise((resolve, reject) => {
    let s = ''
    stdin.setRawMode?.(true)
    stdin.resume()
    stdin.setEncoding('utf8')
    const onData = (d: string): void => {
      for (const ch of d) {
        if (ch === '\r' || ch === '\n') {
          stdin.setRawMode?.(false)
          stdin.pause()
          stdin.off('data', onData)
          process.stderr.write('\n')
          return resolve(s)
        }
        if (ch === '\u0003') {
          stdin.setRawMode?.(false)
          return reject(new CliError('interrupted', 130))
        }
        if (ch === '\u007f') s = s.slice(0, -1)
        else s += ch
      }
    }
    stdin.on('data', onData)
  })
}

/**
 * The password: --password-file, COLDSTORE_PASSWORD_FILE, COLDSTORE_PASSWORD,
 * or a prompt on a terminal. Null when none is available (unencrypted repositories).
 */
export async function password(a: GlobalArgs, opts: { confirm?: boolean; location?: string } = {}): Promise<string | null> {
  if (a['password-file']) return readPasswordFile(a['password-file'])
  if (process.env.COLDSTORE_PASSWORD_FILE) return readPasswordFile(process.env.COLDSTORE_PASSWORD_FILE)
  if (process.env.COLDSTORE_PASSWORD !== undefined) return process.env.COLDSTORE_PASSWORD
  const location = opts.location ?? a.repo ?? process.env.COLDSTORE_REPO
  const named = location ? resolveLocation(location, a.config).passwordFile : undefined
  if (named) return readPasswordFile(named)
  if (process.stdin.isTTY && process.stderr.isTTY) {
    const p = await promptPassword('repository password: ')
    if (opts.confirm && (await promptPassword('repeat password: ')) !== p) throw new CliError('the passwords do not match', EXIT.usage)
    return p
  }
  return null
}

/**
 * How the CLI opens remotes: credentials from this process's environment, packs for network remotes staged
 * in the cache directory (`<cache>/staging`, one pack at a time per upload).
 */
export function remoteOptions(a: GlobalArgs, location: string = repoLocation(a)): Omit<OpenRemoteOptions, 'create'> {
  const r = resolveLocation(location, a.config)
  return {
    env: r.env, settings: r.settings, stagingDir: join(cacheDir(a), 'staging'),
    limits: { uploadBytesPerSecond: a['limit-upload'], downloadBytesPerSecond: a['limit-download'] },
    onRetry: (e) => {
      if (!a.quiet) err(describeRetry(e))
    },
    onCircuitChange: (e) => {
      const line = describeCircuit(e)
      if (line) err(line)
    },
  }
}

/**
 * Parses the value of a rate option (`--limit-upload 20MiB/s`) into bytes per second, for yargs' `coerce`.
 *
 * @throws CliError with the usage exit code for anything parseByteRate refuses.
 */
export function parseRateOption(option: string): (value: unknown) => number | undefined {
  return (value) => {
    if (value === undefined) return undefined
    // Given twice: the last one wins, as for other options.
    const v = Array.isArray(value) ? value[value.length - 1] : value
    try {
      return parseByteRate(typeof v === 'number' ? v : String(v))
    } catch (e) {
      throw new CliError(`--${option}: ${(e as Error).message}`, EXIT.usage)
    }
  }
}

/** An object name short enough for a status line: `data/ab/ab12cd34…`. */
function shortName(name: string): string {
  const i = name.lastIndexOf('/')
  const last = name.slice(i + 1)
  return last.length > 12 ? `${name.slice(0, i + 1)}${last.slice(0, 8)}…` : name
}

/** "retrying put data/ab/ab12cd34… (attempt 3/8) after: <why>". */
export function describeRetry(e: RetryEvent): string {
  return `retrying ${e.call} ${shortName(e.name) || '(root)'} (attempt ${e.attempt}/${e.maxAttempts}) after: ${e.error.message}`
}

/** One line per change of a remote's circuit breaker (none for the half-open probe). */
export function describeCircuit(e: CircuitEvent): string | null {
  if (e.state === 'open') {
    return `remote ${e.location} is failing: ${e.failures} failures in a row, last: ${e.lastError?.message ?? 'unknown'}; not sending more requests for ${Math.round(e.coolDownMs / 1000)} s`
  }
  if (e.state === 'closed') return `remote ${e.location} is answering again`
  return null
}

/**
 * Opens the repository named by the global options, with index-loading
 * progress. `syncIndex: false` for commands that read index objects
 * themselves (verify, repair), so they work when one is damaged.
 */
export async function openRepo(a: GlobalArgs, o: { syncIndex?: boolean } = {}): Promise<Repository> {
  const progress = new Progress(a)
  try {
    return await openRepository({
      url: repoUrl(a),
      password: await password(a),
      cacheDir: cacheDir(a),
      remote: remoteOptions(a),
      syncIndex: o.syncIndex,
      onProgress: (p) => progress.line(`loading index ${p.done}/${p.total}`, p.done === p.total),
    })
  } finally {
    progress.done()
  }
}

/** Runs `fn` with an open repository and closes it afterwards. */
export async function withRepo<T>(a: GlobalArgs, fn: (repo: Repository) => Promise<T>, o: { syncIndex?: boolean } = {}): Promise<T> {
  const repo = await openRepo(a, o)
  try {
    return await fn(repo)
  } finally {
    await closeRepository(repo)
  }
}

export function who(): { hostname: string; username: string } {
  let username = 'unknown'
  try {
    username = userInfo().username
  } catch {
    // no passwd entry: keep 'unknown'
  }
  return { hostname: hostname(), username }
}

/** Prints the one JSON document of a command to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

/**
 * Writes many lines to stdout without holding them all: lines are gathered
 * into ~64 KiB writes, and `line` waits while the pipe is full, so listing a
 * million files needs no more memory than listing a hundred.
 */
export class LineWriter {
  private buf: string[] = []
  private size = 0
  async line(s: string): Promise<void> {
    this.buf.push(s)
    this.size += s.length + 1
    if (this.size >= 65536) await this.flush()
  }
  async flush(): Promise<void> {
    if (this.buf.length === 0) return
    const chunk = this.buf.join('\n') + '\n'
    this.buf = []
    this.size = 0
    if (!process.stdout.write(chunk)) await new Promise<void>((resolve) => process.stdout.once('drain', resolve))
  }
}

/**
 * Control characters (C0 but tab and newline, DEL, C1) as `\xNN`: names and messages that reach a terminal
 * cannot move the cursor, rewrite earlier lines or send escape sequences to it (a file named
 * "\x1b]0;…\x07" would otherwise set the terminal's title, or worse).
 */
function sanitize(text: string): string {
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/**
 * A path or name for a line of text output: raw bytes that are not UTF-8 as `\xNN`, and every control
 * character (newlines included, so one entry stays one line) as `\xNN`. JSON output keeps names exact instead.
 */
export function printable(name: Buffer | string): string {
  const s = typeof name === 'string' ? name : displayName(name)
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

export function out(line = ''): void {
  process.stdout.write(sanitize(line) + '\n')
}

export function err(line: string): void {
  process.stderr.write(sanitize(line) + '\n')
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  let i = 0
  let v = n
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${UNITS[i]}`
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?'
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = Math.floor(s % 60)
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`
}

/**
 * Progress on stderr: a redrawn bar on a terminal, a plain line every few
 * seconds otherwise; nothing with --quiet.
 */
export class Progress {
  private readonly tty: boolean
  private readonly quiet: boolean
  private last = 0
  private drawn = false
  /** Non-TTY: the newest state not printed yet, and whether any line was printed. */
  private pending: string | null = null
  private printed = false
  private readonly started = Date.now()
  private readonly everyMs: number

  constructor(a: GlobalArgs) {
    this.tty = Boolean(process.stderr.isTTY)
    this.quiet = Boolean(a.quiet)
    this.everyMs = this.tty ? 100 : Number(process.env.COLDSTORE_PROGRESS_INTERVAL_MS ?? 5000)
    // In logs, an operation shorter than one interval prints no progress at all (not a line of its first moment).
    if (!this.tty) this.last = this.started
  }

  /** Shows a free-form status line (throttled unless `force`). */
  line(text: string, force = false): void {
    if (this.quiet) return
    const now = Date.now()
    if (!force && now - this.last < this.everyMs) {
      if (!this.tty) this.pending = text
      return
    }
    this.last = now
    this.pending = null
    text = sanitize(text)
    if (this.tty) {
      const cols = process.stderr.columns || 100
      process.stderr.write(`\r\x1b[K${text.length > cols - 1 ? text.slice(0, cols - 2) + '…' : text}`)
      this.drawn = true
    } else {
      process.stderr.write(text + '\n')
      this.printed = true
    }
  }

  /** A bar for byte/file counts with rate and ETA. */
  counts(p: { bytes: number; files: number; totalBytes: number | null; totalFiles: number | null; current?: string }, force = false): void {
    if (this.quiet) return
    const elapsed = (Date.now() - this.started) / 1000
    const rate = elapsed > 0 ? p.bytes / elapsed : 0
    let text: string
    if (p.totalBytes !== null && p.totalBytes > 0) {
      const frac = Math.min(1, p.bytes / p.totalBytes)
      const eta = rate > 0 ? (p.totalBytes - p.bytes) / rate : Infinity
      const width = this.tty ? 20 : 0
      const bar = width ? `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '.')}] ` : ''
      text = `${bar}${(frac * 100).toFixed(1)}%  ${formatBytes(p.bytes)} / ${formatBytes(p.totalBytes)}  ${p.files}${p.totalFiles !== null ? ` / ${p.totalFiles}` : ''} files  ${formatBytes(rate)}/s  ETA ${formatDuration(eta)}`
    } else {
      text = `${formatBytes(p.bytes)}  ${p.files} files  ${formatBytes(rate)}/s  ${formatDuration(elapsed)}`
    }
    if (this.tty && p.current) text += `  ${p.current}`
    this.line(text, force)
  }

  /** Clears the bar; in logs, prints the final state when earlier lines were printed (so the last line is complete). */
  done(): void {
    if (this.tty && this.drawn) process.stderr.write('\r\x1b[K')
    if (!this.tty && this.printed && this.pending !== null && !this.quiet) process.stderr.write(this.pending + '\n')
    this.pending = null
    this.drawn = false
  }
}

/** Maps an error to its message and exit code. */
export function describeError(e: unknown): { message: string; code: number } {
  if (e instanceof CliError) return { message: e.message, code: e.exitCode }
  if (e instanceof PasswordError || e instanceof KeyError) return { message: e.message, code: EXIT.password }
  if (e instanceof NotFoundError && e.what === 'config') return { message: e.message, code: EXIT.noRepository }
  if (e instanceof UsageError || e instanceof SourceError || e instanceof ExistsError || e instanceof ConfigError) return { message: e.message, code: e instanceof SourceError || e instanceof ExistsError ? EXIT.failure : EXIT.usage }
  if (e instanceof FormatError || e instanceof EngineError) return { message: e.message, code: EXIT.failure }
  if (e instanceof Error) return { message: e.message, code: EXIT.failure }
  return { message: String(e), code: EXIT.failure }
}

/** Splits `snap[:path]`. */
export function parseSnapRef(ref: string): { snap: string; path: Buffer } {
  const i = ref.indexOf(':')
  if (i < 0) return { snap: ref, path: Buffer.alloc(0) }
  return { snap: ref.slice(0, i), path: Buffer.from(ref.slice(i + 1)) }
}
