import type { CommandModule } from 'yargs'
import { cacheDir, formatBytes, out, printJson, type GlobalArgs } from '../common.js'
import { Operations, type OperationRecord } from '../operations.js'

interface Args extends GlobalArgs {
  all?: boolean
}

function progressText(r: OperationRecord): string {
  const p = r.progress
  if (!p) return ''
  const total = p.total_bytes ? ` of ${formatBytes(p.total_bytes)} (${((100 * p.bytes) / p.total_bytes).toFixed(0)}%)` : ''
  return `${p.files} files, ${formatBytes(p.bytes)}${total}`
}

export const statusCommand: CommandModule<GlobalArgs, Args> = {
  command: 'status',
  describe: 'show current and recent operations (freezes) on this machine',
  builder: (y) => y.option('all', { type: 'boolean', describe: 'every recorded operation, not only the 20 most recent' }) as never,
  handler: async (a) => {
    const all = new Operations(cacheDir(a)).list()
    const ops = a.all ? all : all.slice(0, 20)
    if (a.json) {
      printJson({ operations: ops })
      return
    }
    if (ops.length === 0) {
      out('no operations recorded')
      return
    }
    for (const r of ops) {
      const res = r.state === 'done' && r.result ? `  → ${Object.entries(r.result).map(([k, v]) => `${k} ${String(v).slice(0, 8)}`).join(', ')}` : ''
      out(`${r.id}  ${r.kind}  ${r.state.padEnd(11)}  started ${r.started}  ${progressText(r)}${res}`)
      out(`    coldstore ${r.argv.join(' ')}   (in ${r.cwd})`)
      if (r.state === 'interrupted' || r.state === 'failed') out(`    ${r.error ? `error: ${r.error}; ` : ''}continue with: coldstore resume ${r.id}`)
    }
  },
}
