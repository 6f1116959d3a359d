/**
 * The `server:` section (what `coldstore daemon` listens on and how it is protected: the same options as
 * `coldstore serve`) and the `daemon:` section (state directory, journal rotation, shutdown grace).
 * Secrets are files: a token file, or Basic credentials as a user name and a password file.
 */
import { ConfigError } from '../errors.js'
import type { ColdstoreConfig } from './config.js'
import { parseDuration } from './jobs.js'

/** The validated `server:` section. File paths are as written (relative ones are relative to the configuration file). */
export interface ServerSettings {
  /** `HOST:PORT` (default 127.0.0.1:8088). */
  listen: string
  /** A file whose first line is the bearer token. */
  tokenFile: string | null
  /** Basic authentication: a user name and a file whose first line is the password. */
  basicAuth: { user: string; passwordFile: string } | null
  /** PEM certificate and key: serve HTTPS. */
  tlsCert: string | null
  tlsKey: string | null
  /** The repository the WebDAV view shows (a location); null: each job's repository, one folder per job. */
  repo: string | null
}

/** The validated `daemon:` section. */
export interface DaemonSettings {
  /** Where locks, the journal and the daemon's bookkeeping live; null: the default (see the README). */
  stateDir: string | null
  /** Journal files older than this many days are deleted (default 400). */
  journalDays: number
  /** On SIGTERM, how long running jobs may take to finish before they are stopped at a checkpoint (default 5 s). */
  shutdownGraceMs: number
  /** Least time between two progress samples of a run in the journal (default 10 s). */
  progressIntervalMs: number
}

const SERVER_KEYS = ['listen', 'token_file', 'basic_auth', 'tls_cert', 'tls_key', 'repo']
const DAEMON_KEYS = ['state_dir', 'journal_days', 'shutdown_grace', 'progress_interval']

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function file(v: unknown, where: string): string | null {
  if (v === undefined || v === null) return null
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${where}: expected a file path`)
  return v
}

/** Validates `server:`. @throws ConfigError naming the file and key. */
export function parseServerSection(config: ColdstoreConfig): ServerSettings {
  const raw = config.sections.server
  const at = (k?: string): string => `${config.path}: server${k ? `.${k}` : ''}`
  const out: ServerSettings = { listen: '127.0.0.1:8088', tokenFile: null, basicAuth: null, tlsCert: null, tlsKey: null, repo: null }
  if (raw === undefined || raw === null) return out
  if (!isMapping(raw)) throw new ConfigError(`${at()}: expected a mapping (listen:, token_file:, basic_auth:, tls_cert:, tls_key:, repo:)`)
  for (const k of Object.keys(raw)) {
    if (!SERVER_KEYS.includes(k)) {
      const hint = /pass|secret|token$/i.test(k) ? ' (secrets are read from files: token_file:, basic_auth.password_file:)' : ''
      throw new ConfigError(`${at(k)}: unknown key (known: ${SERVER_KEYS.join(', ')})${hint}`)
    }
  }
  if (raw.listen !== undefined) {
    if (typeof raw.listen === 'number' && Number.isInteger(raw.listen)) out.listen = String(raw.listen)
    else if (typeof raw.listen === 'string' && /^(\[[^\]]+\]|[^:\s]+):\d{1,5}$|^\d{1,5}$/.test(raw.listen)) out.listen = raw.listen
    else throw new ConfigError(`${at('listen')}: expected HOST:PORT (e.g. 127.0.0.1:8088, 0.0.0.0:8088)`)
  }
  out.tokenFile = file(raw.token_file, at('token_file'))
  out.tlsCert = file(raw.tls_cert, at('tls_cert'))
  out.tlsKey = file(raw.tls_key, at('tls_key'))
  if ((out.tlsCert === null) !== (out.tlsKey === null)) throw new ConfigError(`${at(out.tlsCert ? 'tls_key' : 'tls_cert')}: tls_cert and tls_key go together`)
  if (raw.basic_auth !== undefined && raw.basic_auth !== null) {
    const b = raw.basic_auth
    if (!isMapping(b)) throw new ConfigError(`${at('basic_auth')}: expected { user: NAME, password_file: FILE }`)
    for (const k of Object.keys(b)) {
      if (k !== 'user' && k !== 'password_file') throw new ConfigError(`${at(`basic_auth.${k}`)}: unknown key (known: user, password_file; the password is read from password_file)`)
    }
    if (typeof b.user !== 'string' || b.user === '' || b.user.includes(':')) throw new ConfigError(`${at('basic_auth.user')}: required, a user name without ':'`)
    const pf = file(b.password_file, at('basic_auth.password_file'))
    if (!pf) throw new ConfigError(`${at('basic_auth.password_file')}: required, a file whose first line is the password`)
    out.basicAuth = { user: b.user, passwordFile: pf }
  }
  if (raw.repo !== undefined && raw.repo !== null) {
    if (typeof raw.repo !== 'string' || raw.repo === '') throw new ConfigError(`${at('repo')}: expected a repository location (a path, URL or name:// of a named remote)`)
    out.repo = raw.repo
  }
  return out
}

/** Validates `daemon:`. @throws ConfigError naming the file and key. */
export function parseDaemonSection(config: ColdstoreConfig): DaemonSettings {
  const raw = config.sections.daemon
  const at = (k?: string): string => `${config.path}: daemon${k ? `.${k}` : ''}`
  const out: DaemonSettings = { stateDir: null, journalDays: 400, shutdownGraceMs: 5000, progressIntervalMs: 10_000 }
  if (raw === undefined || raw === null) return out
  if (!isMapping(raw)) throw new ConfigError(`${at()}: expected a mapping (${DAEMON_KEYS.join(', ')})`)
  for (const k of Object.keys(raw)) if (!DAEMON_KEYS.includes(k)) throw new ConfigError(`${at(k)}: unknown key (known: ${DAEMON_KEYS.join(', ')})`)
  out.stateDir = file(raw.state_dir, at('state_dir'))
  if (raw.journal_days !== undefined) {
    if (typeof raw.journal_days !== 'number' || !Number.isInteger(raw.journal_days) || raw.journal_days < 31) throw new ConfigError(`${at('journal_days')}: expected a whole number of days, at least 31`)
    out.journalDays = raw.journal_days
  }
  if (raw.shutdown_grace !== undefined) out.shutdownGraceMs = parseDuration(raw.shutdown_grace, at('shutdown_grace'))
  if (raw.progress_interval !== undefined) out.progressIntervalMs = parseDuration(raw.progress_interval, at('progress_interval'))
  return out
}
