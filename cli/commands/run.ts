import type { CommandModule } from 'yargs'
import { formatJournalEvent, isRunId, newRunId, runJob, type JournalEvent, type RunTrigger } from '../../engine/index.js'
import { CliError, EXIT, err, out, printJson, formatBytes } from '../common.js'
import { jobEventSink } from '../job-events.js'
import { findJob, jobCwd, jobWork, loadJobs, openJobState, reRunUnderPriority, runExitCode, type JobsArgs } from '../jobs-context.js'
import { SystemClock } from '../system-clock.js'

interface Args extends JobsArgs {
  job: string
  wait?: boolean
  check?: boolean
  retries?: number
  'run-id'?: string
  trigger?: string
  'scheduled-for'?: string
}

const TRIGGERS: readonly RunTrigger[] = ['manual', 'schedule', 'missed', 'api']

export const runCommand: CommandModule<JobsArgs, Args> = {
  command: 'run <job>',
  describe: "run a job of the configuration now: pre-hooks, backup, post-hooks, retention (or its check with --check)",
  builder: (y) =>
    y
      .positional('job', { type: 'string', demandOption: true, describe: 'job name (from jobs: in the configuration)' })
      .option('wait', { type: 'boolean', default: false, describe: 'when the job is already running, wait for it instead of exiting with code 5' })
      .option('check', { type: 'boolean', default: false, describe: "check the job's repository (restic check / coldstore verify) instead of backing up" })
      .option('retries', { type: 'number', describe: "attempts after a failure (default: the job's retries)" })
      .option('run-id', { type: 'string', hidden: true })
      .option('trigger', { type: 'string', hidden: true })
      .option('scheduled-for', { type: 'string', hidden: true }) as never,
  handler: async (a) => {
    const loaded = loadJobs(a)
    const job = findJob(loaded, a.job)
    if (a.retries !== undefined && (!Number.isInteger(a.retries) || a.retries < 0 || a.retries > 10)) throw new CliError('--retries: expected 0 to 10', EXIT.usage)
    const trigger = (a.trigger ?? 'manual') as RunTrigger
    if (!TRIGGERS.includes(trigger)) throw new CliError(`--trigger: expected one of ${TRIGGERS.join(', ')}`, EXIT.usage)
    if (a['run-id'] !== undefined && !isRunId(a['run-id'])) throw new CliError('--run-id: not a run id', EXIT.usage)
    const scheduledFor = a['scheduled-for'] ? new Date(a['scheduled-for']) : null
    if (scheduledFor && Number.isNaN(scheduledFor.getTime())) throw new CliError('--scheduled-for: expected an ISO 8601 time', EXIT.usage)

    // The work runs under the job's nice/ionice: start this command again under them.
    const again = reRunUnderPriority(job)
    if (again) {
      process.exitCode = await again
      return
    }

    const state = openJobState(a, loaded)
    const clock = new SystemClock()
    const ac = new AbortController()
    let signal: NodeJS.Signals | null = null
    const onSignal = (sig: NodeJS.Signals): void => {
      if (signal) {
        err(`coldstore: ${sig} again: exiting now`)
        process.exit(sig === 'SIGINT' ? 130 : 143)
      }
      signal = sig
      if (!a.quiet) err(`coldstore: ${sig}: stopping the run at the next checkpoint`)
      ac.abort()
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    const show = (e: JournalEvent): void => {
      if (a.quiet || a.json) return
      if (e.type === 'progress' && !process.stderr.isTTY) return
      if (e.type === 'finished' || e.type === 'started') return
      err(formatJournalEvent(e))
    }
    const outcome = await runJob({
      job, kind: a.check ? 'check' : 'backup', runId: a['run-id'] ?? newRunId(clock.now()), trigger, scheduledFor,
      journal: state.journal, locks: state.locks, clock, host: state.host,
      work: jobWork(a, loaded, job),
      hooks: { cwd: jobCwd(loaded), env: { ...process.env } },
      signal: ac.signal,
      wait: a.wait ? { onWait: (h) => { if (!a.quiet) err(`coldstore: job ${job.name} is running (pid ${h.pid} on ${h.host}${h.run ? `, run ${h.run}` : ''}, since ${h.since}): waiting`) } } : undefined,
      retries: a.retries,
      progressIntervalMs: loaded.daemon.progressIntervalMs,
      exitCode: (result, error) => runExitCode(result, error, signal),
      onEvent: jobEventSink(loaded.config, (l) => err(`coldstore: ${l}`)),
      onJournal: show,
    })
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    const e = outcome.event
    if (a.json) {
      if (e && e.type === 'finished') {
        printJson({
          run: e.run, job: e.job, kind: e.kind, result: e.result, exit_code: e.exit_code, error: e.error, attempts: e.attempts, duration_ms: e.duration_ms,
          snapshot: e.snapshot, stats: e.stats, retention: e.retention, check: e.check,
        })
      } else {
        printJson({ run: outcome.run, job: job.name, kind: a.check ? 'check' : 'backup', result: outcome.result, exit_code: outcome.exitCode, error: outcome.result === 'skipped' ? 'the job is already running' : outcome.error ? String((outcome.error as Error).message ?? outcome.error) : null })
      }
    } else if (outcome.result === 'skipped') {
      err(`coldstore: job ${job.name} is already running (see coldstore jobs); not started (use --wait to wait for it)`)
    } else if (e && e.type === 'finished') {
      const s = e.stats
      const what = s ? `: ${s.files} files, ${formatBytes(s.bytes)}; ${s.new_files} new, ${s.changed_files} changed; added ${formatBytes(s.added_bytes)}` : ''
      out(`run ${e.run} of ${e.job}: ${e.result}${e.snapshot ? `, snapshot ${e.snapshot.slice(0, 8)}` : ''}${what} in ${(e.duration_ms / 1000).toFixed(1)} s${e.attempts > 1 ? ` (${e.attempts} attempts)` : ''}`)
      if (e.retention) out(e.retention.ok ? `  retention: kept ${e.retention.kept}, removed ${e.retention.removed}` : `  retention failed: ${e.retention.error}`)
      if (e.check) out(e.check.ok ? '  check: no errors' : `  check: ${e.check.problems.length} problem${e.check.problems.length === 1 ? '' : 's'}: ${e.check.problems.slice(0, 5).join('; ')}`)
      if (e.error && e.result !== 'success') err(`coldstore: ${e.result === 'warning' ? 'warning' : 'error'}: ${e.error}`)
    } else if (outcome.result === 'interrupted') {
      err('coldstore: interrupted before the run started')
    }
    process.exitCode = outcome.exitCode
  },
}
