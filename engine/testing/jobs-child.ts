/**
 * A child process for the jobs tests (run with the test's TypeScript loader):
 *   lock <dir> <name>          tries the lock, prints {"acquired":bool,"holder":pid|null}, holds it until stdin closes
 *   append <dir> <n> <tag>     appends n log events to the journal in <dir>, one write each, as fast as it can
 */
import { hostname } from 'node:os'
import { JobLocks } from '../jobs/lock.js'
import { Journal } from '../jobs/journal.js'

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
} else {
  process.stderr.write(`unknown command ${cmd}\n`)
  process.exit(2)
}
