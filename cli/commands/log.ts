import type { CommandModule } from 'yargs'
import {
  dayOf, formatJournalEvent, isProcessAlive, isRunId, readJournalState, readRun, findRunDay, type JournalEvent, type RunSummary,
} from '../../engine/index.js'
import { CliError, EXIT, LineWriter, err, out, printJson } from '../common.js'
import { findJob, loadJobs, openJobState, type JobsArgs } from '../jobs-context.js'

interface Args extends JobsArgs {
  job?: string
  run?: string
  follow?: boolean
  limit: number
  verify?: boolean
}

function runLine(r: RunSummary): string {
  const dur = r.duration_ms !== null ? `${(r.duration_ms / 1000).toFixed(1)} s` : '-'
  const res = r.state === 'running' ? `running${r.phase ? ` (${r.phase})` : ''}` : (r.result ?? '?')
  return `${r.id}  ${r.job.padEnd(14)} ${r.kind.padEnd(6)} ${r.trigger.padEnd(8)} ${r.started.replace('T', ' ').slice(0, 19)}  ${dur.padStart(8)}  ${res}${r.error && r.result !== 'success' ? `: ${r.error}` : ''}`
}

export const logCommand: CommandModule<JobsArgs, Args> = {
  command: 'log [job]',
  describe: 'the run journal: recent runs (of a job), one run\'s log (--run ID), or new events as they come (--follow)',
  builder: (y) =>
    y
      .positional('job', { type: 'string', describe: 'only this job' })
      .option('run', { type: 'string', describe: 'show this run: its events (the run id from coldstore log or jobs)' })
      .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'keep printing events as they are written (with --run: until the run ends)' })
      .option('limit', { type: 'number', default: 20, describe: 'runs listed' })
      .option('verify', { type: 'boolean', default: false, describe: "check the journal's files against its manifest (BLAKE3 digests)" }) as never,
  handler: async (a) => {
    const loaded = loadJobs(a)
    if (a.job) findJob(loaded, a.job)
    const state = openJobState(a, loaded)
    const alive = (p: Parameters<typeof isProcessAlive>[0]): boolean => isProcessAlive(p, state.host)
    if (a.verify) {
      const findings = await state.journal.verify()
      const m = await state.journal.manifest()
      if (a.json) printJson({ ok: findings.length === 0, files: m.files.length, findings })
      else {
        for (const f of findings) out(`${f.kind}: ${f.message}`)
        out(findings.length === 0 ? `journal ok: ${m.files.length} sealed files match the manifest` : `${findings.length} problem${findings.length === 1 ? '' : 's'}`)
      }
      if (findings.length) process.exitCode = EXIT.failure
      return
    }
    const print = (e: JournalEvent): void => {
      if (a.json) process.stdout.write(JSON.stringify(e) + '\n')
      else out(formatJournalEvent(e))
    }
    if (a.run) {
      if (!isRunId(a.run)) throw new CliError(`--run: ${JSON.stringify(a.run)} is not a run id (like 20260510T030000Z-a1b2c3)`, EXIT.usage)
      if (a.follow) {
        const day = await findRunDay(state.journal, a.run)
        if (!day) throw new CliError(`no run ${a.run} in the journal (${state.journal.dir})`, EXIT.usage)
        const ac = new AbortController()
        process.once('SIGINT', () => ac.abort())
        process.once('SIGTERM', () => ac.abort())
        for await (const e of state.journal.follow({ fromDay: day, signal: ac.signal })) {
          if (e.run !== a.run) continue
          print(e)
          if (e.type === 'finished' || e.type === 'skipped') {
            if (e.type === 'finished' && e.result !== 'success') process.exitCode = EXIT.failure
            break
          }
        }
        return
      }
      const r = await readRun(state.journal, a.run, alive)
      if (!r) throw new CliError(`no run ${a.run} in the journal (${state.journal.dir})`, EXIT.usage)
      if (a.job && r.run.job !== a.job) throw new CliError(`run ${a.run} is of job ${r.run.job}, not ${a.job}`, EXIT.usage)
      if (a.json) printJson(r)
      else {
        const w = new LineWriter()
        for (const e of r.events) await w.line(formatJournalEvent(e))
        await w.flush()
      }
      return
    }
    if (a.follow) {
      // New events from now on (of the job), until Ctrl-C.
      const ac = new AbortController()
      process.once('SIGINT', () => ac.abort())
      process.once('SIGTERM', () => ac.abort())
      for await (const e of state.journal.follow({ fromDay: dayOf(new Date()), signal: ac.signal, fromEnd: true })) {
        if (a.job && e.job !== a.job) continue
        print(e)
      }
      return
    }
    const js = await readJournalState(state.journal, alive)
    const runs = js.runs.filter((r) => !a.job || r.job === a.job).reverse().slice(0, Math.max(1, a.limit))
    if (a.json) {
      printJson({ runs })
      return
    }
    if (runs.length === 0) {
      out(a.job ? `no runs of ${a.job} in the journal` : 'no runs in the journal')
      return
    }
    for (const r of runs) out(runLine(r))
    if (!a.quiet) err(`(coldstore log --run ID shows one run's log)`)
  },
}

