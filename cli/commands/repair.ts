import type { CommandModule } from 'yargs'
import { findSnapshot, repairIndex, repairSnapshots, type Snapshot, type SnapshotRepairReport } from '../../engine/index.js'
import { prepareAudit } from '../audit-hook.js'
import { CliError, EXIT, PROGRAM, Progress, formatBytes, out, printJson, printable, who, withRepo, type GlobalArgs } from '../common.js'

interface Args extends GlobalArgs {
  what: string
  snapshots?: string[]
  'dry-run'?: boolean
}

function exclusionPath(e: SnapshotRepairReport['excluded'][number]): string {
  return e.path !== undefined ? printable(e.path) : printable(Buffer.from(e.path_b64 ?? '', 'base64'))
}

export const repairCommand: CommandModule<GlobalArgs, Args> = {
  command: 'repair <what> [snapshots..]',
  describe: 'repair the repository: "index" rebuilds the index from pack headers; "snapshots" writes new snapshots without the files whose data cannot be read',
  builder: (y) =>
    y
      .positional('what', { type: 'string', choices: ['index', 'snapshots'], demandOption: true })
      .positional('snapshots', { type: 'string', array: true, describe: 'with "snapshots": the snapshots to repair (default: all)' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'with "snapshots": check and report, write nothing' }) as never,
  handler: async (a) => {
    if (a.what === 'index') return repairIndexCommand(a)
    return repairSnapshotsCommand(a)
  },
}

async function repairIndexCommand(a: Args): Promise<void> {
  if (a.snapshots?.length) throw new CliError('repair index takes no snapshots', EXIT.usage)
  if (a['dry-run']) throw new CliError('repair index has no --dry-run', EXIT.usage)
  const r = await withRepo(a, async (repo) => {
    const progress = new Progress(a)
    try {
      return await repairIndex(repo, { onProgress: (p) => progress.line(`reading pack headers ${p.done}/${p.total}`) })
    } finally {
      progress.done()
    }
  }, { syncIndex: false }) // reads index objects itself: works when one is damaged
  if (a.json) printJson(r)
  else {
    out(`rebuilt the index: ${r.packs} packs, ${r.blobs} blobs; wrote ${r.written.length} index objects, removed ${r.removed.length}`)
    for (const u of r.unreadable) out(`  unreadable pack ${u.packId}: ${u.message}`)
  }
  if (r.unreadable.length) process.exitCode = 1
}

async function repairSnapshotsCommand(a: Args): Promise<void> {
  const audit = prepareAudit(a)
  const dryRun = Boolean(a['dry-run'])
  const r = await withRepo(a, async (repo) => {
    let snapshots: Snapshot[] | undefined
    if (a.snapshots?.length) {
      snapshots = []
      for (const ref of a.snapshots) snapshots.push(await findSnapshot(repo, ref))
    }
    const progress = new Progress(a)
    let result
    try {
      result = await repairSnapshots(repo, {
        snapshots, dryRun, program: PROGRAM, ...who(), now: () => new Date(),
        onProgress: (p) => progress.line(`checking snapshots ${p.snapshots}/${p.total}, ${p.blobs} blobs read`),
      })
    } finally {
      progress.done()
    }
    // A repaired snapshot is a snapshot written: recorded like one, or audit --verify reports it as unrecorded.
    for (const s of result.snapshots) {
      if (s.state === 'repaired' && s.repairedId) {
        await audit.record(repo, { operation: 'snapshot', snapshotId: s.repairedId, summary: { repair_of: s.id, excluded: s.excludedCount, files: s.files, bytes: s.bytes } })
      }
    }
    return result
  })
  if (a.json) {
    printJson({
      dry_run: r.dryRun,
      snapshots: r.snapshots.map((s) => ({
        id: s.id, short_id: s.id.slice(0, 8), state: s.state, repaired_id: s.repairedId, files: s.files, bytes: s.bytes,
        excluded_count: s.excludedCount, excluded: s.excluded,
      })),
      damaged_snapshot_objects: r.damagedObjects, blobs_checked: r.blobsChecked, trees_written: r.treesWritten, written_bytes: r.bytesWritten,
    })
  } else {
    for (const s of r.snapshots) {
      const short = s.id.slice(0, 8)
      if (s.state === 'intact') out(`snapshot ${short}: intact`)
      else if (s.state === 'unrepairable') out(`snapshot ${short}: cannot be repaired: its root folder listing cannot be read (blob ${s.excluded[0]?.blob ?? '?'})`)
      else {
        const head = s.state === 'already_repaired'
          ? `snapshot ${short}: already repaired as ${s.repairedId!.slice(0, 8)}`
          : r.dryRun ? `snapshot ${short}: would be repaired` : `snapshot ${short}: repaired as ${s.repairedId!.slice(0, 8)} (tagged repaired; ${short} is left as it was)`
        out(`${head}: ${s.excludedCount} entries left out, ${s.files} files (${formatBytes(s.bytes)}) kept`)
        for (const e of s.excluded) out(`  left out ${e.type === 'dir' ? 'folder' : 'file'} ${exclusionPath(e)}: ${e.reason.replace('_', ' ')} ${e.blob.slice(0, 16)}`)
        if (s.excludedCount > s.excluded.length) out(`  … and ${s.excludedCount - s.excluded.length} more`)
      }
    }
    for (const id of r.damagedObjects) out(`snapshot object snapshots/${id} is damaged: it cannot be read, so there is nothing to repair it from`)
    const repaired = r.snapshots.filter((s) => s.state === 'repaired').length
    out(`${r.snapshots.length} snapshots checked (${r.blobsChecked} blobs read): ${repaired} ${r.dryRun ? 'would be repaired' : 'repaired'}${r.dryRun ? '' : `, ${r.treesWritten} folder listings written (${formatBytes(r.bytesWritten)})`}`)
  }
  if (r.snapshots.some((s) => s.state === 'unrepairable') || r.damagedObjects.length) process.exitCode = EXIT.failure
}
