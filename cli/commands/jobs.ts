import type { CommandModule } from 'yargs'
import { isProcessAlive, jobStatuses, readJournalState, type JobStatus } from '../../engine/index.js'
import { out, printJson } from '../common.js'
import { loadJobs, openJobState, type JobsArgs } from '../jobs-context.js'

/** "Now" for health: the real time (COLDSTORE_TEST_NOW sets it for tests). */
export function statusNow(): Date {
  const t = process.env.COLDSTORE_TEST_NOW
  const d = t ? new Date(t) : new Date()
  return Number.isNaN(d.getTime()) ? new Date() : d
}

function when(iso: string | null | undefined): string {
  return iso ? iso.replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, 'Z') : '-'
}

function lastText(j: JobStatus): string {
  if (j.running) return `running (${j.running.phase ?? 'starting'}${j.running.attempt > 1 ? `, attempt ${j.running.attempt}` : ''})`
  if (!j.last_run) return 'never'
  return `${when(j.last_run.started)} ${j.last_run.result}`
}

export const jobsCommand: CommandModule<JobsArgs, JobsArgs> = {
  command: 'jobs',
  describe: "list the configuration's jobs: last run, last success, next run, health",
  builder: (y) => y as never,
  handler: async (a) => {
    const loaded = loadJobs(a)
    const state = openJobState(a, loaded)
    const js = await readJournalState(state.journal, (p) => isProcessAlive(p, state.host))
    const statuses = jobStatuses(loaded.jobs.values(), js, statusNow())
    if (a.json) {
      printJson({ jobs: statuses })
      return
    }
    if (statuses.length === 0) {
      out(`no jobs in ${loaded.config.path}`)
      return
    }
    const rows = statuses.map((j) => [j.name, j.type, j.schedule ?? 'manual', lastText(j), when(j.last_success?.started), when(j.next_run), j.health])
    const head = ['JOB', 'TYPE', 'SCHEDULE', 'LAST RUN', 'LAST SUCCESS', 'NEXT RUN', 'HEALTH']
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
    out(head.map((h, i) => h.padEnd(w[i])).join('  ').trimEnd())
    for (let i = 0; i < rows.length; i++) {
      out(rows[i].map((c, k) => c.padEnd(w[k])).join('  ').trimEnd())
      for (const r of statuses[i].reasons) out(`    ${r}`)
    }
  },
}
