import type { CommandModule } from 'yargs'
import { listSnapshots } from '../../engine/index.js'
import { err, formatBytes, out, printJson, withRepo, type GlobalArgs } from '../common.js'

interface Args extends GlobalArgs {
  job?: string
  host?: string
}

export const snapshotsCommand: CommandModule<GlobalArgs, Args> = {
  command: 'snapshots',
  describe: 'list snapshots and freezes',
  builder: (y) =>
    y.option('job', { type: 'string', describe: 'only this job' }).option('host', { type: 'string', describe: 'only this host' }),
  handler: async (a) => {
    // A damaged snapshot object must not hide the others: it is named on stderr (verify reports it as an error).
    const damaged: string[] = []
    const snaps = await withRepo(a, (repo) => listSnapshots(repo, (id) => damaged.push(id)), { syncIndex: false }) // listing needs no index
    for (const id of damaged.sort()) err(`warning: snapshot object snapshots/${id} is damaged and cannot be read (coldstore verify reports it)`)
    const list = snaps.filter((s) => (a.job === undefined || s.job === a.job) && (a.host === undefined || s.host === a.host))
    if (a.json) {
      printJson(list.map((s) => ({ id: s.id, short_id: s.id.slice(0, 8), kind: s.kind, time: s.time, host: s.host, username: s.username, paths: s.paths, job: s.job, tags: s.tags, tree: s.tree, stats: s.stats })))
      return
    }
    if (list.length === 0) {
      out('no snapshots')
      return
    }
    const rows = list.map((s) => [s.id.slice(0, 8), s.time.replace('T', ' ').slice(0, 19), s.host, s.job ?? '', s.tags.join(','), String(s.stats.files), formatBytes(s.stats.bytes), s.paths.join(' ')])
    const head = ['ID', 'TIME (UTC)', 'HOST', 'JOB', 'TAGS', 'FILES', 'SIZE', 'PATHS']
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
    const fmt = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  ')
    out(fmt(head))
    for (const r of rows) out(fmt(r))
    out(`${list.length} snapshot${list.length === 1 ? '' : 's'}`)
  },
}
