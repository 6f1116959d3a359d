import { basename } from 'node:path'
import type { CommandModule } from 'yargs'
import { exportSnapshot, findSnapshot } from '../../engine/index.js'
import { prepareAudit, type AuditArgs } from '../audit-hook.js'
import { githubTarget, verifyAndPublish, type GithubArgs } from '../github-release.js'
import { EXIT, PROGRAM, Progress, err, formatBytes, out, printJson, withRepo, type GlobalArgs } from '../common.js'

interface Args extends AuditArgs, GithubArgs {
  snap: string
  output: string
  name?: string
  'zstd-level'?: number
  overwrite?: boolean
  job?: string
}

export const exportCommand: CommandModule<GlobalArgs, Args> = {
  command: 'export <snap>',
  describe: 'write a snapshot as a self-contained .tar or .tar.zst package, checkable with b3sum or sha256sum alone',
  builder: (y) =>
    y
      .positional('snap', { type: 'string', demandOption: true, describe: 'snapshot id, prefix or "latest"' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'package file: FILE.tar or FILE.tar.zst' })
      .option('name', { type: 'string', describe: 'top folder inside the package (default coldstore-<short id>)' })
      .option('zstd-level', { type: 'number', default: 3, describe: 'zstd level for .tar.zst (1–19)' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'replace an existing package file' })
      .option('job', { type: 'string', describe: 'with "latest": the latest of this job' })
      .option('github-release', { type: 'boolean', default: false, describe: 'attach the package and its verification report to the GitHub release of the tag at HEAD (GITHUB_TOKEN)' })
      .option('github-api-url', { type: 'string', describe: 'GitHub API base (env GITHUB_API_URL; default https://api.github.com)' })
      .option('source', { type: 'string', describe: 'with --github-release: the git working tree whose HEAD tag and origin name the release (default: the current directory)' }) as never,
  handler: async (a) => {
    const audit = prepareAudit(a)
    const gh = await githubTarget(a)
    const level = a['zstd-level'] ?? 3
    if (!Number.isInteger(level) || level < 1 || level > 19) {
      err(`coldstore: --zstd-level must be 1–19, got ${level}`)
      process.exitCode = EXIT.usage
      return
    }
    const { snapshot, result } = await withRepo(a, async (repo) => {
      const snapshot = await findSnapshot(repo, a.snap, { job: a.job })
      const progress = new Progress(a)
      let result
      try {
        result = await exportSnapshot(repo, {
          snapshot, output: a.output, name: a.name, zstdLevel: level, overwrite: a.overwrite, program: PROGRAM, now: () => new Date(),
          extra: { repository: repo.config.id },
          onProgress: a.quiet ? undefined : (p) => progress.counts({ bytes: p.bytes, files: p.files, totalBytes: p.totalBytes, totalFiles: p.totalFiles, current: p.current }),
          onSkip: (path, type) => {
            progress.done()
            if (!a.quiet) err(`warning: ${path}: a ${type} is not exported`)
          },
        })
      } finally {
        progress.done()
      }
      await audit.record(repo, {
        operation: 'export', snapshotId: snapshot.id,
        summary: { package: basename(result.output), files: result.files, bytes: result.bytes, package_bytes: result.package_bytes, manifest_blake3: result.manifest_blake3 },
      })
      return { snapshot, result }
    })
    const { verification, release } = gh ? await verifyAndPublish(a, gh, a.output, snapshot, result) : { verification: null, release: null }
    if (a.json) {
      printJson({ snapshot: snapshot.id, ...result, verification, github_release: release })
    } else {
      out(`exported ${snapshot.id.slice(0, 8)} to ${result.output}: ${result.files} files, ${result.dirs} dirs, ${result.symlinks} symlinks, ${formatBytes(result.bytes)} (package ${formatBytes(result.package_bytes)})`)
      out(`  MANIFEST.b3 blake3 ${result.manifest_blake3}`)
      if (result.skipped.length) out(`  ${result.skipped.length} special files left out`)
      if (release) out(`  GitHub release ${release.tag} ${release.created ? 'created' : 'updated'}: ${release.assets.map((x) => `${x.name}${x.replaced ? ' (replaced)' : ''}`).join(', ')}${release.html_url ? ` ${release.html_url}` : ''}`)
    }
  },
}
