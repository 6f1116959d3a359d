import { lstat } from 'node:fs/promises'
import { basename, resolve } from 'node:path'
import { stringify as toYaml } from 'yaml'
import { backup, type BackupProgress, type BackupResult, type BackupWarning, type GeneratedFolder } from '../backup/index.js'
import { UsageError } from '../errors.js'
import type { Repository } from '../repo/index.js'
import type { ComplianceTemplate, FreezeField } from './compliance.js'
import { captureEnvironment, isLockFile, type EnvironmentInfo } from './environment.js'
import type { GitState } from './git.js'
import { b3sumList, canonicalManifest, manifestDigest, type ManifestEntry } from './manifest.js'
import { protectFreeze } from './protect.js'

/** Name of the top-level folder of generated files (SETUP.md, reports) in a freeze. */
export const FREEZE_INFO_FOLDER = 'coldstore-freeze'

/** What the freeze captures: the event. */
export interface FreezeEvent {
  type: 'milestone' | 'handoff' | 'audit' | 'deliverable' | 'capture'
  /** Milestone or hand-off name, deliverable id, or null. */
  name: string | null
  deliverable: string | null
  description: string | null
  contact: string | null
}

/** Retention and legal hold of a freeze, and what the destination enforces. */
export interface FreezeImmutability {
  retention_years: number | null
  /** `time` + retention_years (null without a retention period). */
  retain_until: string | null
  legal_hold: boolean
  /** True when the destination enforces it; false when it cannot (stated, never implied). */
  enforced: boolean
  mechanism: string | null
  where: string
  note: string
}

/** The metadata of a freeze, stored as the snapshot object's `meta` (FORMAT.md, "Freeze metadata"). */
export interface FreezeMeta {
  freeze_version: 1
  event: FreezeEvent
  source: { path: string; name: string }
  selection: { gitignore: boolean; excludes: string[]; config_files: string[] }
  compliance: { template: string; title: string; retention_years: number; requires: FreezeField[] } | null
  immutability: FreezeImmutability | null
  git: GitState | null
  environment: EnvironmentInfo | null
  verification: { manifest_digest: string; manifest_files: number; manifest_bytes: number; algorithm: string }
  /** The generated folder and its files, when the freeze holds one. */
  generated: { folder: string; files: string[] } | null
}

export interface FreezeOptions {
  source: string
  event: FreezeEvent
  compliance: ComplianceTemplate | null
  retentionYears: number | null
  legalHold: boolean
  /** Git state (captured by the caller with captureGit), or null. */
  git: GitState | null
  includeEnvironment: boolean
  includeSetupDocs: boolean
  includeReports: boolean
  gitignore: boolean
  excludes: readonly string[]
  configFiles: readonly string[]
  /** The destination as shown to people (no credentials), for SETUP.md. */
  destination: string
  /** This process's Node.js version (the engine does not read its own process). */
  nodeVersion: string
  hostname: string
  username: string
  program: string
  now: () => Date
  dryRun?: boolean
  workers?: number
  onProgress?: (p: BackupProgress) => void
  onWarning?: (w: BackupWarning) => void
}

export interface FreezeResult extends BackupResult {
  meta: FreezeMeta
  /** Objects made immutable (none in a dry run or when nothing is enforced). */
  protectedObjects: number
}

/** Throws UsageError naming the first field the template requires that is missing. */
export function checkRequiredFields(t: ComplianceTemplate, have: Partial<Record<FreezeField, unknown>>): void {
  for (const f of t.requires) {
    const v = have[f]
    if (v === undefined || v === null || v === '' || v === false) {
      const flag = `--${f.replace(/_/g, '-')}`
      throw new UsageError(`compliance template ${t.name} requires ${f}: give ${flag}${f === 'legal_hold' ? '' : ' ...'}`)
    }
  }
}

/** Adds `years` calendar years to `d` (UTC). */
export function addYears(d: Date, years: number): Date {
  const r = new Date(d.getTime())
  r.setUTCFullYear(r.getUTCFullYear() + years)
  return r
}

/**
 * Freezes `source` into the repository: a snapshot object of kind `freeze`
 * written by the normal backup (so it deduplicates with everything stored),
 * with the event, git, environment, compliance and verification metadata;
 * then, with a retention period or legal hold, makes the objects it needs
 * immutable where the remote can.
 */
