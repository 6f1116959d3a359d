/**
 * The `jobs:` section of coldstore.yaml: what each job backs up, where to, when, how it is kept, and how
 * it runs. Validated into JobDefinitions; every error names the file and the key.
 */
import { ConfigError } from '../errors.js'
import { parseSchedule, type Schedule } from '../schedule/index.js'
import type { ColdstoreConfig } from './config.js'

/** Job types: `dataset` (default), `host` (system backup defaults), `restic` (drives an existing restic repository). */
export const JOB_TYPES = ['dataset', 'host', 'restic'] as const
export type JobType = (typeof JOB_TYPES)[number]

/** What the daemon does with a run missed while it was down: run it once now, or only report it. */
export type MissedPolicy = 'run' | 'skip'

/** Retention of a job: restic's `forget` options, in config-file spelling. */
export interface JobRetention {
  keep_last?: number
  keep_hourly?: number
  keep_daily?: number
  keep_weekly?: number
  keep_monthly?: number
  keep_yearly?: number
  /** A duration like `1y6m`, `30d`, `12h` (restic's form). */
  keep_within?: string
  keep_tag?: string[]
}

/** One validated job. */
export interface JobDefinition {
  name: string
  type: JobType
  sources: string[]
  excludes: string[]
  excludeFiles: string[]
  gitignore: boolean
  /** Stay on the file system of each source (host jobs: default true). */
  oneFileSystem: boolean
  tags: string[]
  /** Where the job's repository is: a location as the CLI takes it (path, URL, or `name://sub` of a named remote). Null for restic jobs. */
  repo: string | null
  /** Kind settings this job adds to its remote's (e.g. its own `storage_class`). */
  remoteSettings: Record<string, string | number | boolean>
  /** Null: manual runs only. */
  schedule: Schedule | null
  missed: MissedPolicy
  /** Extra attempts after a failed run, and the first delay between attempts (doubling). */
  retries: number
  retryDelayMs: number
  retention: JobRetention | null
  /** CPU priority (nice 0–19) and IO priority (`idle`, `best-effort`, `best-effort:0`–`7`), or null. */
  nice: number | null
  ionice: string | null
  /** Shell commands run before and after the backup (a failing pre-hook fails the run). */
  preHooks: string[]
  postHooks: string[]
  hookTimeoutMs: number
  /** Periodic verification: schedule, and the share of packs read (0: structure only). */
  verify: { schedule: Schedule; readDataFraction: number } | null
  /** restic jobs: the restic repository and its password file. */
  restic: { repository: string; passwordFile: string | null; checkSchedule: Schedule | null } | null
  /** The job's password file (else the remote's, else the environment's). */
  passwordFile: string | null
}

/** Excludes every host job starts from: pseudo and volatile file systems, caches. */
export const HOST_EXCLUDES: readonly string[] = [
  '/proc', '/sys', '/dev', '/run', '/tmp', '/var/tmp', '/var/cache', '/var/run', '/var/lock', '/lost+found',
  '/home/*/.cache', '/root/.cache', '/var/lib/docker/overlay2', '/swapfile', '*.swp',
]

const KEYS = new Set([
  'type', 'sources', 'exclude', 'exclude_file', 'gitignore', 'one_file_system', 'tags', 'repo', 'remote', 'path', 'storage_class',
  'schedule', 'timezone', 'missed', 'retries', 'retry_delay', 'retention', 'limit_upload', 'limit_download', 'nice', 'ionice',
  'pre_hook', 'post_hook', 'hook_timeout', 'verify', 'restic_repository', 'password_file', 'check',
])
const RETENTION_KEYS = new Set(['keep_last', 'keep_hourly', 'keep_daily', 'keep_weekly', 'keep_monthly', 'keep_yearly', 'keep_within', 'keep_tag'])

/** `90s`, `5m`, `2h`, `1d` (or a number of seconds) in milliseconds. @throws ConfigError */
export function parseDuration(v: unknown, where: string): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v * 1000
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/.exec(v.trim()) : null
  if (!m) throw new ConfigError(`${where}: expected a duration like 90s, 5m, 2h or 1d`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd']
  return Number(m[1]) * unit
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function strings(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return []
  if (typeof v === 'string') return [v]
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[]
  throw new ConfigError(`${where}: expected a string or a list of strings`)
}

function bool(v: unknown, where: string, fallback: boolean): boolean {
  if (v === undefined) return fallback
  if (typeof v !== 'boolean') throw new ConfigError(`${where}: must be true or false`)
  return v
}

function count(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -1) throw new ConfigError(`${where}: expected a whole number (-1: unlimited)`)
  return v
}

