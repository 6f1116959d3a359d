import type { CommandModule } from 'yargs'
import { existsSync, statSync } from 'node:fs'
import { findSnapshot, isPackageName, planRestore, verify, verifyFreeze, verifyPackage, type FreezeVerification, type VerifyReport } from '../../engine/index.js'
import { prepareAudit } from '../audit-hook.js'
import { CliError, EXIT, Progress, formatBytes, out, printJson, printable, withRepo, type GlobalArgs } from '../common.js'
import { ensureReadable, retrievalOptionsSpec, type RetrievalArgs } from '../retrieval.js'

interface Args extends RetrievalArgs {
  snap?: string
  'read-data'?: boolean
  'read-data-subset'?: string
  job?: string
}

/** "10%" → 0.1 */
function parseSubset(s: string): number {
  const m = /^(\d+(?:\.\d+)?)%$/.exec(s.trim())
  if (!m || Number(m[1]) <= 0 || Number(m[1]) > 100) throw new CliError(`--read-data-subset takes a percentage like 10%, got ${JSON.stringify(s)}`, EXIT.usage)
  return Number(m[1]) / 100
}

export const verifyCommand: CommandModule<GlobalArgs, Args> = {
  command: 'verify [snap]',
  aliases: ['check'],
  describe: 'check that the repository (or one snapshot) is intact',
  builder: (y) =>
    y
      .positional('snap', { type: 'string', describe: 'check only this snapshot\'s trees; or an export package FILE.tar[.zst] to check against its manifests' })
      .option('read-data', { type: 'boolean', default: false, describe: 'read and check every pack' })
      .option('read-data-subset', { type: 'string', describe: 'read and check a random share of packs, e.g. 10%' })
      .option('job', { type: 'string' })
      .options(retrievalOptionsSpec) as never,
  handler: async (a) => {
    const readData = a['read-data'] ? 1 : a['read-data-subset'] ? parseSubset(a['read-data-subset']) : 0
    if (a.snap && isPackageName(a.snap)) {
      if (!existsSync(a.snap) || !statSync(a.snap).isFile()) throw new CliError(`${a.snap}: no such package file`, EXIT.usage)
      return verifyPackageFile(a, a.snap)
    }
    const audit = prepareAudit(a)
    let location = ''
    let retrieval: Record<string, unknown> | null = null
    const { report, freeze } = await withRepo(a, async (repo): Promise<{ report: VerifyReport; freeze: FreezeVerification | null }> => {
      location = repo.remote.properties.location
      const snapshots = a.snap ? [await findSnapshot(repo, a.snap, { job: a.job })] : undefined
      const progress = new Progress(a)
      try {
        const beforeReadData = repo.remote.archive
          ? async (packs: ReadonlyMap<string, number>): Promise<boolean> => {
            const r = await ensureReadable(repo, a, packs, { command: 'verify', printJson: false })
            if (!r.ready) retrieval = r.doc
            return r.ready
          }
          : undefined
        const report = await verify(repo, { snapshots, readData, beforeReadData, onProgress: (p) => progress.line(`verify: ${p.phase} ${p.done}${p.total ? `/${p.total}` : ''}`) })
        // A freeze gets its verification report: every file re-read and checked, and the manifest digest.
        // Only when the structure is sound: the report reads through the index, which a damaged repository may lack.
        let freeze: FreezeVerification | null = null
        if (snapshots?.[0]?.kind === 'freeze' && report.ok) {
          await repo.syncIndex()
          // It re-reads every file: in archive storage, only once the freeze's packs are retrieved.
          if (repo.remote.archive && !retrieval) {
            const plan = await planRestore(repo, { snapshot: snapshots[0], target: '/' })
            const r = await ensureReadable(repo, a, plan.dataPacks, { command: 'verify', printJson: false })
            if (!r.ready) retrieval = r.doc
          }
        }
        if (snapshots?.[0]?.kind === 'freeze' && report.ok && !retrieval) {
          freeze = await verifyFreeze(repo, snapshots[0], { now: () => new Date(), onProgress: (p) => progress.line(`verify: files ${p.files}, ${formatBytes(p.bytes)}`) })
        }
        await audit.record(repo, {
          operation: 'verify', snapshotId: snapshots?.[0].id ?? null,
          summary: {
            ok: report.ok && (freeze?.ok ?? true), errors: report.findings.filter((x) => x.severity === 'error').length, warnings: report.findings.filter((x) => x.severity === 'warning').length,
            read_data: readData, snapshots: report.stats.snapshots, packs_read: report.stats.packs_read, ...(freeze ? { freeze_files_checked: freeze.files.checked, freeze_files_failed: freeze.files.failed } : {}),
          },
        })
        return { report, freeze }
      } finally {
        progress.done()
      }
    }, { syncIndex: false }) // reads index objects itself: works when one is damaged
    if (a.json) {
      printJson({ ...(freeze ? { ...report, ok: report.ok && freeze.ok, freeze } : report), ...(retrieval ?? {}) })
    } else if (freeze) {
      printFreezeReport(freeze, report, location)
    } else {
      for (const f of report.findings) {
        out(`${f.severity}: ${f.kind}: ${f.message}`)
        for (const file of f.files ?? []) out(`    affects ${printable(file)}`)
      }
      const s = report.stats
      out(`${report.ok ? 'no errors' : `${report.findings.filter((f) => f.severity === 'error').length} errors`}: checked ${s.snapshots} snapshots, ${s.trees} trees, ${s.blobs} blobs, ${s.packs} packs${readData ? `; read ${s.packs_read} packs (${formatBytes(s.bytes_read)})` : ''}`)
    }
    if (!report.ok || (freeze && !freeze.ok)) process.exitCode = EXIT.failure
    else if (retrieval) process.exitCode = EXIT.archived
  },
}

