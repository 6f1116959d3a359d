import type { CommandModule } from 'yargs'
import { existsSync, statSync } from 'node:fs'
import { findSnapshot, isPackageName, verify, verifyPackage } from '../../engine/index.js'
import { prepareAudit } from '../audit-hook.js'
import { CliError, EXIT, Progress, formatBytes, out, printJson, withRepo, type GlobalArgs } from '../common.js'

interface Args extends GlobalArgs {
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
      .option('job', { type: 'string' }) as never,
  handler: async (a) => {
    if (a.snap && isPackageName(a.snap)) {
      if (!existsSync(a.snap) || !statSync(a.snap).isFile()) throw new CliError(`${a.snap}: no such package file`, EXIT.usage)
      return verifyPackageFile(a, a.snap)
    }
    const audit = prepareAudit(a)
    const readData = a['read-data'] ? 1 : a['read-data-subset'] ? parseSubset(a['read-data-subset']) : 0
    const report = await withRepo(a, async (repo) => {
      const snapshots = a.snap ? [await findSnapshot(repo, a.snap, { job: a.job })] : undefined
      const progress = new Progress(a)
      let r
      try {
        r = await verify(repo, { snapshots, readData, onProgress: (p) => progress.line(`verify: ${p.phase} ${p.done}${p.total ? `/${p.total}` : ''}`) })
      } finally {
        progress.done()
      }
      await audit.record(repo, {
        operation: 'verify', snapshotId: snapshots?.[0].id ?? null,
        summary: { ok: r.ok, errors: r.findings.filter((f) => f.severity === 'error').length, warnings: r.findings.filter((f) => f.severity === 'warning').length, read_data: readData, snapshots: r.stats.snapshots, packs_read: r.stats.packs_read },
      })
      return r
    }, { syncIndex: false }) // reads index objects itself: works when one is damaged
    if (a.json) {
      printJson(report)
    } else {
      for (const f of report.findings) {
        out(`${f.severity}: ${f.kind}: ${f.message}`)
        for (const file of f.files ?? []) out(`    affects ${file}`)
      }
      const s = report.stats
      out(`${report.ok ? 'no errors' : `${report.findings.filter((f) => f.severity === 'error').length} errors`}: checked ${s.snapshots} snapshots, ${s.trees} trees, ${s.blobs} blobs, ${s.packs} packs${readData ? `; read ${s.packs_read} packs (${formatBytes(s.bytes_read)})` : ''}`)
    }
    if (!report.ok) process.exitCode = EXIT.failure
  },
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
