/**
 * Journal events as log lines for people (`coldstore log`, the API's text log): time, then what happened.
 */
import type { JournalEvent } from './events.js'

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = n
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`
}

/** One line for an event (no newline). */
export function formatJournalEvent(e: JournalEvent): string {
  const t = e.t.replace('T', ' ').replace(/\.\d+Z$/, 'Z')
  switch (e.type) {
    case 'started':
      return `${t}  ${e.job}: ${e.kind} run ${e.run} started (${e.trigger}${e.scheduled_for ? `, due ${e.scheduled_for}` : ''}; pid ${e.pid} on ${e.host})`
    case 'phase':
      return e.phase === 'retry_wait' ? `${t}  [retry] waiting until ${e.until} for attempt ${e.attempt + 1}` : `${t}  [${e.phase.replace('_', '-')}]${e.attempt > 1 ? ` attempt ${e.attempt}` : ''}`
    case 'progress':
      return `${t}  [progress] ${e.files}${e.total_files !== null ? `/${e.total_files}` : ''} files, ${bytes(e.bytes)}${e.total_bytes !== null ? ` of ${bytes(e.total_bytes)}` : ''}`
    case 'log':
      return `${t}  ${e.level === 'info' ? '' : `${e.level.toUpperCase()} `}[${e.source}] ${e.message}`
    case 'attempt_failed':
      return `${t}  attempt ${e.attempt} failed: ${e.error}${e.retry_at ? ` (retry at ${e.retry_at})` : ''}`
    case 'finished': {
      const s = e.stats
      const what = s ? `: ${s.files} files, ${bytes(s.bytes)}, added ${bytes(s.added_bytes)}` : ''
      return `${t}  ${e.job}: run ${e.run} ${e.result} after ${(e.duration_ms / 1000).toFixed(1)} s${e.snapshot ? `, snapshot ${e.snapshot.slice(0, 8)}` : ''}${what}${e.error ? ` (${e.error})` : ''}`
    }
    case 'skipped':
      return `${t}  ${e.job}: ${e.kind} run ${e.run} skipped: ${e.reason === 'done' ? `already run for ${e.scheduled_for}` : 'already running'}${e.holder ? ` (pid ${e.holder.pid}${e.holder.run ? `, run ${e.holder.run}` : ''})` : ''}`
    case 'missed':
      return `${t}  ${e.job}: missed ${e.count} scheduled ${e.kind === 'check' ? 'check' : 'run'}${e.count === 1 ? '' : 's'} (${e.scheduled_for[0]}${e.count > 1 ? ` … ${e.latest}` : ''}); ${e.policy === 'run' ? 'running once' : 'not run'}`
    case 'daemon':
      return `${t}  daemon ${e.state} (pid ${e.pid} on ${e.host}${e.listen ? `, ${e.listen}` : ''})`
  }
}