export async function freeze(repo: Repository, o: FreezeOptions): Promise<FreezeResult> {
  const abs = resolve(o.source)
  let st
  try {
    st = await lstat(abs, { bigint: true })
  } catch (err) {
    throw new UsageError(`cannot read source ${o.source}: ${(err as Error).message}`, { cause: err })
  }
  if (!st.isDirectory()) throw new UsageError(`the source of a freeze must be a folder: ${o.source}`)
  const name = abs === '/' ? 'ROOT' : basename(abs)
  if (name === FREEZE_INFO_FOLDER) throw new UsageError(`a source named ${FREEZE_INFO_FOLDER} clashes with the freeze's generated folder: freeze its parent or rename it`)
  const prefix = Buffer.from(abs === '/' ? '' : abs)
  const nameBytes = Buffer.from(name)
  const entries: ManifestEntry[] = []
  const lockFiles: EnvironmentInfo['lock_files'] = []
  const onFile = (fileAbs: Buffer, node: { name: Buffer; size?: number; blake3?: string }): void => {
    const path = Buffer.concat([nameBytes, fileAbs.subarray(prefix.length)])
    entries.push({ path, blake3: node.blake3!, size: node.size! })
    const n = node.name.toString()
    if (isLockFile(n)) lockFiles.push({ path: path.toString(), blake3: node.blake3!, size: node.size! })
  }
  const retentionYears = o.retentionYears ?? o.compliance?.retentionYears ?? null
  const legalHold = o.legalHold || (o.compliance?.legalHold ?? false)
  const wantsImmutability = (retentionYears !== null && retentionYears > 0) || legalHold
  const protection = repo.remote.protection
  const started = o.now()
  let meta: FreezeMeta | null = null

  const beforeRoot = async (): Promise<{ folders: GeneratedFolder[]; meta: Record<string, unknown> }> => {
    const files = entries.length
    const bytes = entries.reduce((s, e) => s + e.size, 0)
    const environment = o.includeEnvironment ? await captureEnvironment(o.nodeVersion, lockFiles) : null
    const m: FreezeMeta = {
      freeze_version: 1,
      event: o.event,
      source: { path: abs, name },
      selection: { gitignore: o.gitignore, excludes: [...o.excludes], config_files: [...o.configFiles] },
      compliance: o.compliance ? { template: o.compliance.name, title: o.compliance.title, retention_years: o.compliance.retentionYears, requires: o.compliance.requires } : null,
      immutability: wantsImmutability
        ? {
            retention_years: retentionYears && retentionYears > 0 ? retentionYears : null,
            retain_until: retentionYears && retentionYears > 0 ? addYears(started, retentionYears).toISOString() : null,
            legal_hold: legalHold,
            enforced: Boolean(protection),
            mechanism: protection?.mechanism ?? null,
            where: repo.remote.properties.location,
            note: protection
              ? 'the freeze\'s snapshot object and the packs and index objects it needs are protected; coldstore never removes them while the retention or hold is in force (the owner of the storage may still be able to)'
              : (repo.remote.properties.immutabilityNote ?? 'this remote cannot enforce retention or legal hold: nothing stops the objects from being deleted there'),
          }
        : null,
      git: o.git,
      environment,
      verification: {
        manifest_digest: manifestDigest(entries),
        manifest_files: files,
        manifest_bytes: bytes,
        algorithm: 'BLAKE3 of the canonical manifest: one line "<path>\\t<blake3>\\t<size>\\n" per regular file under the source folder, sorted by path bytes (FORMAT.md)',
      },
      generated: null,
    }
    const folder: { name: string; content: Buffer }[] = []
    if (o.includeSetupDocs) folder.push({ name: 'SETUP.md', content: Buffer.from(setupDoc(m, o.destination)) })
    if (o.includeReports) {
      folder.push({ name: 'freeze.yaml', content: Buffer.from(inFreezeMetadata(m)) })
      folder.push({ name: 'manifest.tsv', content: canonicalManifest(entries) })
      folder.push({ name: 'files.b3', content: b3sumList(entries) })
    }
    if (folder.length) m.generated = { folder: FREEZE_INFO_FOLDER, files: folder.map((f) => f.name).sort() }
    meta = m
    return {
      folders: folder.length ? [{ name: FREEZE_INFO_FOLDER, mtimeNs: st.mtimeNs, files: folder }] : [],
      meta: m as unknown as Record<string, unknown>,
    }
  }

  const result = await backup(repo, {
    paths: [abs],
    kind: 'freeze',
    hostname: o.hostname,
    username: o.username,
    now: () => started,
    excludes: [...o.excludes, ...(o.gitignore ? ['.git'] : [])],
    gitignore: o.gitignore,
    dryRun: o.dryRun,
    program: o.program,
    workers: o.workers,
    onProgress: o.onProgress,
    onWarning: o.onWarning,
    onFile,
    beforeRoot,
    tags: o.git?.tags ?? [],
  })
  let protectedObjects = 0
  if (!result.dryRun && wantsImmutability && protection) {
    protectedObjects = await protectFreeze(repo, result.id!, result.snapshot, {
      retainUntil: retentionYears && retentionYears > 0 ? addYears(started, retentionYears) : null,
      legalHold,
    })
  }
  return { ...result, meta: meta!, protectedObjects }
}

