import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import type { CommandModule } from 'yargs'
import {
  Daemon, JobsView, ManualClock, SnapshotView, closeRepository, openRepository, parseDuration, parseServerSection,
  type BrowseView, type Clock, type ColdstoreConfig, type JobDefinition, type Repository, type ServerSettings,
} from '../../engine/index.js'
import { createApiHandler, isLoopbackHost, startServer, type AuthConfig, type RunningServer } from '../../server/index.js'
import { CliError, EXIT, cacheDir, err, password, remoteOptions } from '../common.js'
import { configPath, resolveLocation } from '../config-file.js'
import { jobEventSink } from '../job-events.js'
import { loadJobs, openJobState, startWorker, type JobsArgs, type LoadedJobs } from '../jobs-context.js'
import { SystemClock } from '../system-clock.js'
import { parseListen } from './serve.js'

interface Args extends JobsArgs {
  listen?: string
  grace?: string
  server: boolean
}

function firstLine(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').split(/\r?\n/)[0].trim()
  } catch (e) {
    throw new CliError(`cannot read ${what} ${path}: ${(e as Error).message}`, EXIT.usage)
  }
}

/** Authentication and TLS from the `server:` section, with `coldstore serve`'s rules for addresses beyond loopback. */
function access(config: ColdstoreConfig, s: ServerSettings, host: string): { auth: AuthConfig; tls?: { cert: Buffer; key: Buffer } } {
  const file = (p: string): string => configPath(config, p)
  let tls: { cert: Buffer; key: Buffer } | undefined
  if (s.tlsCert && s.tlsKey) {
    try {
      tls = { cert: readFileSync(file(s.tlsCert)), key: readFileSync(file(s.tlsKey)) }
    } catch (e) {
      throw new CliError(`${config.path}: server: cannot read the TLS certificate or key: ${(e as Error).message}`, EXIT.usage)
    }
  }
  let token: string | undefined
  if (s.tokenFile) {
    token = firstLine(file(s.tokenFile), 'the token file')
    if (token.length < 16) throw new CliError(`${config.path}: server.token_file: the token must be at least 16 characters (e.g. openssl rand -hex 24)`, EXIT.usage)
  }
  const basic = s.basicAuth ? { user: s.basicAuth.user, password: firstLine(file(s.basicAuth.passwordFile), 'the Basic password file') } : undefined
  if (basic && basic.password === '') throw new CliError(`${config.path}: server.basic_auth.password_file: the file is empty`, EXIT.usage)
  if (!isLoopbackHost(host)) {
    if (!token && !basic) throw new CliError(`refusing to listen on ${host} without authentication: set server.token_file or server.basic_auth (with tls_cert/tls_key), or listen on 127.0.0.1`, EXIT.usage)
    if (basic && !tls) throw new CliError(`refusing Basic authentication on ${host} over plain HTTP: set server.tls_cert and server.tls_key`, EXIT.usage)
  }
  return { auth: { token, basic, tls: tls !== undefined }, tls }
}

/**
 * The browsing view: `server.repo` when set; else the one repository the jobs share; else one folder per
 * job over each job's repository. A repository that cannot be opened (not initialized yet, no password)
 * is a warning and its jobs' folders stay empty.
 */
async function openViews(a: Args, l: LoadedJobs, s: ServerSettings): Promise<{ view: BrowseView; repos: Repository[]; refresh(): Promise<void> }> {
  const repos: Repository[] = []
  const views = new Map<string, SnapshotView | null>()
  const open = async (location: string, job: JobDefinition | null): Promise<SnapshotView | null> => {
    const url = resolveLocation(location, a.config).url
    if (views.has(url)) return views.get(url)!
    let view: SnapshotView | null = null
    try {
      const pw = job?.passwordFile ? await password({ ...a, 'password-file': configPath(l.config, job.passwordFile) }) : await password(a, { location })
      const repo = await openRepository({ url, password: pw, cacheDir: cacheDir(a), remote: remoteOptions(a, location) })
      repos.push(repo)
      view = await SnapshotView.open(repo, { onWarning: (m) => err(`coldstore: warning: ${m}`) })
    } catch (e) {
      err(`coldstore: warning: cannot browse ${location}${job ? ` (job ${job.name})` : ''}: ${(e as Error).message}`)
    }
    views.set(url, view)
    return view
  }
  if (s.repo) {
    const v = await open(s.repo, null)
    if (v) return { view: v, repos, refresh: () => v.refresh(true) }
  }
  const folders: { name: string; view: SnapshotView | null }[] = []
  for (const job of l.jobs.values()) folders.push({ name: job.name, view: job.repo ? await open(job.repo, job) : null })
  const distinct = [...new Set(folders.map((f) => f.view).filter((v): v is SnapshotView => v !== null))]
  // New snapshots show at once after a run (and within 5 s otherwise).
  const refresh = async (): Promise<void> => void (await Promise.all(distinct.map((v) => v.refresh(true))))
  if (!s.repo && distinct.length === 1 && folders.every((f) => f.view || !l.jobs.get(f.name)?.repo)) return { view: distinct[0], repos, refresh }
  return { view: new JobsView(folders), repos, refresh }
}

