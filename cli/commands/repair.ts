import type { CommandModule } from 'yargs'
import { repairIndex } from '../../engine/index.js'
import { Progress, out, printJson, withRepo, type GlobalArgs } from '../common.js'

export const repairCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'repair <what>',
  describe: 'repair the repository: "index" rebuilds the index from pack headers',
  builder: (y) => y.positional('what', { type: 'string', choices: ['index'], demandOption: true }) as never,
  handler: async (a) => {
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
  },
}
