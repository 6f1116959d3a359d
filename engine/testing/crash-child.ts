/**
 * Test helper run as a child process by engine/backup/crash.test.ts (not a
 * test itself): opens a repository and takes one snapshot, so the parent can
 * SIGKILL it at any point of the run.
 *
 * argv[2]: JSON { repoDir, cacheDir, password, src, now, workers? }.
 * stdout: the line `start` when the backup begins (repository opened, index
 * loaded), then one JSON line { id, stats } when it finished.
 */
import { backup } from '../backup/index.js'
import { LocalRemote } from '../remote/index.js'
import { Repository } from '../repo/index.js'

interface ChildArgs {
  repoDir: string
  cacheDir: string
  password: string | null
  src: string
  now: string
  workers?: number
}

const a = JSON.parse(process.argv[2] ?? '{}') as ChildArgs
const repo = await Repository.open(await LocalRemote.open({ path: a.repoDir }), { password: a.password, cacheDir: a.cacheDir })
await repo.syncIndex()
process.stdout.write('start\n')
const r = await backup(repo, { paths: [a.src], hostname: 'crash-host', username: 'crash', program: 'crash-child', now: () => new Date(a.now), workers: a.workers })
await repo.close()
process.stdout.write(JSON.stringify({ id: r.id, stats: r.snapshot.stats }) + '\n')
