import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import type { CommandModule } from 'yargs'
import {
  Daemon, JobsView, ManualClock, SnapshotView, closeRepository, openRepository, parseDuration, parsePrices, parseServerSection,
  type BrowseView, type Clock, type ColdstoreConfig, type JobDefinition, type Repository, type ServerSettings,
} from '../../engine/index.js'
import { createApiHandler, createDashboard, isLoopbackHost, startServer, type AuthConfig, type RunningServer } from '../../server/index.js'
import { CliError, EXIT, cacheDir, err, password, remoteOptions } from '../common.js'
import { configPath, resolveLocation } from '../config-file.js'
import { CostCache } from '../daemon-costs.js'
import { jobNotifications, loadNotifyConfig } from '../job-events.js'
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

/**
 * Authentication and TLS from the `server:` section. Beyond loopback the daemon needs authentication, and
 * HTTPS unless `allow_plain_http: true`: over plain HTTP every credential (the bearer token, a Basic
 * password, the login form, the session cookie) crosses the network in clear, and whoever reads one can
 * read every snapshot and start runs. Loopback needs neither (nothing crosses a network).
 */
function access(config: ColdstoreConfig, s: ServerSettings, host: string): { auth: AuthConfig; tls?: { cert: Buffer; key: Buffer }; plainHttp: boolean } {
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
  const loopback = isLoopbackHost(host)
  if (!loopback) {
    if (!token && !basic) throw new CliError(`refusing to listen on ${host} without authentication: set server.token_file or server.basic_auth, or listen on 127.0.0.1`, EXIT.usage)
    if (!tls && !s.allowPlainHttp) {
      throw new CliError(
        `refusing to listen on ${host} over plain HTTP: the token, passwords and login cookies would cross the network in clear. ` +
          'Set server.tls_cert and server.tls_key, or server.allow_plain_http: true on a network you trust (or behind a reverse proxy that terminates TLS)',
        EXIT.usage,
      )
    }
  }
  const plainHttp = !loopback && !tls
  // With plain HTTP allowed on purpose, file managers may also log in with Basic and the token as password.
  return { auth: { token, basic, tls: tls !== undefined || plainHttp }, tls, plainHttp }
}

/** One repository the jobs (or server.repo) use, opened once for browsing and cost estimates. */
interface OpenedRepo {
  url: string
  location: string
  jobs: JobDefinition[]
  repo: Repository | null
  view: SnapshotView | null
  error: string | null
}

/**
 * Opens every repository the jobs use (and `server.repo`), one per URL, with the settings of the jobs that
 * use it. A repository that cannot be opened (not initialized yet, no password) is a warning: its jobs'
 * folders stay empty and it has no cost estimate.
 */
async function openRepos(a: Args, l: LoadedJobs, s: ServerSettings): Promise<Map<string, OpenedRepo>> {
  const byUrl = new Map<string, OpenedRepo>()
  const add = (location: string, job: JobDefinition | null): void => {
    const url = resolveLocation(location, a.config).url
    let e = byUrl.get(url)
    if (!e) byUrl.set(url, (e = { url, location, jobs: [], repo: null, view: null, error: null }))
    if (job) e.jobs.push(job)
  }
  for (const job of l.jobs.values()) if (job.repo) add(job.repo, job)
  if (s.repo) add(s.repo, null)
  for (const e of byUrl.values()) {
    const job = e.jobs.find((j) => j.passwordFile !== null)
    try {
      const pw = job?.passwordFile ? await password({ ...a, 'password-file': configPath(l.config, job.passwordFile) }) : await password(a, { location: e.location })
      const ro = remoteOptions(a, e.location)
      const settings = { ...ro.settings, ...Object.assign({}, ...e.jobs.map((j) => j.remoteSettings)) }
      e.repo = await openRepository({ url: e.url, password: pw, cacheDir: cacheDir(a), remote: { ...ro, settings } })
      e.view = await SnapshotView.open(e.repo, { onWarning: (m) => err(`coldstore: warning: ${m}`) })
    } catch (err_) {
      e.error = `cannot open ${e.location}: ${(err_ as Error).message}`
      err(`coldstore: warning: cannot browse ${e.location}${e.jobs.length ? ` (job${e.jobs.length === 1 ? '' : 's'} ${e.jobs.map((j) => j.name).join(', ')})` : ''}: ${(err_ as Error).message}`)
    }
  }
  return byUrl
}

/**
 * The browsing view: `server.repo` when set; else the one repository the jobs share; else one folder per
 * job over each job's repository.
 */
