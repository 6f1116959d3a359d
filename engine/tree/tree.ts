import { FormatError } from '../errors.js'

/** Kinds of tree entries. */
export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev'

/**
 * One entry of a directory tree. Names and symlink targets are raw bytes so
 * that names that are not valid UTF-8 round-trip exactly.
 */
export interface TreeNode {
  name: Buffer
  type: NodeType
  /** Permission bits, including setuid/setgid/sticky (st_mode & 0o7777). */
  mode: number
  uid: number
  gid: number
  mtimeNs: bigint
  /** file: size in bytes. */
  size?: number
  /** file: chunk ids in order. */
  chunks?: string[]
  /** file: plain BLAKE3 of the whole content, hex (b3sum-compatible). */
  blake3?: string
  /** file: had holes when stored; restored sparse. */
  sparse?: boolean
  /** dir: id of the subtree blob. */
  subtree?: string
  /** symlink: target bytes. */
  target?: Buffer
  /** chardev/blockdev: device number. */
  rdev?: number
  /** Hard links: set when the file had more than one link; entries with the same (dev, inode) are one file. */
  links?: number
  inode?: string
  dev?: string
}

interface NodeJson {
  name?: string
  name_b64?: string
  type: NodeType
  mode: number
  uid: number
  gid: number
  mtime_ns: string
  size?: number
  chunks?: string[]
  blake3?: string
  sparse?: boolean
  subtree?: string
  target?: string
  target_b64?: string
  rdev?: number
  links?: number
  inode?: string
  dev?: string
}

const TYPES = new Set<NodeType>(['file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev'])

/** True when `b` is valid UTF-8 (so it can be stored as a JSON string and read back byte-identical). */
export function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b)
}

function putBytes(o: Record<string, unknown>, key: string, b: Buffer): void {
  if (isUtf8(b)) o[key] = b.toString('utf8')
  else o[`${key}_b64`] = b.toString('base64')
}

function getBytes(o: NodeJson, key: 'name' | 'target'): Buffer | undefined {
  const s = o[key]
  if (typeof s === 'string') return Buffer.from(s, 'utf8')
  const b = o[`${key}_b64`]
  if (typeof b === 'string') return Buffer.from(b, 'base64')
  return undefined
}

/** Orders nodes by the bytes of their names (the order they are stored in). */
export function compareNodes(a: TreeNode, b: TreeNode): number {
  return Buffer.compare(a.name, b.name)
}

/** Encodes a tree (its nodes sorted by name bytes) as the JSON plaintext of a tree blob. */
export function encodeTree(nodes: TreeNode[]): Buffer {
  const sorted = [...nodes].sort(compareNodes)
  const out: NodeJson[] = sorted.map((n) => {
    const o: Record<string, unknown> = {}
    putBytes(o, 'name', n.name)
    o.type = n.type
    o.mode = n.mode
    o.uid = n.uid
    o.gid = n.gid
    o.mtime_ns = n.mtimeNs.toString()
    if (n.size !== undefined) o.size = n.size
    if (n.chunks) o.chunks = n.chunks
    if (n.blake3) o.blake3 = n.blake3
    if (n.sparse) o.sparse = true
    if (n.subtree) o.subtree = n.subtree
    if (n.target) putBytes(o, 'target', n.target)
    if (n.rdev !== undefined) o.rdev = n.rdev
    if (n.links !== undefined) {
      o.links = n.links
      o.inode = n.inode
      o.dev = n.dev
    }
    return o as unknown as NodeJson
  })
  return Buffer.from(JSON.stringify({ version: 1, nodes: out }))
}

/** Decodes a tree blob's plaintext. Throws FormatError on anything unexpected. */
export function decodeTree(buf: Buffer): TreeNode[] {
  let doc: { version: number; nodes: NodeJson[] }
  try {
    doc = JSON.parse(buf.toString('utf8')) as { version: number; nodes: NodeJson[] }
  } catch (err) {
    throw new FormatError('tree is not valid JSON', { cause: err })
  }
  if (doc.version !== 1 || !Array.isArray(doc.nodes)) throw new FormatError(`unknown tree version ${String(doc.version)}`)
  return doc.nodes.map((o) => {
    const name = getBytes(o, 'name')
    if (!name || !TYPES.has(o.type)) throw new FormatError('tree node without name or with unknown type')
    const n: TreeNode = {
      name, type: o.type, mode: o.mode, uid: o.uid, gid: o.gid, mtimeNs: BigInt(o.mtime_ns),
    }
    if (o.size !== undefined) n.size = o.size
    if (o.chunks) n.chunks = o.chunks
    if (o.blake3) n.blake3 = o.blake3
    if (o.sparse) n.sparse = true
    if (o.subtree) n.subtree = o.subtree
    const target = getBytes(o, 'target')
    if (target) n.target = target
    if (o.rdev !== undefined) n.rdev = o.rdev
    if (o.links !== undefined) {
      n.links = o.links
      n.inode = o.inode
      n.dev = o.dev
    }
    return n
  })
}

/** A printable form of a raw name: UTF-8 when valid, else with \xNN escapes for invalid bytes. */
export function displayName(b: Buffer): string {
  if (isUtf8(b)) return b.toString('utf8')
  let s = ''
  for (const c of b) s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`
  return s
}