/** The verification report of a freeze, for people (and to attach to a submission). */
function printFreezeReport(f: FreezeVerification, r: VerifyReport, location: string): void {
  const e = f.event
  out('coldstore freeze verification report')
  out('')
  out(`freeze:           ${f.snapshot}`)
  if (e) out(`event:            ${e.type}${e.name ? ` "${e.name}"` : ''}${e.contact ? ` (contact ${e.contact})` : ''}`)
  out(`frozen at:        ${f.time}`)
  out(`checked at:       ${f.checked_at}`)
  out(`repository:       ${location}`)
  out('checks:')
  for (const c of f.checks) out(`  - ${c}`)
  out(`structure:        ${r.ok ? 'no errors' : 'ERRORS'} (${r.stats.trees} trees, ${r.stats.packs} packs checked)`)
  for (const x of r.findings) out(`  ${x.severity}: ${x.kind}: ${x.message}`)
  out(`files:            ${f.files.checked} re-read (${formatBytes(f.files.bytes)}), ${f.files.ok} match their BLAKE3, ${f.files.failed} do not`)
  for (const p of f.problems) out(`  FAILED ${p.path}: ${p.problem}: ${p.message}${p.expected ? ` (expected ${p.expected}, got ${p.actual ?? 'nothing'})` : ''}`)
  out(`manifest digest:  ${f.manifest.computed_digest} (recomputed from the tree: ${f.manifest.files} files, ${formatBytes(f.manifest.bytes)})`)
  if (f.manifest.recorded_digest !== null) out(`                  ${f.manifest.recorded_digest} (recorded at freeze time): ${f.manifest.match ? 'match' : 'MISMATCH'}`)
  out(`result:           ${f.ok && r.ok ? 'PASS' : 'FAIL'}`)
}

/** `verify FILE.tar[.zst]`: checks an export package against its manifests (no repository needed). */
async function verifyPackageFile(a: Args, path: string): Promise<void> {
  const progress = new Progress(a)
  let report
  try {
    report = await verifyPackage(path, (p) => progress.line(`verify: ${p.files} files, ${formatBytes(p.bytes)}`))
  } finally {
    progress.done()
  }
  if (a.json) {
    printJson(report)
  } else {
    for (const p of report.problems) out(`error: ${p.kind}: ${p.message}`)
    out(`${report.ok ? 'package intact' : `${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}`}: ${report.files} files, ${formatBytes(report.bytes)} checked against MANIFEST.b3 (${report.checked_blake3}) and SHA256SUMS (${report.checked_sha256})${report.manifest_blake3 ? `; MANIFEST.b3 blake3 ${report.manifest_blake3}` : ''}`)
  }
  if (!report.ok) process.exitCode = EXIT.failure
}