/** COLDSTORE_TEST_CLOCK=ISO: a clock set through stdin lines `now ISO` (tests drive the schedule with it). */
function testClock(): ManualClock | null {
  const t = process.env.COLDSTORE_TEST_CLOCK
  if (!t) return null
  const d = new Date(t)
  if (Number.isNaN(d.getTime())) throw new CliError('COLDSTORE_TEST_CLOCK: expected an ISO 8601 time', EXIT.usage)
  return new ManualClock(d)
}

export const daemonCommand: CommandModule<JobsArgs, Args> = {
  command: 'daemon',
  describe: "run the configuration's jobs on their schedules, serve browsing (WebDAV/HTML) and the JSON API, until SIGTERM",
  builder: (y) =>
    y
      .option('listen', { type: 'string', describe: 'HOST:PORT (default server.listen of the configuration, else 127.0.0.1:8088)' })
      .option('grace', { type: 'string', describe: 'on SIGTERM, how long running jobs may take to finish before they are stopped (default daemon.shutdown_grace, else 5s)' })
      .option('server', { type: 'boolean', default: true, describe: 'serve browsing and the API (--no-server: schedule only)' }) as never,
  handler: async (a) => {
    const loaded = loadJobs(a)
    const settings = parseServerSection(loaded.config)
    const graceMs = a.grace !== undefined ? (() => {
      try {
        return parseDuration(a.grace, '--grace')
      } catch (e) {
        throw new CliError((e as Error).message, EXIT.usage)
      }
    })() : loaded.daemon.shutdownGraceMs
    const listen = a.listen ?? settings.listen
    const { host, port } = parseListen(listen)
    const acc = a.server ? access(loaded.config, settings, host) : null
    const state = openJobState(a, loaded)
    const manual = testClock()
    const clock: Clock = manual ?? new SystemClock()
    const log = (line: string): void => err(`coldstore: ${line}`)
    const daemon = new Daemon({
      jobs: loaded.jobs, journal: state.journal, locks: state.locks, clock, host: state.host, stateDir: state.dir,
      startWorker: (r) => startWorker(a, loaded, state.dir, r),
      onEvent: jobEventSink(loaded.config, log), log, journalDays: loaded.daemon.journalDays, listen: a.server ? listen : null,
      onRunEnded: () => refreshViews(),
    })
    let refreshViews = async (): Promise<void> => undefined

    let server: RunningServer | null = null
    let repos: Repository[] = []
    if (acc) {
      const opened = await openViews(a, loaded, settings)
      repos = opened.repos
      refreshViews = opened.refresh
      try {
        server = await startServer({
          view: opened.view, host, port, auth: acc.auth, tls: acc.tls, log,
          routes: createApiHandler({ service: daemon, csrfToken: randomBytes(24).toString('hex'), log }),
        })
      } catch (e) {
        for (const r of repos) await closeRepository(r)
        const code = (e as NodeJS.ErrnoException).code
        if (code === 'EADDRINUSE') throw new CliError(`cannot listen on ${listen}: the address is in use`, EXIT.failure)
        throw new CliError(`cannot listen on ${listen}: ${(e as Error).message}`, code === 'EACCES' || code === 'EADDRNOTAVAIL' ? EXIT.usage : EXIT.failure)
      }
    }
    await daemon.start()
    log(`daemon: ${loaded.jobs.size} job${loaded.jobs.size === 1 ? '' : 's'}, state in ${state.dir}${server ? `, serving at ${server.url}` : ''}`)
    if (a.json) process.stdout.write(JSON.stringify({ pid: process.pid, url: server?.url ?? null, state_dir: state.dir, jobs: [...loaded.jobs.keys()] }) + '\n')

    let stopOnStdinEnd: (() => void) | null = null
    if (manual) {
      // Test hook: `now ISO` lines move the clock; each is answered on stderr once the scheduler has acted.
      // The end of stdin (the test is gone) stops the daemon like SIGTERM.
      const rl = createInterface({ input: process.stdin })
      rl.on('close', () => stopOnStdinEnd?.())
      rl.on('line', (line) => {
        const m = /^now\s+(\S+)$/.exec(line.trim())
        const d = m ? new Date(m[1]) : null
        if (!d || Number.isNaN(d.getTime())) return log(`test clock: ignored ${JSON.stringify(line)}`)
        const asleep = manual.nextSleep()
        if (manual.set(d) > 0) void asleep.then(() => log(`clock ${d.toISOString()}`))
        else log(`clock ${d.toISOString()}`)
      })
    }

    await new Promise<void>((resolve) => {
      let stopping = false
      const stop = (sig: NodeJS.Signals): void => {
        if (stopping) {
          log(`${sig} again: exiting now (running workers finish on their own)`)
          process.exit(sig === 'SIGINT' ? 130 : 143)
        }
        stopping = true
        log(`${sig}: stopping`)
        void (async () => {
          await daemon.stop({ graceMs })
          await server?.close()
          for (const r of repos) await closeRepository(r).catch(() => undefined)
          resolve()
        })()
      }
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
      stopOnStdinEnd = () => {
        if (!stopping) stop('SIGTERM')
      }
    })
    log('daemon stopped')
    // stdin (test clock) keeps the loop alive otherwise.
    process.exit(0)
  },
}
