import type { CommandModule } from 'yargs'
import { findSnapshot, restore } from '../../engine/index.js'
import { EXIT, Progress, err, formatBytes, out, parseSnapRef, printJson, withRepo, type GlobalArgs } from '../common.js'

interface Args extends GlobalArgs {
  ref: string
  target: string
  include?: string[]
  exclude?: string[]
  overwrite?: boolean
  job?: string
}

export const restoreCommand: CommandModule<GlobalArgs, Args> = {
  command: 'restore <ref>',
  describe: 'restore a snapshot, or a path in it (<snap>[:<path>]), into a directory',
  builder: (y) =>
    y
      .positional('ref', { type: 'string', demandOption: true })
      .option('target', { alias: 't', type: 'string', demandOption: true, describe: 'directory to restore into' })
      .option('include', { type: 'string', array: true, describe: 'restore only matching paths (repeatable)' })
      .option('exclude', { type: 'string', array: true, describe: 'leave out matching paths (repeatable)' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'replace existing files' })
      .option('job', { type: 'string', describe: 'with "latest": the latest of this job' }) as never,
  handler: async (a) => {
    const { snap, path } = parseSnapRef(a.ref)
    const started = Date.now()
    const r = await withRepo(a, async (repo) => {
      const s = await findSnapshot(repo, snap, { job: a.job })
      const progress = new Progress(a)
      try {
        return await restore(repo, {
          snapshot: s, path, target: a.target, include: a.include, exclude: a.exclude, overwrite: a.overwrite,
          onProgress: (p) => progress.counts(p),
        })
      } finally {
        progress.done()
      }
    })
    const seconds = (Date.now() - started) / 1000
    if (a.json) {
      printJson({ target: a.target, files: r.files, dirs: r.dirs, others: r.others, bytes: r.bytes, duration_s: seconds, errors: r.errors })
    } else {
      out(`restored ${r.files} files, ${r.dirs} dirs, ${r.others} other entries, ${formatBytes(r.bytes)} to ${a.target} in ${seconds.toFixed(2)} s`)
    }
    if (r.errors.length) {
      if (!a.json) for (const e of r.errors) err(`error: ${e.path}: ${e.message}`)
      err(`${r.errors.length} entries could not be restored`)
      process.exitCode = EXIT.failure
    }
  },
}
