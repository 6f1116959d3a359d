import type { CommandModule } from 'yargs'
import { TreeReader, displayName, findSnapshot, splitPath, type TreeNode } from '../../engine/index.js'
import { LineWriter, formatBytes, parseSnapRef, printable, withRepo, type GlobalArgs } from '../common.js'

interface Args extends GlobalArgs {
  ref: string
  recursive?: boolean
  job?: string
  long?: boolean
}

const TYPE_CHAR: Record<TreeNode['type'], string> = { file: '-', dir: 'd', symlink: 'l', fifo: 'p', socket: 's', chardev: 'c', blockdev: 'b' }

function modeString(n: TreeNode): string {
  const m = n.mode
  const rwx = (b: number, s: boolean, sc: string): string => `${b & 4 ? 'r' : '-'}${b & 2 ? 'w' : '-'}${s ? (b & 1 ? sc : sc.toUpperCase()) : b & 1 ? 'x' : '-'}`
  return TYPE_CHAR[n.type] + rwx((m >> 6) & 7, (m & 0o4000) !== 0, 's') + rwx((m >> 3) & 7, (m & 0o2000) !== 0, 's') + rwx(m & 7, (m & 0o1000) !== 0, 't')
}

function nodeJson(path: Buffer, n: TreeNode): Record<string, unknown> {
  const utf8 = Buffer.from(path.toString('utf8')).equals(path)
  return {
    path: utf8 ? path.toString('utf8') : displayName(path),
    ...(utf8 ? {} : { path_b64: path.toString('base64') }),
    name: displayName(n.name),
    type: n.type,
    mode: n.mode,
    mode_string: modeString(n),
    uid: n.uid,
    gid: n.gid,
    mtime: new Date(Number(n.mtimeNs / 1000000n)).toISOString(),
    mtime_ns: n.mtimeNs.toString(),
    ...(n.size !== undefined ? { size: n.size } : {}),
    ...(n.blake3 ? { blake3: n.blake3 } : {}),
    ...(n.target ? { target: displayName(n.target) } : {}),
    ...(n.links ? { links: n.links } : {}),
    ...(n.sparse ? { sparse: true } : {}),
  }
}

export const lsCommand: CommandModule<GlobalArgs, Args> = {
  command: 'ls <ref>',
  describe: 'list the files of a snapshot (<snap>[:<path>])',
  builder: (y) =>
    y
      .positional('ref', { type: 'string', demandOption: true, describe: 'snapshot id, prefix or "latest", optionally :path' })
      .option('recursive', { type: 'boolean', default: false, describe: 'list subfolders too' })
      .option('long', { alias: 'l', type: 'boolean', default: false, describe: 'show mode, size and time' })
      .option('job', { type: 'string', describe: 'with "latest": the latest of this job' }) as never,
  handler: async (a) => {
    const { snap, path } = parseSnapRef(a.ref)
    // Entries are printed as the trees are read, never collected: a snapshot of a million files lists in constant memory.
    // --json prints one array, one entry per line.
    const w = new LineWriter()
    let count = 0
    const emit = async (p: Buffer, n: TreeNode): Promise<void> => {
      if (a.json) {
        await w.line((count++ === 0 ? '[' : ',') + JSON.stringify(nodeJson(p, n)))
        return
      }
      // One entry per line, whatever the name holds (control characters, newlines, bytes that are not UTF-8).
      const name = printable(p) + (n.type === 'dir' ? '/' : '') + (n.type === 'symlink' && n.target ? ` -> ${printable(n.target)}` : '')
      if (a.long) {
        const time = new Date(Number(n.mtimeNs / 1000000n)).toISOString().replace('T', ' ').slice(0, 19)
        await w.line(`${modeString(n)} ${String(n.uid).padStart(5)} ${String(n.gid).padStart(5)} ${(n.size !== undefined ? formatBytes(n.size) : '').padStart(10)}  ${time}  ${name}`)
      } else {
        await w.line(name)
      }
    }
    await withRepo(a, async (repo) => {
      const s = await findSnapshot(repo, snap, { job: a.job })
      const trees = new TreeReader(repo)
      const parts = splitPath(path)
      const node = await trees.resolve(s.tree, path)
      const prefix = Buffer.from(parts.map((p) => p.toString('latin1')).join('/'), 'latin1')
      if (node.type !== 'dir') {
        await emit(prefix, node)
      } else if (a.recursive) {
        for await (const [p, n] of trees.walk(node.subtree!, prefix)) await emit(p, n)
      } else {
        for (const n of await trees.load(node.subtree!)) await emit(prefix.length ? Buffer.concat([prefix, Buffer.from('/'), n.name]) : n.name, n)
      }
    })
    if (a.json) await w.line(count === 0 ? '[]' : ']')
    await w.flush()
  },
}
