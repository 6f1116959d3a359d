import { mkdtempSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CommandModule } from 'yargs'
import {
  DEFAULT_CHUNKER_PARAMS, DEFAULT_PACK_BYTES, ExcludeMatcher, adoptUnindexedPacks, NotFoundError, TEST_KDF, captureGit, checkRequiredFields, closeRepository,
  describeRemoteUrl, exportSnapshot, findComplianceTemplate, findSnapshot, freeze, gitToplevel, initRepository, isPackageName, openRemote, openRepository,
  type OpenRemoteOptions, type Remote, type BackupWarning, type ExportResult, type GithubReleaseResult, type PackageReport, type Snapshot, type ComplianceTemplate, type FreezeEvent, type FreezeResult, type Repository,
} from '../../engine/index.js'
import { CliError, EXIT, PROGRAM, Progress, cacheDir, err, formatBytes, out, password, printJson, printable, remoteOptions, who, type GlobalArgs } from '../common.js'
import { resolveLocation } from '../config-file.js'
import { loadComplianceTemplates, loadFreezeDefaults } from '../freeze-config.js'
import { Operations, type RunningOperation } from '../operations.js'
import { prepareAudit, type AuditArgs } from '../audit-hook.js'
import { githubTarget, verifyAndPublish, type GithubArgs } from '../github-release.js'

interface Args extends GlobalArgs, AuditArgs, GithubArgs {
  export?: string
  source: string
  destination: string
  milestone?: string
  handoff?: string
  audit?: boolean
  deliverable?: string
  description?: string
  contact?: string
  compliance?: string
  'retention-years'?: number
  'legal-hold'?: boolean
  'include-setup-docs'?: boolean
  'include-reports'?: boolean
  'include-git-metadata'?: boolean
  'include-environment'?: boolean
  gitignore?: boolean
  exclude?: string[]
  'exclude-file'?: string[]
  'dry-run'?: boolean
}

