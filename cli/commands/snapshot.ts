import type { CommandModule } from 'yargs'
import { ExcludeMatcher, backup, type BackupWarning } from '../../engine/index.js'
import { prepareAudit } from '../audit-hook.js'
import { CliError, EXIT, PROGRAM, Progress, err, formatBytes, out, printJson, printable, who, withRepo, type GlobalArgs } from '../common.js'

interface Args extends GlobalArgs {
  paths: string[]
  job?: string
  tag?: string[]
  exclude?: string[]
  'exclude-file'?: string[]
  gitignore?: boolean
  'dry-run'?: boolean
  time?: string
}

export const snapshotCommand: CommandModule<GlobalArgs, Args> = {
  command: 'snapshot <paths...>',
  aliases: ['backup'],
  describe: 'take an incremental snapshot of files and folders',
  builder: (y) =>
    y
      .positional('paths', { type: 'string', array: true, demandOption: true })
      .option('job', { type: 'string', describe: 'job name this snapshot belongs to' })
      .option('tag', { type: 'string', array: true, describe: 'tag (repeatable)' })
      .option('exclude', { type: 'string', array: true, describe: 'glob to leave out (repeatable); without "/" it matches any name' })
      .option('exclude-file', { type: 'string', array: true, describe: 'file with one exclude pattern per line' })
      .option('gitignore', { type: 'boolean', default: false, describe: 'respect .gitignore files' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'show what would be stored, store nothing' })
      .option('time', { type: 'string', describe: 'record this as the snapshot\'s time (ISO 8601, e.g. 2024-05-01T03:00:00Z): for imports from other tools and tests' }) as never,
  handler: async (a) => {
    const audit = prepareAudit(a)
    let time: Date | null = null
    if (a.time !== undefined) {
      // A time without an offset would silently mean the local zone: ask for one.
      if (!/(Z|[+-]\d\d:?\d\d)$/i.test(a.time.trim()) || !Number.isFinite(Date.parse(a.time))) {
        throw new CliError(`--time: ${JSON.stringify(a.time)} is not an ISO 8601 time with a zone (2024-05-01T03:00:00Z or 2024-05-01T05:00:00+02:00)`, EXIT.usage)
      }
      time = new Date(Date.parse(a.time))
    }
    const patterns = [...(a.exclude ?? []), ...(await ExcludeMatcher.readPatternFiles(a['exclude-file'] ?? []))]
    const result = await withRepo(a, async (repo) => {
      const progress = new Progress(a)
      let result
      try {
        result = await backup(repo, {
          paths: a.paths,
          job: a.job ?? null,
          tags: a.tag ?? [],
          excludes: patterns,
          gitignore: a.gitignore,
          dryRun: a['dry-run'],
          program: PROGRAM,
          ...who(),
          now: () => time ?? new Date(),
          onProgress: a.quiet ? undefined : (p) => progress.counts(p),
          onWarning: (w: BackupWarning) => {
            progress.done()
            if (!a.quiet) err(`warning: ${printable(w.path)}: ${w.message}`)
          },
        })
      } finally {
        progress.done()
      }
      if (result.adopted.packs && !a.quiet) err(`reused ${result.adopted.packs} packs (${formatBytes(result.adopted.bytes)}) an interrupted run had stored but not recorded`)
      if (!result.dryRun && result.id) {
        const st = result.snapshot.stats
        await audit.record(repo, { operation: 'snapshot', snapshotId: result.id, summary: { files: st.files, dirs: st.dirs, bytes: st.bytes, added_bytes: st.added_bytes, warnings: result.warnings.length } })
      }
      return result
    })
    const s = result.snapshot.stats
    const failed = result.warnings.filter((w) => w.kind !== 'changed')
    if (a.json) {
      printJson({
        id: result.id,
        short_id: result.id?.slice(0, 8) ?? null,
        dry_run: result.dryRun,
        time: result.snapshot.time,
        paths: result.snapshot.paths,
        job: result.snapshot.job,
        tags: result.snapshot.tags,
        stats: s,
        warnings: result.warnings,
        errors: failed.map((w) => ({ path: w.path, message: w.message })),
      })
    } else {
      out(`${result.dryRun ? 'dry run: would store' : `snapshot ${result.id!.slice(0, 8)} saved:`} ${s.files} files, ${s.dirs} dirs, ${formatBytes(s.bytes)}`)
      out(`  files: ${s.new_files} new, ${s.changed_files} changed, ${s.unchanged_files} unchanged`)
      const split = s.added_data_bytes !== undefined && s.added_meta_bytes !== undefined && s.added_bytes > 0
        ? ` (${formatBytes(s.added_data_bytes)} data, ${formatBytes(s.added_meta_bytes)} trees, ${formatBytes(s.added_bytes - s.added_data_bytes - s.added_meta_bytes)} index)`
        : ''
      out(`  ${result.dryRun ? 'would add' : 'added'} ${formatBytes(s.added_bytes)} to the repository${split}, ${s.new_chunks} new blobs, in ${s.duration_s.toFixed(2)} s`)
      if (failed.length) out(`  ${failed.length} entries could not be read (see warnings above)`)
    }
    if (failed.length) process.exitCode = EXIT.partial
  },
}
