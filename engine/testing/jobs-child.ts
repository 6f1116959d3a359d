/**
 * A child process for the jobs tests (run with the test's TypeScript loader):
 *   lock <dir> <name>          tries the lock, prints {"acquired":bool,"holder":pid|null}, holds it until stdin closes
 *   append <dir> <n> <tag>     appends n log events to the journal in <dir>, one write each, as fast as it can
 *   worker <dir> <request>     a daemon's worker: writes a run's started and finished events to the journal in <dir>;
 *                              request is JSON { run, job, kind, trigger, scheduled_for, now, mode }, mode one of success,
 *                              fail, hang (until stdin ends; SIGTERM: interrupted), stubborn (ignores SIGTERM), early (exits 2)
 */
import { hostname } from 'node:os'
import { JobLocks } from '../jobs/lock.js'
import { Journal } from '../jobs/journal.js'
import { processIdentity } from '../jobs/process-identity.js'

const [cmd, dir, arg, tag] = process.argv.slice(2)
const now = (): Date => new Date()
if (cmd === 'lock') {
  const locks = new JobLocks({ dir, host: hostname(), now })
  const a = await locks.tryAcquire(arg, { run: null, purpose: 'test' })
  process.stdout.write(JSON.stringify({ acquired: Boolean(a.lock), holder: a.holder?.pid ?? null }) + '\n')
  process.stdin.resume()
  process.stdin.on('end', () => {
    void a.lock?.release().then(() => process.exit(0))
    if (!a.lock) process.exit(0)
  })
} else if (cmd === 'append') {
  const journal = new Journal({ dir, now })
  const n = Number(arg)
  const pending: Promise<unknown>[] = []
  for (let i = 0; i < n; i++) pending.push(journal.append({ type: 'log', run: 'r', job: tag, level: 'info', source: 'coldstore', message: `${tag} ${i} ${'x'.repeat(i % 300)}` }))
  await Promise.all(pending)
} else if (cmd === 'worker') {
  const r = JSON.parse(arg) as { run: string; job: string; kind: 'backup' | 'check'; trigger: 'schedule'; scheduled_for: string | null; mode: string; now: string }
  // The daemon's (manual) time, so its events and the worker's share one timeline.
  const journal = new Journal({ dir, now: () => new Date(r.now) })
  if (r.mode === 'early') {
    process.stderr.write('coldstore: error: cannot read the configuration\n')
    process.exit(2)
  }
  const base = { run: r.run, job: r.job }
  const finish = async (result: 'success' | 'failed' | 'interrupted'): Promise<void> => {
    await journal.append({
      ...base, type: 'finished', kind: r.kind, result, error: result === 'success' ? null : result, attempts: 1, duration_ms: 1,
      snapshot: null, stats: null, retention: null, check: null, exit_code: result === 'success' ? 0 : result === 'failed' ? 1 : 143,
    })
  }
  await journal.append({ ...base, type: 'started', kind: r.kind, trigger: r.trigger, scheduled_for: r.scheduled_for, job_type: 'dataset', ...processIdentity(hostname()) })
  if (r.mode === 'success' || r.mode === 'fail') {
    await finish(r.mode === 'success' ? 'success' : 'failed')
  } else {
    process.on('SIGTERM', () => {
      if (r.mode === 'stubborn') return
      void finish('interrupted').then(() => process.exit(143))
    })
    await journal.append({ ...base, type: 'phase', phase: 'backup', attempt: 1 })
    process.stdin.resume()
    await new Promise<void>((resolve) => process.stdin.on('end', resolve))
    await finish('success')
  }
} else {
  process.stderr.write(`unknown command ${cmd}\n`)
  process.exit(2)
}