function browseView(l: LoadedJobs, s: ServerSettings, a: Args, repos: Map<string, OpenedRepo>): { view: BrowseView; refresh(): Promise<void> } {
  const views = [...new Set([...repos.values()].map((r) => r.view).filter((v): v is SnapshotView => v !== null))]
  // New snapshots show at once after a run (and within 5 s otherwise).
  const refresh = async (): Promise<void> => void (await Promise.all(views.map((v) => v.refresh(true))))
  if (s.repo) {
    const v = repos.get(resolveLocation(s.repo, a.config).url)?.view
    if (v) return { view: v, refresh }
  }
  const folders = [...l.jobs.values()].map((job) => ({ name: job.name, view: job.repo ? (repos.get(resolveLocation(job.repo, a.config).url)?.view ?? null) : null }))
  const distinct = [...new Set(folders.map((f) => f.view).filter((v): v is SnapshotView => v !== null))]
  if (!s.repo && distinct.length === 1 && folders.every((f) => f.view || !l.jobs.get(f.name)?.repo)) return { view: distinct[0], refresh }
  return { view: new JobsView(folders), refresh }
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
    const notify = loadNotifyConfig(loaded.config)
    const prices = parsePrices(loaded.config)
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
    const notifications = jobNotifications({ args: a, notify, log, now: () => clock.now(), wait: false })

    const repos = await openRepos(a, loaded, settings)
    const closeAll = async (): Promise<void> => {
      for (const r of repos.values()) if (r.repo) await closeRepository(r.repo).catch(() => undefined)
    }
    const costs = new CostCache(
      [...repos.values()].filter((r) => r.jobs.length > 0).map((r) => ({ url: r.url, location: r.location, jobs: r.jobs, repo: r.repo, error: r.error })),
      { prices, thresholdUSD: notify?.costThresholdUSD ?? null, now: () => clock.now(), log },
    )
    let stopped = false
    // The daily cost check, after an estimate: cost_threshold when the total is above notify.cost_threshold_usd.
    const costCheck = async (): Promise<void> => {
      if (stopped || !notifications.notifier) return
      const event = await costs.dailyCheck(state.dir)
      if (event) notifications.notifier.onEvent(event)
    }
    const views = a.server ? browseView(loaded, settings, a, repos) : null
    const daemon = new Daemon({
      jobs: loaded.jobs, journal: state.journal, locks: state.locks, clock, host: state.host, stateDir: state.dir,
      startWorker: (r) => startWorker(a, loaded, state.dir, r),
      onEvent: notifications.sink, log, journalDays: loaded.daemon.journalDays, listen: a.server ? listen : null,
      onRunEnded: async (r) => {
        await views?.refresh()
        // That run's repository changed: estimate it again (in the background; page views read the cache).
        const url = costs.urlOf(r.job.name)
        if (url && !stopped) void costs.refresh([url]).then(costCheck).catch((e: unknown) => log(`costs: ${(e as Error).message}`))
      },
      onTick: async () => {
        if (stopped) return
        await costs.refreshIfOld()
        await costCheck()
      },
    })

    let server: RunningServer | null = null
    if (acc && views) {
      const csrfToken = randomBytes(24).toString('hex')
      const dashboard = createDashboard({
        source: { service: daemon, jobs: loaded.jobs, view: views.view, costs: () => costs.state(), now: () => clock.now(), timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC' },
        auth: acc.auth, secure: acc.tls !== undefined, csrfToken, sessionTimeoutMs: settings.sessionTimeoutMs, plainHttp: acc.plainHttp, log,
      })
      const api = createApiHandler({ service: daemon, csrfToken, log })
      try {
        server = await startServer({
          view: views.view, host, port, auth: { ...acc.auth, session: dashboard.session }, tls: acc.tls, log,
          publicRoutes: dashboard.publicRoutes,
          unauthorized: dashboard.unauthorized,
          routes: async (req, res) => (await dashboard.routes(req, res)) || api(req, res),
          browseRoot: '/?browse',
          home: { href: '/-/', label: 'Dashboard' },
        })
      } catch (e) {
        await closeAll()
        const code = (e as NodeJS.ErrnoException).code
        if (code === 'EADDRINUSE') throw new CliError(`cannot listen on ${listen}: the address is in use`, EXIT.failure)
        throw new CliError(`cannot listen on ${listen}: ${(e as Error).message}`, code === 'EACCES' || code === 'EADDRNOTAVAIL' ? EXIT.usage : EXIT.failure)
      }
    }
    // The first estimates, in the background (the dashboard says "computing" until they are in).
    void costs.refresh().then(costCheck).catch((e: unknown) => log(`costs: ${(e as Error).message}`))
    await daemon.start()
    log(`daemon: ${loaded.jobs.size} job${loaded.jobs.size === 1 ? '' : 's'}, state in ${state.dir}${server ? `, serving at ${server.url} (dashboard: ${server.url}-/)` : ''}${notify ? `, notifications to ${notify.channels.length} channel${notify.channels.length === 1 ? '' : 's'}` : ''}`)
    if (acc?.plainHttp) log(`warning: plain HTTP on ${host} (server.allow_plain_http): credentials cross the network unencrypted`)
    if (a.json) process.stdout.write(JSON.stringify({ pid: process.pid, url: server?.url ?? null, dashboard: server ? `${server.url}-/` : null, state_dir: state.dir, jobs: [...loaded.jobs.keys()] }) + '\n')

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
          stopped = true
          await costs.idle()
          // Notifications still being delivered (a missed run, a lost worker, the cost check) go out first.
          await notifications.flush()
          await server?.close()
          await closeAll()
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