/**
 * The metadata as written into the freeze (freeze.yaml): everything of the
 * freeze's metadata except what depends on the moment it is written (its time
 * and retain-until date are in the snapshot object), so that a dry run
 * predicts the real run's bytes exactly.
 */
function inFreezeMetadata(m: FreezeMeta): string {
  const copy = structuredClone(m)
  if (copy.immutability) (copy.immutability as Partial<FreezeImmutability>).retain_until = undefined
  return '# coldstore freeze metadata (the freeze\'s time and id are in the repository: coldstore inspect)\n' + toYaml(copy, { lineWidth: 0 })
}

function setupDoc(m: FreezeMeta, destination: string): string {
  const e = m.event
  const lines: string[] = []
  const title = e.type === 'capture' ? 'Freeze' : `Freeze: ${e.type}${e.name ? ` "${e.name}"` : ''}`
  lines.push(`# ${title}`, '')
  lines.push(`This folder was captured with coldstore from \`${m.source.path}\` into the repository at \`${destination}\`.`)
  if (e.description) lines.push('', e.description)
  lines.push('', '## Contacts', '', e.contact ? `- ${e.contact}` : '- none given')
  lines.push('', '## Restore', '', '```sh', `coldstore snapshots --repo ${destination}        # the freeze is listed with kind "freeze"`,
    `coldstore restore <freeze id> --repo ${destination} --target ./restored`, '```',
    '', 'The password of the repository comes from COLDSTORE_PASSWORD, COLDSTORE_PASSWORD_FILE or --password-file;',
    'it is not stored anywhere in the repository.')
  lines.push('', '## Verify', '', '```sh', `coldstore verify <freeze id> --repo ${destination}   # re-reads every file and checks its BLAKE3`,
    `coldstore inspect <freeze id> --repo ${destination}  # event, git state, environment, immutability`, '```', '',
    `Manifest digest: \`${m.verification.manifest_digest}\` (${m.verification.manifest_files} files, ${m.verification.manifest_bytes} bytes).`,
    'It is the BLAKE3 of the canonical list of `path<TAB>blake3<TAB>size` lines of every file under the source folder,',
    'sorted by path (see FORMAT.md of coldstore). Independently of coldstore, after a restore:', '', '```sh',
    'cd ./restored && b3sum --check ' + `${FREEZE_INFO_FOLDER}/files.b3    # with --include-reports`, `b3sum ${FREEZE_INFO_FOLDER}/manifest.tsv    # prints the manifest digest`, '```')
  if (m.git) {
    const g = m.git
    lines.push('', '## Git', '', `- commit: ${g.commit ?? 'none'}`, `- branch: ${g.branch ?? '(detached)'}`, `- tags at HEAD: ${g.tags.join(', ') || 'none'}`,
      `- working tree: ${g.dirty ? `dirty (${g.dirty_files.length} changed or untracked files)` : 'clean'}`)
    for (const r of g.remotes) lines.push(`- remote ${r.name}: ${r.url}`)
    if (g.last_commit) lines.push(`- last commit: ${g.last_commit.time} by ${g.last_commit.author}: ${g.last_commit.subject}`)
  }
  if (m.environment) {
    const env = m.environment
    lines.push('', '## Environment', '', `- OS: ${env.os.type} ${env.os.release} (${env.os.platform}, ${env.os.arch})`, `- CPU: ${env.cpu.model} × ${env.cpu.cores}`)
    for (const [k, v] of Object.entries(env.runtimes)) lines.push(`- ${k}: ${v}`)
    if (env.lock_files.length) {
      lines.push('', 'Lock files (BLAKE3):', '')
      for (const l of env.lock_files) lines.push(`- \`${l.path}\`: ${l.blake3}`)
    }
  }
  if (m.compliance || m.immutability) {
    lines.push('', '## Retention', '')
    if (m.compliance) lines.push(`- compliance template: ${m.compliance.template} (${m.compliance.title})`)
    if (m.immutability) {
      lines.push(`- retention: ${m.immutability.retention_years ? `${m.immutability.retention_years} years` : 'none'}; legal hold: ${m.immutability.legal_hold ? 'yes' : 'no'}`)
      lines.push(`- enforced: ${m.immutability.enforced ? `yes, ${m.immutability.mechanism}` : 'NO: ' + m.immutability.note}`)
    }
  }
  return lines.join('\n') + '\n'
}
