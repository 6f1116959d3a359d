import type { CommandModule } from 'yargs'
import { findSnapshot, planRestore, restore, type RestoreResult } from '../../engine/index.js'
import { prepareAudit } from '../audit-hook.js'
import { CliError, EXIT, Progress, err, formatBytes, out, parseSnapRef, printJson, printable, withRepo, type GlobalArgs } from '../common.js'
import { interactiveRestore } from '../interactive.js'
import { ensureReadable, retrievalOptionsSpec, type RetrievalArgs } from '../retrieval.js'

interface Args extends RetrievalArgs {
  ref?: string
  interactive?: boolean
  target: string
  include?: string[]
  exclude?: string[]
  overwrite?: boolean
  job?: string
}

export const restoreCommand: CommandModule<GlobalArgs, Args> = {
  command: 'restore [ref]',
  describe: 'restore a snapshot, or a path in it (<snap>[:<path>]), into a directory; or pick them with --interactive',
  builder: (y) =>
    y
      .positional('ref', { type: 'string', describe: 'snapshot id, prefix or "latest", optionally :path (not with --interactive)' })
      .option('interactive', { alias: 'i', type: 'boolean', default: false, describe: 'on a terminal: pick job, snapshot and paths, then restore' })
      .option('target', { alias: 't', type: 'string', demandOption: true, describe: 'directory to restore into' })
      .option('include', { type: 'string', array: true, describe: 'restore only matching paths (repeatable)' })
      .option('exclude', { type: 'string', array: true, describe: 'leave out matching paths (repeatable)' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'replace existing files' })
      .option('job', { type: 'string', describe: 'with "latest": the latest of this job' })
      .options(retrievalOptionsSpec) as never,
  handler: async (a) => {
    if (a.interactive && (a.ref !== undefined || a.include?.length || a.exclude?.length)) {
      throw new CliError('--interactive picks the snapshot and paths itself: leave out <ref>, --include and --exclude', EXIT.usage)
    }
    if (!a.interactive && a.ref === undefined) throw new CliError('give a snapshot to restore (<snap>[:<path>], e.g. latest), or --interactive', EXIT.usage)
    const started = Date.now()
    if (a.interactive) {
      if (!process.stdin.isTTY || !process.stderr.isTTY) {
        throw new CliError('--interactive needs a terminal; without one, give <snap>[:<path>] and --include/--exclude', EXIT.usage)
      }
      const audit = prepareAudit(a)
      const picked = await withRepo(a, async (repo) => {
        const p = await interactiveRestore(repo, a)
        if (p.snapshot) {
          await audit.record(repo, {
            operation: 'restore', snapshotId: p.snapshot,
            summary: { paths: p.paths, target: a.target, files: p.result.files, dirs: p.result.dirs, bytes: p.result.bytes, errors: p.result.errors.length },
          })
        }
        return p
      })
      report(a, picked.result, (Date.now() - started) / 1000, picked.snapshot === null)
      return
    }
    const audit = prepareAudit(a)
    const { snap, path } = parseSnapRef(a.ref!)
    const r = await withRepo(a, async (repo) => {
      const s = await findSnapshot(repo, snap, { job: a.job })
      const selection = { snapshot: s, path, target: a.target, include: a.include, exclude: a.exclude }
      if (repo.remote.archive) {
        // Archive storage classes: find out which data packs this restore reads, and whether they are readable yet.
        const plan = await planRestore(repo, selection)
        const outcome = await ensureReadable(repo, a, plan.dataPacks, { command: 'restore' })
        if (!outcome.ready) return null
      }
      const progress = new Progress(a)
      let result
      try {
        result = await restore(repo, {
          ...selection, overwrite: a.overwrite,
          onProgress: (p) => progress.counts(p),
        })
      } finally {
        progress.done()
      }
      await audit.record(repo, {
        operation: 'restore', snapshotId: s.id,
        summary: { path: path.toString(), target: a.target, files: result.files, dirs: result.dirs, bytes: result.bytes, errors: result.errors.length },
      })
      return result
    })
    if (r === null) {
      process.exitCode = EXIT.archived
      return
    }
    report(a, r, (Date.now() - started) / 1000, false)
  },
}

function report(a: Args, r: RestoreResult, seconds: number, nothing: boolean): void {
  if (nothing) {
    if (a.json) printJson({ target: a.target, files: 0, dirs: 0, others: 0, bytes: 0, duration_s: seconds, errors: [] })
    else err('nothing restored')
    return
  }
  if (a.json) {
    printJson({ target: a.target, files: r.files, dirs: r.dirs, others: r.others, bytes: r.bytes, duration_s: seconds, errors: r.errors })
  } else {
    out(`restored ${r.files} files, ${r.dirs} dirs, ${r.others} other entries, ${formatBytes(r.bytes)} to ${a.target} in ${seconds.toFixed(2)} s`)
  }
  if (r.errors.length) {
    if (!a.json) for (const e of r.errors) err(`error: ${printable(e.path)}: ${e.message}`)
    err(`${r.errors.length} entries could not be restored`)
    process.exitCode = EXIT.failure
  }
}
