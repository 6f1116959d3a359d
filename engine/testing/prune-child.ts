/**
 * Test helper run as a child process by engine/prune/*.test.ts (not a test itself): another "host" that
 * takes a snapshot or a freeze while the parent prunes, and stops at a chosen point so the parent can
 * prune exactly then: before its first index object (its packs uploaded, no index names them) or before
 * its snapshot object (packs indexed, no snapshot references them).
 *
 * argv[2]: JSON { repoDir, cacheDir, password, src, kind: 'snapshot' | 'freeze', pauseAt: 'index/' | 'snapshots/' | null, time }.
 * stdout: `started` once the repository is open, `paused` at the pause point (then it waits for a line
 * on stdin), and a last JSON line { id } when done.
 */
import { createInterface } from 'node:readline'
import { backup } from '../backup/index.js'
import { freeze } from '../freeze/index.js'
import { LocalRemote, type Remote } from '../remote/index.js'
import { Repository } from '../repo/index.js'

interface ChildArgs {
  repoDir: string
  cacheDir: string
  password: string | null
  src: string
  kind: 'snapshot' | 'freeze'
  pauseAt: string | null
  time: string
}

const a = JSON.parse(process.argv[2] ?? '{}') as ChildArgs
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const local = await LocalRemote.open({ path: a.repoDir })
let paused = false

/** The local remote, stopping once before the first put under `pauseAt`. */
const remote: Remote = {
  properties: local.properties,
  protection: local.protection,
  createWriter: (dir) => local.createWriter(dir),
  get: (name, range) => local.get(name, range),
  stat: (name) => local.stat(name),
  list: (prefix) => local.list(prefix),
  delete: (name) => local.delete(name),
  close: () => local.close(),
  put: async (name, data, opts) => {
    if (a.pauseAt && !paused && name.startsWith(a.pauseAt)) {
      paused = true
      process.stdout.write('paused\n')
      await lines.next()
    }
    return local.put(name, data, opts)
  },
}

const repo = await Repository.open(remote, { password: a.password, cacheDir: a.cacheDir })
await repo.syncIndex()
process.stdout.write('started\n')
const who = { hostname: 'other-host', username: 'other', program: 'prune-child', now: () => new Date(a.time) }
let id: string | null
if (a.kind === 'freeze') {
  const r = await freeze(repo, {
    ...who, source: a.src, event: { type: 'milestone', name: 'concurrent', deliverable: null, description: null, contact: null },
    compliance: null, retentionYears: null, legalHold: false, git: null, includeEnvironment: false, includeSetupDocs: false,
    includeReports: false, gitignore: false, excludes: [], configFiles: [], destination: a.repoDir, nodeVersion: process.version,
  })
  id = r.id
} else {
  id = (await backup(repo, { ...who, paths: [a.src] })).id
}
await repo.close()
process.stdout.write(JSON.stringify({ id }) + '\n')
process.exit(0)
