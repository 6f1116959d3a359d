import type { CommandModule } from 'yargs'
import { TreeReader, diffTrees, findSnapshot } from '../../engine/index.js'
import { out, printJson, printable, withRepo, type GlobalArgs } from '../common.js'

interface Args extends GlobalArgs {
  a: string
  b: string
}

const MARK = { added: '+', removed: '-', modified: 'M', type: 'T', metadata: 'U' } as const

export const diffCommand: CommandModule<GlobalArgs, Args> = {
  command: 'diff <a> <b>',
  describe: 'show what changed between two snapshots',
  builder: (y) => y.positional('a', { type: 'string', demandOption: true }).positional('b', { type: 'string', demandOption: true }) as never,
  handler: async (a) => {
    const changes = await withRepo(a, async (repo) => {
      const [x, y] = [await findSnapshot(repo, a.a), await findSnapshot(repo, a.b)]
      return { x, y, list: await diffTrees(new TreeReader(repo), x.tree, y.tree) }
    })
    const counts = { added: 0, removed: 0, modified: 0, type: 0, metadata: 0 }
    for (const c of changes.list) counts[c.change]++
    if (a.json) {
      printJson({ a: changes.x.id, b: changes.y.id, changes: changes.list, counts })
      return
    }
    for (const c of changes.list) out(`${MARK[c.change]}  ${printable(c.path)}${c.type === 'dir' ? '/' : ''}`)
    out(`${counts.added} added, ${counts.removed} removed, ${counts.modified} modified, ${counts.metadata} metadata only, ${counts.type} changed type`)
  },
}