/**
 * Parses and validates the `jobs:` section. `defaultTimezone` is the zone schedules are in unless a job
 * says otherwise (the daemon passes the server's TZ).
 *
 * @throws ConfigError naming the file and key.
 */
export function parseJobs(config: ColdstoreConfig, o: { defaultTimezone?: string } = {}): Map<string, JobDefinition> {
  const path = config.path
  const raw = config.sections.jobs
  const out = new Map<string, JobDefinition>()
  if (raw === undefined || raw === null) return out
  if (!isMapping(raw)) throw new ConfigError(`${path}: jobs: expected a mapping of job names`)
  for (const [name, def] of Object.entries(raw)) {
    const at = (k?: string): string => `${path}: jobs.${name}${k ? `.${k}` : ''}`
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) throw new ConfigError(`${at()}: a job name is letters, digits, '.', '_' and '-' (up to 64)`)
    if (!isMapping(def)) throw new ConfigError(`${at()}: expected a mapping (sources:, remote:, schedule:...)`)
    for (const k of Object.keys(def)) {
      if (!KEYS.has(k)) throw new ConfigError(`${at(k)}: unknown key (known: ${[...KEYS].join(', ')})`)
    }
    const type = (def.type ?? 'dataset') as JobType
    if (!JOB_TYPES.includes(type)) throw new ConfigError(`${at('type')}: expected one of ${JOB_TYPES.join(', ')}`)
    const sources = strings(def.sources, at('sources'))
    if (sources.length === 0) throw new ConfigError(`${at('sources')}: required: the folders to back up`)
    for (const s of sources) if (!s.startsWith('/')) throw new ConfigError(`${at('sources')}: ${JSON.stringify(s)} is not an absolute path`)

    let repo: string | null = null
    if (type !== 'restic') {
      if (def.repo !== undefined && def.remote !== undefined) throw new ConfigError(`${at()}: give repo: or remote:, not both`)
      if (typeof def.repo === 'string' && def.repo !== '') {
        repo = def.repo
      } else if (typeof def.remote === 'string' && def.remote !== '') {
        if (!config.remotes.has(def.remote)) {
          const known = [...config.remotes.keys()]
          throw new ConfigError(`${at('remote')}: no remote named ${JSON.stringify(def.remote)} in remotes:${known.length ? ` (defined: ${known.join(', ')})` : ''}`)
        }
        const sub = def.path === undefined ? '' : String(def.path).replace(/^\/+|\/+$/g, '')
        if (sub.split('/').some((s) => s === '..' || s === '.')) throw new ConfigError(`${at('path')}: '.' and '..' are not allowed`)
        repo = `${def.remote}://${sub}`
      } else {
        throw new ConfigError(`${at()}: give remote: (a name from remotes:) or repo: (a path or URL) for the job's repository`)
      }
    } else if (def.repo !== undefined || def.remote !== undefined) {
      throw new ConfigError(`${at()}: a restic job names its repository with restic_repository:`)
    }
    if (def.path !== undefined && def.remote === undefined) throw new ConfigError(`${at('path')}: only with remote:`)

    const tz = def.timezone === undefined ? (o.defaultTimezone ?? 'UTC') : def.timezone
    if (typeof tz !== 'string') throw new ConfigError(`${at('timezone')}: expected an IANA time zone name`)
    const sched = (k: string, v: unknown): Schedule => {
      if (typeof v !== 'string') throw new ConfigError(`${at(k)}: expected hourly, daily, weekly, monthly or a cron expression`)
      try {
        return parseSchedule(v, tz)
      } catch (err) {
        throw new ConfigError(`${at(k)}: ${(err as Error).message}`, { cause: err })
      }
    }
    const schedule = def.schedule === undefined || def.schedule === null || def.schedule === 'manual' ? null : sched('schedule', def.schedule)
    const missed = (def.missed ?? 'run') as MissedPolicy
    if (missed !== 'run' && missed !== 'skip') throw new ConfigError(`${at('missed')}: expected run (run once when the daemon is back) or skip (only report it)`)

    let retention: JobRetention | null = null
    if (def.retention !== undefined && def.retention !== null) {
      if (!isMapping(def.retention)) throw new ConfigError(`${at('retention')}: expected keep_last:, keep_daily:...`)
      retention = {}
      for (const [k, v] of Object.entries(def.retention)) {
        if (!RETENTION_KEYS.has(k)) throw new ConfigError(`${at(`retention.${k}`)}: unknown (known: ${[...RETENTION_KEYS].join(', ')})`)
        if (k === 'keep_within') {
          if (typeof v !== 'string' || !/^(\d+[ymdh])+$/.test(v)) throw new ConfigError(`${at(`retention.${k}`)}: expected a duration like 1y6m, 30d or 12h`)
          retention.keep_within = v
        } else if (k === 'keep_tag') {
          retention.keep_tag = strings(v, at(`retention.${k}`))
        } else {
          ;(retention as Record<string, number>)[k] = count(v, at(`retention.${k}`))
        }
      }
      if (Object.keys(retention).length === 0) throw new ConfigError(`${at('retention')}: give at least one keep_ rule (or leave retention out to keep everything)`)
    }

    const remoteSettings: Record<string, string | number | boolean> = {}
    for (const k of ['storage_class', 'limit_upload', 'limit_download'] as const) {
      const v = def[k]
      if (v === undefined) continue
      if (typeof v !== 'string') throw new ConfigError(`${at(k)}: expected a string`)
      remoteSettings[k] = v
    }

    let nice: number | null = null
    if (def.nice !== undefined) {
      if (typeof def.nice !== 'number' || !Number.isInteger(def.nice) || def.nice < 0 || def.nice > 19) throw new ConfigError(`${at('nice')}: expected 0 (normal) to 19 (lowest priority)`)
      nice = def.nice
    }
    let ionice: string | null = null
    if (def.ionice !== undefined) {
      if (typeof def.ionice !== 'string' || !/^(idle|best-effort(:[0-7])?)$/.test(def.ionice)) throw new ConfigError(`${at('ionice')}: expected idle, best-effort or best-effort:0 to best-effort:7`)
      ionice = def.ionice
    }

    let verify: JobDefinition['verify'] = null
    if (def.verify !== undefined && def.verify !== null) {
      if (!isMapping(def.verify)) throw new ConfigError(`${at('verify')}: expected { schedule: ..., read_data_subset: 5% }`)
      for (const k of Object.keys(def.verify)) if (k !== 'schedule' && k !== 'read_data_subset') throw new ConfigError(`${at(`verify.${k}`)}: unknown (known: schedule, read_data_subset)`)
      let fraction = 0
      const sub = def.verify.read_data_subset
      if (sub !== undefined) {
        const m = typeof sub === 'string' ? /^(\d+(?:\.\d+)?)%$/.exec(sub.trim()) : null
        if (!m || Number(m[1]) < 0 || Number(m[1]) > 100) throw new ConfigError(`${at('verify.read_data_subset')}: expected a percentage like 5%`)
        fraction = Number(m[1]) / 100
      }
      verify = { schedule: sched('verify.schedule', def.verify.schedule ?? 'monthly'), readDataFraction: fraction }
    }

    let restic: JobDefinition['restic'] = null
    if (type === 'restic') {
      if (typeof def.restic_repository !== 'string' || def.restic_repository === '') throw new ConfigError(`${at('restic_repository')}: required for a restic job (the repository restic is given with -r)`)
      restic = {
        repository: def.restic_repository,
        passwordFile: typeof def.password_file === 'string' ? def.password_file : null,
        checkSchedule: def.check === undefined ? null : sched('check', def.check),
      }
    } else if (def.restic_repository !== undefined || def.check !== undefined) {
      throw new ConfigError(`${at()}: restic_repository: and check: are for type: restic jobs`)
    }
    if (def.password_file !== undefined && typeof def.password_file !== 'string') throw new ConfigError(`${at('password_file')}: expected a file path`)

    const retries = def.retries === undefined ? 2 : def.retries
    if (typeof retries !== 'number' || !Number.isInteger(retries) || retries < 0 || retries > 10) throw new ConfigError(`${at('retries')}: expected 0 to 10`)

    const excludes = strings(def.exclude, at('exclude'))
    out.set(name, {
      name, type, sources,
      excludes: type === 'host' ? [...HOST_EXCLUDES, ...excludes] : excludes,
      excludeFiles: strings(def.exclude_file, at('exclude_file')),
      gitignore: bool(def.gitignore, at('gitignore'), false),
      oneFileSystem: bool(def.one_file_system, at('one_file_system'), type === 'host'),
      tags: strings(def.tags, at('tags')),
      repo, remoteSettings, schedule, missed, retries,
      retryDelayMs: def.retry_delay === undefined ? 60_000 : parseDuration(def.retry_delay, at('retry_delay')),
      retention, nice, ionice,
      preHooks: strings(def.pre_hook, at('pre_hook')),
      postHooks: strings(def.post_hook, at('post_hook')),
      hookTimeoutMs: def.hook_timeout === undefined ? 3_600_000 : parseDuration(def.hook_timeout, at('hook_timeout')),
      verify, restic,
      passwordFile: type === 'restic' ? null : typeof def.password_file === 'string' ? def.password_file : null,
    })
  }
  return out
}