/** A local destination as an absolute path; any other as its URL without credentials. */
function localOrUrl(url: string): string {
  if (url.startsWith('file://')) return fileURLToPath(url)
  if (/^[A-Za-z][A-Za-z0-9+.-]+:\/\//.test(url)) return describeRemoteUrl(url)
  return resolve(url)
}

/** True when the remote at `url` holds no object (or does not exist yet). */
async function remoteIsEmpty(url: string, options: Omit<OpenRemoteOptions, 'create'>): Promise<boolean> {
  let r: Remote
  try {
    r = await openRemote(url, options)
  } catch (e) {
    if (e instanceof NotFoundError) return true
    throw e
  }
  try {
    for await (const _ of r.list('')) return false
    return true
  } finally {
    await r.close()
  }
}

/** The event from --milestone / --handoff / --audit / --deliverable (at most one of the first three). */
function eventOf(a: Args, description: string | null, contact: string | null): FreezeEvent {
  const given = [a.milestone !== undefined && 'milestone', a.handoff !== undefined && 'handoff', a.audit && 'audit'].filter(Boolean) as string[]
  if (given.length > 1) throw new CliError(`give one event: --${given.join(' and --')} were both given`, EXIT.usage)
  for (const k of ['milestone', 'handoff', 'deliverable'] as const) {
    if (a[k] !== undefined && String(a[k]).trim() === '') throw new CliError(`--${k} needs a name`, EXIT.usage)
  }
  const deliverable = a.deliverable ?? null
  if (a.milestone !== undefined) return { type: 'milestone', name: a.milestone, deliverable, description, contact }
  if (a.handoff !== undefined) return { type: 'handoff', name: a.handoff, deliverable, description, contact }
  if (a.audit) return { type: 'audit', name: null, deliverable, description, contact }
  if (deliverable !== null) return { type: 'deliverable', name: deliverable, deliverable, description, contact }
  return { type: 'capture', name: null, deliverable, description, contact }
}

function eventLabel(e: FreezeEvent): string {
  return e.type === 'capture' ? 'freeze' : e.name ? `${e.type} "${e.name}"` : e.type
}

/**
 * Opens the destination's repository, creating it on first use (a real run; a
 * dry run instead predicts against an empty scratch repository with the same
 * parameters, as nothing may be written).
 */
async function openDestination(a: Args, destination: string, dryRun: boolean, progress: Progress): Promise<{ repo: Repository; created: 'created' | 'scratch' | null; cleanup: () => void }> {
  const url = resolveLocation(destination, a.config).url
  const remote = remoteOptions(a, destination)
  const pw = await password(a, { location: destination })
  const open = (u: string, cache: string, scratch = false): Promise<Repository> =>
    openRepository({ url: u, password: pw, cacheDir: cache, remote: scratch ? {} : remote, onProgress: (p) => progress.line(`loading index ${p.done}/${p.total}`, p.done === p.total) })
  try {
    return { repo: await open(url, cacheDir(a)), created: null, cleanup: () => {} }
  } catch (e) {
    if (!(e instanceof NotFoundError && e.what === 'config')) throw e
  }
  // No repository there: refuse a place that holds other things, so a typo cannot scatter a repository into it.
  if (!/^[A-Za-z][A-Za-z0-9+.-]+:\/\//.test(url) || url.startsWith('file://')) {
    const path = url.startsWith('file://') ? fileURLToPath(url) : resolve(url)
    let entries: string[] = []
    try {
      if (!statSync(path).isDirectory()) throw new CliError(`the destination ${path} is a file, not a repository`, EXIT.usage)
      entries = readdirSync(path)
    } catch (e) {
      if (e instanceof CliError) throw e
    }
    if (entries.length > 0) throw new CliError(`the destination ${path} is a folder that is not a coldstore repository and not empty: give a new or empty folder, or a repository`, EXIT.usage)
  } else if (!(await remoteIsEmpty(url, remote))) {
    throw new CliError(`the destination ${describeRemoteUrl(url)} holds objects but no coldstore repository: give a new or empty location, or a repository`, EXIT.usage)
  }
  if (pw === null) {
    throw new CliError('a password is needed to create the repository: set COLDSTORE_PASSWORD or COLDSTORE_PASSWORD_FILE or use --password-file (or create it with coldstore init --no-encryption first)', EXIT.usage)
  }
  const init = { password: pw, chunker: DEFAULT_CHUNKER_PARAMS, packSizeBytes: DEFAULT_PACK_BYTES, compressionLevel: 3, ...who(), now: new Date() }
  if (dryRun) {
    const scratch = mkdtempSync(join(tmpdir(), 'coldstore-freeze-dry-run-'))
    try {
      await initRepository(join(scratch, 'repo'), { ...init, kdf: TEST_KDF })
      return { repo: await open(join(scratch, 'repo'), join(scratch, 'cache'), true), created: 'scratch', cleanup: () => rmSync(scratch, { recursive: true, force: true }) }
    } catch (e) {
      rmSync(scratch, { recursive: true, force: true })
      throw e
    }
  }
  await initRepository(url, init, remote)
  return { repo: await open(url, cacheDir(a)), created: 'created', cleanup: () => {} }
}

export const freezeCommand: CommandModule<GlobalArgs, Args> = {
  command: 'freeze <source> <destination>',
  describe: 'capture a project at a milestone: an immutable, verifiable freeze (the repository is created on first use)',
  builder: (y) =>
    y
      .positional('source', { type: 'string', demandOption: true, describe: 'the project folder' })
      .positional('destination', { type: 'string', demandOption: true, describe: 'repository: a path or file:// URL' })
      .option('milestone', { type: 'string', describe: 'event: a milestone (e.g. "PNAS submission")' })
      .option('handoff', { type: 'string', describe: 'event: a hand-off (e.g. "transfer-to-alice")' })
      .option('audit', { type: 'boolean', describe: 'event: an audit' })
      .option('deliverable', { type: 'string', describe: 'a deliverable id (alone it is the event)' })
      .option('description', { type: 'string', describe: 'what this freeze is' })
      .option('contact', { type: 'string', describe: 'who to ask about it (e-mail)' })
      .option('compliance', { type: 'string', describe: 'compliance template (21CFR11, SOX, GDPR, HIPAA, or your own): default retention and required fields' })
      .option('retention-years', { type: 'number', describe: 'keep the freeze immutable for N years' })
      .option('legal-hold', { type: 'boolean', describe: 'put the freeze under legal hold (immutable until released)' })
      .option('include-setup-docs', { type: 'boolean', describe: 'add a generated SETUP.md (restore, verify, environment, contacts)' })
      .option('include-reports', { type: 'boolean', describe: 'store the metadata and manifest as files inside the freeze too' })
      .option('include-git-metadata', { type: 'boolean', describe: 'record git state (default: on in a git repository)' })
      .option('include-environment', { type: 'boolean', describe: 'record OS, CPU, runtimes and lock-file hashes' })
      .option('gitignore', { type: 'boolean', describe: 'respect .gitignore (default: on in a git repository; --no-gitignore includes everything)' })
      .option('exclude', { type: 'string', array: true, describe: 'glob to leave out (repeatable)' })
      .option('exclude-file', { type: 'string', array: true, describe: 'file with one exclude pattern per line' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'predict exactly what the freeze will store, store nothing' })
      .option('export', { type: 'string', describe: 'also write the freeze as a self-contained package FILE.tar[.zst] (see coldstore export)' })
      .option('github-release', { type: 'boolean', default: false, describe: 'attach the package (--export, default coldstore-<id>.tar.zst here) and its verification report to the GitHub release of the tag at HEAD of the source (GITHUB_TOKEN)' })
      .option('github-api-url', { type: 'string', describe: 'GitHub API base (env GITHUB_API_URL; default https://api.github.com)' }) as never,
  handler: async (a) => {
    const dryRun = Boolean(a['dry-run'])
    let source: string
    try {
      source = realpathSync(resolve(a.source)) // a symlink to the project freezes the project
      if (!statSync(source).isDirectory()) throw new CliError(`the source of a freeze must be a folder: ${a.source}`, EXIT.usage)
    } catch (e) {
      if (e instanceof CliError) throw e
      throw new CliError(`cannot read source ${a.source}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`, EXIT.usage)
    }
    const url = resolveLocation(a.destination, a.config).url
    const { defaults, files: configFiles } = loadFreezeDefaults(source)
    const description = a.description ?? defaults.description ?? null
    const contact = a.contact ?? defaults.contact ?? null
    const event = eventOf(a, description, contact)
    const complianceName = a.compliance ?? defaults.compliance
    let compliance: ComplianceTemplate | null = null
    if (complianceName) compliance = findComplianceTemplate(loadComplianceTemplates(), complianceName)
    const retentionYears = a['retention-years'] ?? defaults.retention_years ?? null
    if (retentionYears !== null && (!Number.isInteger(retentionYears) || retentionYears < 0 || retentionYears > 100)) {
      throw new CliError(`--retention-years takes a whole number of years (0–100), got ${a['retention-years']}`, EXIT.usage)
    }
    const legalHold = a['legal-hold'] ?? defaults.legal_hold ?? false
    if (compliance) {
      checkRequiredFields(compliance, {
        contact, description, milestone: a.milestone, handoff: a.handoff, deliverable: a.deliverable,
        retention_years: retentionYears ?? compliance.retentionYears, legal_hold: legalHold || compliance.legalHold,
      })
    }
    const inGit = (await gitToplevel(source)) !== null
    const gitignore = a.gitignore ?? defaults.gitignore ?? inGit
    const includeGit = a['include-git-metadata'] ?? defaults.include_git_metadata ?? inGit
    const excludes = [...(defaults.exclude ?? []), ...(a.exclude ?? []), ...(await ExcludeMatcher.readPatternFiles(a['exclude-file'] ?? []))]
    const git = includeGit ? await captureGit(source) : null
    if (includeGit && !git && a['include-git-metadata']) err(`warning: ${a.source} is not in a git repository: no git metadata recorded`)

    if (a.export !== undefined && !isPackageName(a.export)) throw new CliError(`--export: the package name must end in .tar or .tar.zst: ${a.export}`, EXIT.usage)
    const audit = prepareAudit(a) // an unreadable signing key stops the freeze before any work
    const gh = await githubTarget({ ...a, source }) // so does --github-release without a token or a tag at HEAD
    let exported: { snapshot: Snapshot; result: ExportResult } | null = null

    let op: RunningOperation | null = null
    if (!dryRun) op = new Operations(cacheDir(a)).start('freeze', process.argv.slice(2), process.cwd(), process.env.COLDSTORE_RESUME_OF || undefined)
    const progress = new Progress(a)
    let result: FreezeResult
    let created: 'created' | 'scratch' | null = null
    try {
      const dest = await openDestination(a, a.destination, dryRun, progress)
      created = dest.created
      try {
        if (created === 'created' && !a.quiet) err(`created encrypted repository at ${describeRemoteUrl(url)}`)
        if (op && op.record.attempts > 1) {
          // Resuming: packs the interrupted run stored but did not live to record are taken up, not stored again
          // (a cache that saw the interrupted run does it in the backup itself; this also covers another cache).
          const adopted = await adoptUnindexedPacks(dest.repo)
          if (adopted.packs && !a.quiet) err(`resume: reusing ${adopted.packs} packs (${formatBytes(adopted.bytes)}) the interrupted run stored but had not recorded`)
        }
        result = await freeze(dest.repo, {
          source, event, compliance, retentionYears, legalHold, git,
          includeEnvironment: a['include-environment'] ?? defaults.include_environment ?? false,
          includeSetupDocs: a['include-setup-docs'] ?? defaults.include_setup_docs ?? false,
          includeReports: a['include-reports'] ?? defaults.include_reports ?? false,
          gitignore, excludes, configFiles,
          destination: localOrUrl(url),
          nodeVersion: process.version,
          ...who(),
          program: PROGRAM,
          now: () => new Date(),
          dryRun,
          onProgress: (p) => {
            op?.progress(p)
            if (!a.quiet) progress.counts(p)
          },
          onWarning: (w: BackupWarning) => {
            progress.done()
            if (!a.quiet) err(`warning: ${printable(w.path)}: ${w.message}`)
          },
        })
        if (result.adopted.packs && !a.quiet) err(`reused ${result.adopted.packs} packs (${formatBytes(result.adopted.bytes)}) an interrupted run had stored but not recorded`)
        if (!dryRun) {
          const st = result.snapshot.stats
          await audit.record(dest.repo, {
            operation: 'freeze', snapshotId: result.id,
            summary: { event: result.meta.event, files: st.files, bytes: st.bytes, new_bytes: st.new_raw_bytes ?? 0, manifest_digest: result.meta.verification.manifest_digest },
          })
          const output = a.export ?? (gh ? `coldstore-${result.id!.slice(0, 8)}.tar.zst` : null)
          if (output) {
            const snapshot = await findSnapshot(dest.repo, result.id!)
            progress.line(`exporting to ${output}`, true)
            const r = await exportSnapshot(dest.repo, { snapshot, output, program: PROGRAM, now: () => new Date(), extra: { repository: dest.repo.config.id } })
            exported = { snapshot, result: r }
          }
        }
      } finally {
        progress.done()
        await closeRepository(dest.repo)
        dest.cleanup()
      }
    } catch (e) {
      op?.fail((e as Error).message)
      throw e
    }
    const s = result.snapshot.stats
    const failed = result.warnings.filter((w) => w.kind !== 'changed')
    const m = result.meta
    // What a dry run predicts and the real run reports, field for field.
    const report = {
      files: s.files, dirs: s.dirs, bytes: s.bytes, new_files: s.new_files, changed_files: s.changed_files, unchanged_files: s.unchanged_files,
      new_blobs: s.new_chunks, new_bytes: s.new_raw_bytes ?? 0, new_stored_bytes: s.new_stored_bytes ?? 0,
    }
    op?.finish({ freeze: result.id })
    let published: { verification: PackageReport; release: GithubReleaseResult | null } | null = null
    if (gh && exported) published = await verifyAndPublish(a, gh, exported.result.output, exported.snapshot, exported.result)
    if (a.json) {
      printJson({
        id: result.id,
        short_id: result.id?.slice(0, 8) ?? null,
        dry_run: result.dryRun,
        exact: created !== 'scratch',
        operation: op?.id ?? null,
        repository_created: created === 'created',
        time: result.snapshot.time,
        source: m.source.path,
        destination: localOrUrl(url),
        event: m.event,
        report,
        written_bytes: s.added_bytes,
        manifest_digest: m.verification.manifest_digest,
        git: m.git ? { commit: m.git.commit, branch: m.git.branch, tags: m.git.tags, dirty: m.git.dirty } : null,
        immutability: m.immutability ? { ...m.immutability, protected_objects: result.protectedObjects } : null,
        generated: m.generated,
        warnings: result.warnings,
        errors: failed.map((w) => ({ path: w.path, message: w.message })),
        export: exported ? { output: exported.result.output, files: exported.result.files, bytes: exported.result.bytes, package_bytes: exported.result.package_bytes, manifest_blake3: exported.result.manifest_blake3 } : null,
        github_release: published?.release ?? null,
      })
    } else {
      const head = result.dryRun ? `dry run: ${eventLabel(m.event)} would store` : `freeze ${result.id!.slice(0, 8)} saved (${eventLabel(m.event)}):`
      out(`${head} ${s.files} files, ${s.dirs} dirs, ${formatBytes(s.bytes)}`)
      out(`  files: ${s.new_files} new, ${s.changed_files} changed, ${s.unchanged_files} unchanged`)
      out(`  ${result.dryRun ? 'would be new' : 'new'} in the repository after deduplication: ${formatBytes(report.new_bytes)} (${report.new_bytes} bytes) in ${report.new_blobs} blobs, ${formatBytes(report.new_stored_bytes)} (${report.new_stored_bytes} bytes) compressed and sealed`)
      if (!result.dryRun) out(`  wrote ${formatBytes(s.added_bytes)} (packs and index)${report.new_blobs === 0 ? ': nothing new, everything was already stored' : ''}`)
      if (created === 'scratch') out('  (no repository there yet: predicted against an empty repository; chunk boundaries depend on its new key, so counts of shared chunks are estimates)')
      out(`  manifest digest: ${m.verification.manifest_digest} (${m.verification.manifest_files} files)`)
      if (m.git) out(`  git: ${m.git.commit ? m.git.commit.slice(0, 12) : 'no commits'}${m.git.branch ? ` on ${m.git.branch}` : ' (detached)'}${m.git.tags.length ? `, tags ${m.git.tags.join(', ')}` : ''}, ${m.git.dirty ? `dirty (${m.git.dirty_files.length} files)` : 'clean'}`)
      if (m.immutability) {
        const im = m.immutability
        const what = [im.retention_years ? `retention until ${im.retain_until!.slice(0, 10)}` : null, im.legal_hold ? 'legal hold' : null].filter(Boolean).join(', ')
        out(`  immutability: ${what}: ${im.enforced ? `${result.dryRun ? 'will be ' : ''}enforced (${im.mechanism}${result.dryRun ? '' : `, ${result.protectedObjects} objects`})` : `NOT ENFORCED: ${im.note}`}`)
      }
      if (m.generated) out(`  added ${m.generated.folder}/: ${m.generated.files.join(', ')}`)
      if (exported) out(`  exported to ${exported.result.output} (${formatBytes(exported.result.package_bytes)}; MANIFEST.b3 blake3 ${exported.result.manifest_blake3})`)
      if (published?.release) out(`  GitHub release ${published.release.tag} ${published.release.created ? 'created' : 'updated'}: ${published.release.assets.map((x) => x.name).join(', ')}`)
      if (op) out(`  operation ${op.id}`)
      if (failed.length) out(`  ${failed.length} entries could not be read (see warnings above)`)
    }
    if (failed.length) process.exitCode = EXIT.partial
  },
}
