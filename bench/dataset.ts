/**
 * Deterministic benchmark dataset: a research/team project of a given size,
 * generated from a seed and streamed to disk in bounded memory (no buffer
 * larger than 4 MiB, no list that grows with the data size except a few
 * hundred duplicate candidates and per-directory name sets).
 *
 * Every file's bytes are a pure function of (seed, a content key, size), so
 * the same seed gives the same tree on every machine (the gzip archives
 * depend on Node's bundled zlib; the rest only on this file), and
 * `mutateDataset(dir, seed, round)` applied to rounds 1..N in order gives the
 * same tree too.
 *
 * Layout and mix (shares of --size; documented in BENCHMARKS.md):
 *
 *   src/<project>/...        8 %  source trees: many small code-like text files (ts, py, c/h, go, md, json),
 *                                 capped at 1.5 GB (~200k files); the rest goes to data/tables
 *   data/tables/...        ~14 %  CSV / JSONL / TSV text data, 10 KB .. 200 MB: whatever the others leave
 *   logs/*.log               8 %  application logs, appended to between milestones
 *   data/db/lab.sqlite       5 %  SQLite-like file of 4 KiB pages; pages rewritten and appended per milestone
 *   build/{obj,bin,lib}     12 %  object files, executables, shared libraries (about 2x compressible)
 *   media/<shoot>/...       22 %  JPEG/PNG/MP4-like files: incompressible
 *   archives/*.tar.gz        3 %  gzip (node:zlib level 1) of generated text for the first 8 MiB, then
 *                                 keystream (as incompressible as deflate output, and 20x cheaper)
 *   data/sim/run-*.h5       23 % minus the reference file: three large files (50/30/20 % of that),
 *                                 multi-GB from --size 20GB up (11.5/6.9/4.6 GB at 100 GB):
 *                                 int16 random-walk blocks and noise blocks, ~1.2x compressible
 *   data/reference/ref-v1.bin     one 80 MiB file (8 % of --size below 1 GB): the single-file restore target
 *   vendor/, shared/, releases/  5 %  exact duplicates: a vendored source project, media copies, released binaries
 *
 * Usage (after tsc):
 *   node dist/bench/dataset.js generate --size 1GB --out DIR [--seed S] [--rounds N]
 *   node dist/bench/dataset.js mutate --out DIR --round R [--seed S]
 *   node dist/bench/dataset.js digest DIR
 *   node dist/bench/dataset.js ratio DIR [--level 3]     zstd ratio per category, 1 MiB blocks
 */
import { createCipheriv } from 'node:crypto'
import {
  closeSync, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readSync, readdirSync, readFileSync,
  readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync,
} from 'node:fs'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { gzipSync } from 'node:zlib'
import { Blake3Hasher, blake3 } from '@napi-rs/blake-hash'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

export const DEFAULT_SEED = 'coldstore-bench-1'
/** The file restored on its own in the single-file restore step. */
export const SINGLE_FILE = 'data/reference/ref-v1.bin'
const SINGLE_FILE_BYTES = 80 * MiB
const PAGE = 4096
/** How much of each archive is real gzip output (the rest is keystream). */
const ARCHIVE_GZIP_BYTES = 8 * MiB
/** Largest block written at once: bounds the generator's memory. */
const BLOCK = 1 * MiB

// ---------------------------------------------------------------------------
// Sizes

/**
 * "100MB", "1GB", "10GiB", "512MiB", "1.5GB", "12345" → bytes. Decimal units
 * (KB, MB, GB, TB) are powers of 1000, binary units (KiB, MiB, ...) powers of
 * 1024; "K", "M", "G", "T" alone are decimal.
 */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$/i.exec(text)
  if (!m) throw new Error(`bad size "${text}": use e.g. 100MB, 1GB, 10GiB`)
  const n = Number(m[1])
  const unit = m[2].toLowerCase()
  if (m[3] && !unit) throw new Error(`bad size "${text}"`)
  const base = m[3] ? 1024 : 1000
  const exp = unit ? 'kmgt'.indexOf(unit) + 1 : 0
  return Math.round(n * base ** exp)
}

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = n
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0)} ${units[i]}`
}

// ---------------------------------------------------------------------------
// Randomness: sfc32 for decisions and text, AES-256-CTR for bulk bytes.

function seedBytes(seed: string, parts: readonly (string | number)[]): Buffer {
  return blake3(Buffer.from([seed, ...parts.map(String)].join('\0'), 'utf8'))
}

/** sfc32: small, fast, 32-bit; good enough for generating benchmark data. */
export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number
  private spare: number | null = null

  constructor(key: Buffer) {
    this.a = key.readUInt32LE(0) | 0
    this.b = key.readUInt32LE(4) | 0
    this.c = key.readUInt32LE(8) | 0
    this.d = key.readUInt32LE(12) | 0
    for (let i = 0; i < 12; i++) this.next()
  }

  static for(seed: string, ...parts: (string | number)[]): Rng {
    return new Rng(seedBytes(seed, parts))
  }

  /** Uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }
  /** Uniform in [0, 1). */
  float(): number {
    return this.next() / 4294967296
  }
  /** Integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.float() * n)
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1)
  }
  chance(p: number): boolean {
    return this.float() < p
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]
  }
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare
      this.spare = null
      return s
    }
    const u = 1 - this.float()
    const v = this.float()
    const r = Math.sqrt(-2 * Math.log(u))
    this.spare = r * Math.sin(2 * Math.PI * v)
    return r * Math.cos(2 * Math.PI * v)
  }
  /** Log-normal with the given median, clamped to [lo, hi]. */
  logNormal(median: number, sigma: number, lo: number, hi: number): number {
    return Math.round(Math.min(hi, Math.max(lo, median * Math.exp(sigma * this.normal()))))
  }
}

const ZERO = Buffer.alloc(4 * MiB)

/** Incompressible bytes: AES-256-CTR keystream keyed from the seed. */
export class ByteStream {
  private readonly cipher
  constructor(seed: string, ...parts: (string | number)[]) {
    this.cipher = createCipheriv('aes-256-ctr', seedBytes(seed, parts), Buffer.alloc(16))
  }
  bytes(n: number): Buffer {
    const out: Buffer[] = []
    let left = n
    while (left > 0) {
      const k = Math.min(left, ZERO.length)
      out.push(this.cipher.update(ZERO.subarray(0, k)))
      left -= k
    }
    return out.length === 1 ? out[0] : Buffer.concat(out)
  }
}

// ---------------------------------------------------------------------------
// Text vocabularies

const WORDS = (
  'account action active adapter address agent alloc analysis api append apply archive array asset async ' +
  'attempt auth backend backup balance base batch bind block body bound branch buffer build bundle bytes cache ' +
  'call cancel capacity cell channel check chunk class client clock close cluster code column commit compact ' +
  'compare config connect consumer context control convert copy count counter create cursor data debug decode ' +
  'default delay delete delta depth detect device digest dir dispatch done draft driver edge emit encode entry ' +
  'error event expire export factor fetch field file filter final flag flush format frame free frequency gauge ' +
  'graph group handle hash header heap height host index init input insert instance interval item job join key ' +
  'label layer layout length level limit line link list load local lock log lookup loop manager map mark match ' +
  'matrix max measure merge message meta method metric min mode model module monitor mount name network node ' +
  'notify number object offset open option order origin output owner pack page parent parse partition patch ' +
  'path peer pending pipeline plan point policy pool port position prefix probe process profile query queue ' +
  'range rate reader record reduce ref region register release remote render replica report request reset ' +
  'resolve resource response result retry root route row rule run sample scale scan schema scope score segment ' +
  'select sensor sequence series server session setting shard shape signal size slice slot snapshot socket sort ' +
  'source span spec split stage state status step storage store stream string subject sum sync table tag task ' +
  'tensor test thread threshold tick time timer token total trace track transform tree trigger type unit update ' +
  'upload user value vector version view volume wait weight window worker write'
).split(' ')
const PROSE = (
  'the a an of to in for on with by from that this we it is are was be as at which not or and but if then so ' +
  'results show method data model experiment sample measured error value using approach significant analysis ' +
  'observed increase decrease compared baseline figure table section previous following described run runs ' +
  'parameter parameters we find note however therefore although each between across during under over more ' +
  'less than about approximately similar different higher lower mean median variance distribution estimate'
).split(' ')
const LOG_LEVELS = ['DEBUG', 'INFO', 'INFO', 'INFO', 'INFO', 'WARN', 'ERROR'] as const

function cap(w: string): string {
  return w.charAt(0).toUpperCase() + w.slice(1)
}

type Lang = 'ts' | 'py' | 'c' | 'go'

/** Identifiers shared by one source file: repetition within a file is what makes code compressible. */
class CodeVocab {
  readonly idents: string[] = []
  readonly types: string[] = []
  readonly consts: string[] = []
  constructor(rng: Rng, readonly lang: Lang) {
    const snake = lang === 'py' || lang === 'c'
    for (let i = 0; i < 24; i++) {
      const n = rng.int(1, 3)
      const ws = Array.from({ length: n }, () => rng.pick(WORDS))
      this.idents.push(snake ? ws.join('_') : ws[0] + ws.slice(1).map(cap).join(''))
    }
    for (let i = 0; i < 8; i++) this.types.push(cap(rng.pick(WORDS)) + cap(rng.pick(WORDS)))
    for (let i = 0; i < 6; i++) this.consts.push(`${rng.pick(WORDS)}_${rng.pick(WORDS)}`.toUpperCase())
  }
}

function phrase(rng: Rng, n: number, words: readonly string[] = WORDS): string {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push(rng.pick(words))
  return out.join(' ')
}

function num(rng: Rng): string {
  switch (rng.below(5)) {
    case 0: return String(rng.below(10))
    case 1: return String(rng.below(1000))
    case 2: return `0x${rng.next().toString(16).padStart(8, '0')}`
    case 3: return (rng.float() * 100).toFixed(rng.int(1, 4))
    default: return String(1 << rng.below(20))
  }
}

/** One statement line (without indentation) in `lang`. */
function statement(rng: Rng, v: CodeVocab): string {
  const id = (): string => rng.pick(v.idents)
  const ty = (): string => rng.pick(v.types)
  const k = rng.below(10)
  switch (v.lang) {
    case 'ts':
      switch (k) {
        case 0: return `const ${id()} = await ${id()}.${id()}(${id()}, ${num(rng)})`
        case 1: return `if (!${id()}) throw new Error('${phrase(rng, rng.int(2, 6))}')`
        case 2: return `${id()} += ${id()}.length * ${num(rng)}`
        case 3: return `// ${phrase(rng, rng.int(3, 12))}`
        case 4: return `this.${id()}.set(${id()}, { ${id()}, ${id()}: ${num(rng)} })`
        case 5: return `const ${id()}: ${ty()}[] = ${id()}.filter((x) => x.${id()} > ${num(rng)})`
        case 6: return `log.debug(\`${phrase(rng, 3)} \${${id()}} ${phrase(rng, 2)}\`)`
        case 7: return `let ${id()} = ${v.consts[rng.below(v.consts.length)]}`
        case 8: return `await this.${id()}(${id()}, ${id()})`
        default: return `return ${id()} ?? ${num(rng)}`
      }
    case 'py':
      switch (k) {
        case 0: return `${id()} = self.${id()}(${id()}, ${num(rng)})`
        case 1: return `if ${id()} is None:\n        raise ValueError("${phrase(rng, rng.int(2, 6))}")`
        case 2: return `${id()} += len(${id()}) * ${num(rng)}`
        case 3: return `# ${phrase(rng, rng.int(3, 12))}`
        case 4: return `self.${id()}[${id()}] = {"${id()}": ${num(rng)}, "${id()}": ${id()}}`
        case 5: return `${id()} = [x for x in ${id()} if x.${id()} > ${num(rng)}]`
        case 6: return `logger.debug("${phrase(rng, 3)} %s", ${id()})`
        case 7: return `${id()} = ${v.consts[rng.below(v.consts.length)]}`
        case 8: return `${id()} = np.${rng.pick(['mean', 'sum', 'asarray', 'zeros', 'concatenate'])}(${id()}, axis=${rng.below(3)})`
        default: return `return ${id()}`
      }
    case 'c':
      switch (k) {
        case 0: return `${id()} = ${id()}(${id()}, ${num(rng)});`
        case 1: return `if (${id()} < 0) return -${rng.pick(['EINVAL', 'ENOMEM', 'EIO', 'EAGAIN'])};`
        case 2: return `${id()} += ${id()}->${id()} * ${num(rng)};`
        case 3: return `/* ${phrase(rng, rng.int(3, 12))} */`
        case 4: return `memcpy(${id()}->${id()}, ${id()}, sizeof(struct ${id()}));`
        case 5: return `for (size_t i = 0; i < ${id()}; i++) ${id()}[i] = ${num(rng)};`
        case 6: return `pr_debug("${phrase(rng, 3)} %d\\n", ${id()});`
        case 7: return `${id()} = ${v.consts[rng.below(v.consts.length)]};`
        case 8: return `struct ${id()} *${id()} = &${id()}->${id()};`
        default: return `return ${id()};`
      }
    case 'go':
      switch (k) {
        case 0: return `${id()}, err := ${id()}.${cap(id())}(ctx, ${id()}, ${num(rng)})`
        case 1: return `if err != nil {\n\t\treturn fmt.Errorf("${phrase(rng, rng.int(2, 5))}: %w", err)\n\t}`
        case 2: return `${id()} += len(${id()}) * ${num(rng)}`
        case 3: return `// ${phrase(rng, rng.int(3, 12))}`
        case 4: return `${id()}.${id()}[${id()}] = ${ty()}{${cap(id())}: ${num(rng)}}`
        case 5: return `for _, x := range ${id()} {\n\t\t${id()} = append(${id()}, x)\n\t}`
        case 6: return `log.Printf("${phrase(rng, 3)} %v", ${id()})`
        case 7: return `${id()} := ${v.consts[rng.below(v.consts.length)]}`
        case 8: return `defer ${id()}.Close()`
        default: return `return ${id()}, nil`
      }
  }
}

/** A function / method definition in `lang`, as lines. */
function codeFunction(rng: Rng, v: CodeVocab): string {
  const name = rng.pick(v.idents)
  const a = rng.pick(v.idents)
  const b = rng.pick(v.idents)
  const n = rng.int(2, 14)
  const body: string[] = []
  const ind = v.lang === 'py' ? '    ' : v.lang === 'ts' ? '  ' : '\t'
  for (let i = 0; i < n; i++) body.push(ind + statement(rng, v))
  switch (v.lang) {
    case 'ts':
      return `${rng.chance(0.4) ? `/** ${cap(phrase(rng, rng.int(4, 12)))}. */\n` : ''}export ${rng.chance(0.5) ? 'async ' : ''}function ${name}(${a}: ${rng.pick(v.types)}, ${b}: number): ${rng.pick(v.types)} {\n${body.join('\n')}\n}\n`
    case 'py':
      return `def ${name}(self, ${a}, ${b}=${num(rng)}):\n    """${cap(phrase(rng, rng.int(4, 12)))}."""\n${body.join('\n')}\n`
    case 'c':
      return `${rng.chance(0.5) ? 'static ' : ''}int ${name}(struct ${a} *${b}, size_t n)\n{\n\tint rc = 0;\n${body.join('\n')}\n}\n`
    case 'go':
      return `// ${cap(name)} ${phrase(rng, rng.int(3, 10))}.\nfunc (s *${rng.pick(v.types)}) ${cap(name)}(ctx context.Context, ${a} ${rng.pick(['int', 'string', '[]byte', 'float64'])}) (${rng.pick(v.types)}, error) {\n${body.join('\n')}\n}\n`
  }
}

const LICENSE = `Copyright (c) 2019-2024 The Lab Authors. All rights reserved.
Use of this source code is governed by a BSD-style license that can be found in the LICENSE file.`

function codeHeader(rng: Rng, v: CodeVocab, modules: readonly string[]): string {
  const imports: string[] = []
  const n = rng.int(2, 7)
  for (let i = 0; i < n; i++) {
    const m = rng.pick(modules)
    switch (v.lang) {
      case 'ts': imports.push(`import { ${rng.pick(v.types)}, ${rng.pick(v.idents)} } from '../${m}/index.js'`); break
      case 'py': imports.push(`from ${m.replace(/-/g, '_')} import ${rng.pick(v.idents)}, ${rng.pick(v.types)}`); break
      case 'c': imports.push(`#include "${m}/${rng.pick(v.idents)}.h"`); break
      case 'go': imports.push(`\t"lab.example.org/${m}"`); break
    }
  }
  switch (v.lang) {
    case 'ts': return `/*\n * ${LICENSE.replace(/\n/g, '\n * ')}\n */\n${imports.join('\n')}\n\n`
    case 'py': return `# ${LICENSE.replace(/\n/g, '\n# ')}\n"""${cap(phrase(rng, rng.int(5, 15)))}."""\nimport numpy as np\nimport logging\n${imports.join('\n')}\n\nlogger = logging.getLogger(__name__)\n\n`
    case 'c': return `/*\n * ${LICENSE.replace(/\n/g, '\n * ')}\n */\n#include <stdlib.h>\n#include <string.h>\n${imports.join('\n')}\n\n${v.consts.map((c, i) => `#define ${c} ${i * 16 + rng.below(16)}`).join('\n')}\n\n`
    case 'go': return `// ${LICENSE.replace(/\n/g, '\n// ')}\n\npackage ${rng.pick(WORDS)}\n\nimport (\n\t"context"\n\t"fmt"\n\t"log"\n${imports.join('\n')}\n)\n\n`
  }
}

/** A whole source file of exactly `size` bytes (the last line may be cut). */
function codeFile(rng: Rng, lang: Lang, modules: readonly string[], size: number): Buffer {
  const v = new CodeVocab(rng, lang)
  const parts = [codeHeader(rng, v, modules)]
  let len = parts[0].length
  while (len < size) {
    const f = codeFunction(rng, v) + '\n'
    parts.push(f)
    len += f.length
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, size)
}

function markdownFile(rng: Rng, size: number): Buffer {
  const parts: string[] = [`# ${cap(phrase(rng, rng.int(2, 5)))}\n\n`]
  let len = parts[0].length
  while (len < size) {
    let s: string
    const k = rng.below(8)
    if (k === 0) s = `## ${cap(phrase(rng, rng.int(2, 5)))}\n\n`
    else if (k === 1) s = Array.from({ length: rng.int(2, 6) }, () => `- ${phrase(rng, rng.int(3, 10), PROSE)} \`${rng.pick(WORDS)}\``).join('\n') + '\n\n'
    else if (k === 2) s = '```sh\n' + `./run.sh --${rng.pick(WORDS)} ${num(rng)} --${rng.pick(WORDS)}=${rng.pick(WORDS)}\n` + '```\n\n'
    else s = cap(phrase(rng, rng.int(20, 70), PROSE)) + '.\n\n'
    parts.push(s)
    len += s.length
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, size)
}

function jsonFile(rng: Rng, size: number): Buffer {
  const parts: string[] = ['{\n']
  let len = 2
  while (len < size) {
    const s = `  "${rng.pick(WORDS)}_${rng.pick(WORDS)}": ${rng.chance(0.5) ? num(rng) : `"${phrase(rng, rng.int(1, 3))}"`},\n`
    parts.push(s)
    len += s.length
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, size)
}

let isoSecond = -1
let isoPrefix = ''
/** `new Date(ms).toISOString()`, formatting the date part once per second. */
function isoTime(ms: number): string {
  const sec = Math.floor(ms / 1000)
  if (sec !== isoSecond) {
    isoSecond = sec
    isoPrefix = new Date(sec * 1000).toISOString().slice(0, 20)
  }
  return `${isoPrefix}${String(ms - sec * 1000).padStart(3, '0')}Z`
}

/** Log lines of about `bytes`, starting at `ms` (returns the text and the time reached). */
function logText(rng: Rng, bytes: number, ms: number, components: readonly string[]): { text: string; ms: number } {
  const parts: string[] = []
  let len = 0
  while (len < bytes) {
    ms += rng.below(400)
    let line = `${isoTime(ms)} ${rng.pick(LOG_LEVELS).padEnd(5)} [${rng.pick(components)}] `
    const k = rng.below(5)
    if (k === 0) {
      line += `10.${rng.below(4)}.${rng.below(256)}.${rng.below(256)} ${rng.pick(['GET', 'GET', 'POST', 'PUT'])} /api/v2/${rng.pick(WORDS)}/${rng.below(100000)} ${rng.pick([200, 200, 200, 201, 204, 304, 404, 500])} ${rng.below(90000)}B ${(rng.below(5000) / 10).toFixed(1)}ms`
    } else if (k === 1) {
      line += `${rng.pick(WORDS)} ${rng.pick(WORDS)} id=${rng.next().toString(16).padStart(8, '0')}${rng.below(65536).toString(16).padStart(4, '0')} n=${rng.below(rng.pick([10, 1000, 1000000]))}`
    } else if (k === 2) {
      line += `step=${rng.below(200000)} loss=${(rng.float() * 3).toFixed(5)} lr=${(rng.float() / 1000).toExponential(3)} throughput=${(rng.float() * 5000).toFixed(1)}/s`
    } else {
      line += `${phrase(rng, rng.int(3, 11))} user=u${rng.below(5000)} attempt=${1 + rng.below(5)}`
    }
    line += '\n'
    parts.push(line)
    len += line.length
  }
  return { text: parts.join(''), ms }
}

function csvRows(rng: Rng, bytes: number, cols: number, kinds: readonly number[], rowId: number): { text: string; rowId: number } {
  const parts: string[] = []
  let len = 0
  let t = 1_600_000_000 + rowId * 7
  while (len < bytes) {
    t += rng.below(15)
    const cells: string[] = [String(rowId++), String(t)]
    for (let c = 0; c < cols; c++) {
      switch (kinds[c]) {
        case 0: cells.push((rng.normal() * 10 + 50).toFixed(4)); break
        case 1: cells.push(String(rng.below(1000))); break
        case 2: cells.push(rng.pick(WORDS)); break
        default: cells.push(rng.float().toFixed(6))
      }
    }
    const line = cells.join(',') + '\n'
    parts.push(line)
    len += line.length
  }
  return { text: parts.join(''), rowId }
}

// ---------------------------------------------------------------------------
// Binary generators

/** Build output: machine-code-like runs, string tables, zero padding, relocation tables, embedded compressed data. */
function binaryBlock(rng: Rng, bytes: ByteStream, size: number, pool: readonly Buffer[]): Buffer {
  const out = Buffer.allocUnsafe(size)
  let off = 0
  while (off < size) {
    const n = Math.min(size - off, rng.int(512, 8192))
    const k = rng.below(10)
    if (k < 5) {
      // "machine code": instruction sequences from a per-file pool, with random immediates and offsets.
      const rnd = bytes.bytes(n)
      let i = 0
      while (i < n) {
        const seq = pool[rnd[i] & 255]
        const m = Math.min(seq.length, n - i)
        seq.copy(out, off + i, 0, m)
        i += m
        if (i < n && (rnd[i] & 3) === 0) {
          const imm = Math.min(n - i, 1 + (rnd[i] & 4))
          rnd.copy(out, off + i, i, i + imm)
          i += imm
        }
      }
    } else if (k < 7) {
      const s = Buffer.from(Array.from({ length: Math.ceil(n / 12) }, () => `_Z${rng.int(4, 20)}${rng.pick(WORDS)}_${rng.pick(WORDS)}\0`).join(''), 'latin1')
      s.copy(out, off, 0, Math.min(n, s.length))
      if (s.length < n) out.fill(0, off + s.length, off + n)
    } else if (k < 8) {
      out.fill(0, off, off + n)
    } else if (k < 9) {
      // relocation / symbol table: structured little-endian records
      let base = rng.next()
      for (let i = 0; i + 8 <= n; i += 8) {
        base = (base + rng.below(64) * 8) >>> 0
        out.writeUInt32LE(base, off + i)
        out.writeUInt32LE((rng.below(300) << 8) | rng.below(12), off + i + 4)
      }
      out.fill(0, off + (n & ~7), off + n)
    } else {
      bytes.bytes(n).copy(out, off)
    }
    off += n
  }
  return out
}

/** 256 "instruction sequences" (2–12 bytes) for one binary. */
function opcodePool(rng: Rng): Buffer[] {
  return Array.from({ length: 256 }, () => Buffer.from(Array.from({ length: rng.int(2, 12) }, () => (rng.chance(0.7) ? OPCODES[rng.below(OPCODES.length)] : rng.below(256)))))
}
const OPCODES = [0x48, 0x89, 0x8b, 0xe8, 0xc3, 0x0f, 0x85, 0x84, 0x74, 0x75, 0xeb, 0x83, 0xc7, 0x45, 0x41, 0x4c,
  0x31, 0xc0, 0x5d, 0x55, 0x53, 0x5b, 0xff, 0x24, 0x44, 0x8d, 0x01, 0x39, 0xf8, 0x90, 0xcc, 0x66]

/** Scientific data: blocks of int16 random walks (smooth signals) and of noise. */
function simBlock(rng: Rng, bytes: ByteStream, size: number, blockNo: number): Buffer {
  const out = bytes.bytes(size)
  if (blockNo % 3 !== 2 && size >= 64) {
    // random walk, 4 bits of entropy per 16-bit sample
    let x = rng.below(65536) - 32768
    for (let i = 64; i + 2 <= size; i += 2) {
      x += (out[i] & 0x0f) - 8
      if (x > 32767) x -= 65536
      else if (x < -32768) x += 65536
      out.writeInt16LE(x, i)
    }
  }
  if (size >= 64) {
    out.write(`HDF5BLK ${String(blockNo).padStart(10, '0')} ${rng.pick(WORDS)}`.padEnd(64, '\0'), 0, 64, 'latin1')
  }
  return out
}

/** One 4 KiB SQLite-like b-tree leaf page. */
function dbPage(rng: Rng, pageNo: number, version: number): Buffer {
  const p = Buffer.alloc(PAGE)
  if (pageNo === 0) {
    p.write('SQLite format 3\0', 0, 'latin1')
    p.writeUInt16BE(PAGE, 16)
    p.writeUInt32BE(version, 24) // file change counter
    p.writeUInt32BE(4, 44)
    p.write('CREATE TABLE samples(id INTEGER PRIMARY KEY, run INTEGER, t REAL, sensor TEXT, value REAL, note TEXT)', 100, 'latin1')
    return p
  }
  p[0] = 0x0d // leaf table page
  let content = PAGE
  let cells = 0
  const fill = rng.float() * 0.5 + 0.5 // 50–100 % full
  let rowid = pageNo * 40
  while (true) {
    const rec = Buffer.from(`${rowid}|${rng.below(400)}|${(rng.float() * 1e5).toFixed(3)}|${rng.pick(WORDS)}-${rng.below(64)}|${(rng.normal() * 3).toFixed(6)}|${rng.chance(0.3) ? phrase(rng, rng.int(1, 6)) : ''}`, 'latin1')
    const cellLen = rec.length + 4
    const ptrEnd = 12 + (cells + 1) * 2
    if (content - cellLen < ptrEnd || (PAGE - content) / PAGE > fill) break
    content -= cellLen
    p.writeUInt16BE(rec.length, content)
    p.writeUInt16BE(rowid & 0xffff, content + 2)
    rec.copy(p, content + 4)
    p.writeUInt16BE(content, 12 + cells * 2)
    cells++
    rowid++
  }
  p.writeUInt16BE(cells, 3)
  p.writeUInt16BE(content, 5)
  p.writeUInt32BE(version, 8) // not real SQLite: a per-page version, so rewrites change bytes
  return p
}

const MEDIA_MAGIC: Record<string, Buffer> = {
  jpg: Buffer.from('ffd8ffe000104a46494600010101004800480000', 'hex'),
  png: Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'),
  mp4: Buffer.from('000000206674797069736f6d0000020069736f6d69736f32617663316d703431', 'hex'),
  zip: Buffer.from('504b0304140000000800', 'hex'),
}

// ---------------------------------------------------------------------------
// Writing

export interface Progress {
  phase: string
  bytes: number
  totalBytes: number
  files: number
}

class Writer {
  bytes = 0
  files = 0
  private last = 0
  constructor(readonly root: string, private readonly total: number, private readonly onProgress?: (p: Progress) => void, private phase = '') {}

  setPhase(phase: string): void {
    this.phase = phase
    this.tick(true)
  }

  tick(force = false): void {
    if (!this.onProgress) return
    const now = Date.now()
    if (!force && now - this.last < 2000) return
    this.last = now
    this.onProgress({ phase: this.phase, bytes: this.bytes, totalBytes: this.total, files: this.files })
  }

  /** Writes a file of `size` bytes from `block(offset, n)` calls of at most BLOCK bytes. */
  file(rel: string, size: number, block: (off: number, n: number) => Buffer, mode = 0o644): void {
    const path = join(this.root, rel)
    mkdirSync(dirname(path), { recursive: true })
    const fd = openSync(path, 'w', mode)
    try {
      let off = 0
      while (off < size) {
        const n = Math.min(BLOCK, size - off)
        const b = block(off, n)
        writeAll(fd, b.length > n ? b.subarray(0, n) : b)
        off += n
        this.bytes += n
        this.tick()
      }
    } finally {
      closeSync(fd)
    }
    this.files++
  }

  /** Writes a small file whose whole content is given. */
  whole(rel: string, data: Buffer, mode = 0o644): void {
    const path = join(this.root, rel)
    mkdirSync(dirname(path), { recursive: true })
    writeFileSync(path, data, { mode })
    this.bytes += data.length
    this.files++
    this.tick()
  }

  /** Streams a text source: `more(n)` returns at least some text; the file is cut at `size`. */
  text(rel: string, size: number, more: (want: number) => string): void {
    let pending = Buffer.alloc(0)
    this.file(rel, size, (_off, n) => {
      while (pending.length < n) pending = Buffer.concat([pending, Buffer.from(more(Math.max(n - pending.length, 64 * KiB)), 'latin1')])
      const b = pending.subarray(0, n)
      pending = pending.subarray(n)
      return b
    })
  }
}

function writeAll(fd: number, b: Buffer, position?: number): void {
  let done = 0
  while (done < b.length) {
    done += writeSync(fd, b, done, b.length - done, position === undefined ? null : position + done)
  }
}

// ---------------------------------------------------------------------------
// Content recipes: (seed, key, size) → bytes. Used by the generator, the duplicates and the mutations.

type Recipe =
  | { kind: 'media'; ext: string; key: string }
  | { kind: 'binary'; key: string }

function writeRecipe(w: Writer, seed: string, rel: string, size: number, r: Recipe, mode = 0o644): void {
  if (r.kind === 'media') {
    const bs = new ByteStream(seed, 'media', r.key)
    const magic = MEDIA_MAGIC[r.ext] ?? MEDIA_MAGIC.jpg
    w.file(rel, size, (off, n) => {
      const b = bs.bytes(n)
      if (off === 0) magic.copy(b, 0, 0, Math.min(magic.length, n))
      return b
    }, mode)
  } else {
    const rng = Rng.for(seed, 'binary', r.key)
    const bs = new ByteStream(seed, 'binary', r.key)
    const pool = opcodePool(rng)
    w.file(rel, size, (off, n) => {
      const b = binaryBlock(rng, bs, n, pool)
      if (off === 0 && n >= 64) Buffer.from('7f454c4602010100000000000000000003003e00', 'hex').copy(b, 0)
      return b
    }, mode)
  }
}

function writeSim(w: Writer, seed: string, rel: string, size: number, key: string): void {
  const rng = Rng.for(seed, 'sim', key)
  const bs = new ByteStream(seed, 'sim', key)
  let blockNo = 0
  w.file(rel, size, (_off, n) => simBlock(rng, bs, n, blockNo++))
}

// ---------------------------------------------------------------------------
// The plan: byte budgets per category

export interface Budget {
  src: number
  tables: number
  logs: number
  db: number
  build: number
  media: number
  archives: number
  sim: number
  reference: number
  dups: number
}

export function planBudget(total: number): Budget {
  const reference = total >= 1e9 ? SINGLE_FILE_BYTES : Math.round(total * 0.08)
  const src = Math.min(Math.round(total * 0.08), 1.5e9)
  const logs = Math.round(total * 0.08)
  const db = Math.max(16 * PAGE, Math.floor((total * 0.05) / PAGE) * PAGE)
  const build = Math.round(total * 0.12)
  const media = Math.round(total * 0.22)
  const archives = Math.round(total * 0.03)
  const dups = Math.round(total * 0.05)
  const sim = Math.max(0, Math.round(total * 0.23) - reference)
  const tables = Math.max(0, total - (reference + src + logs + db + build + media + archives + dups + sim))
  return { src, tables, logs, db, build, media, archives, sim, reference, dups }
}

export interface GenerateOptions {
  /** Directory to create the dataset in; must not exist or be empty. */
  dir: string
  size: number
  seed?: string
  onProgress?: (p: Progress) => void
}

export interface GenerateResult {
  dir: string
  seed: string
  size: number
  bytes: number
  files: number
  budget: Budget
  seconds: number
}

const LANGS: readonly Lang[] = ['ts', 'py', 'c', 'go']
const LANG_EXT: Record<Lang, string[]> = { ts: ['ts', 'ts', 'ts', 'tsx'], py: ['py'], c: ['c', 'c', 'h'], go: ['go'] }

function srcProjects(budget: number): number {
  return Math.max(2, Math.min(40, Math.round(budget / (8 * 1e6))))
}

/**
 * One source project: root/<dirs>/<files>, `budget` bytes. Deterministic from
 * (seed, key), so the vendored duplicate is byte-identical.
 */
function writeSourceProject(w: Writer, seed: string, root: string, key: string, budget: number): void {
  const rng = Rng.for(seed, 'src', key)
  const lang = LANGS[rng.below(LANGS.length)]
  const modules = Array.from({ length: 12 }, () => `${rng.pick(WORDS)}-${rng.pick(WORDS)}`)
  w.whole(`${root}/README.md`, markdownFile(rng, rng.int(1500, 9000)))
  w.whole(`${root}/LICENSE`, Buffer.from(LICENSE + '\n' + 'THIS SOFTWARE IS PROVIDED AS IS '.repeat(40) + '\n', 'latin1'))
  w.whole(`${root}/package.json`, jsonFile(rng, rng.int(400, 2000)))
  let used = 0
  let dir = ''
  let inDir = 0
  const dirs = new Set<string>()
  let names = new Set<string>()
  let n = 0
  while (used < budget) {
    if (inDir === 0) {
      let d: string
      do {
        const depth = rng.int(1, 3)
        d = ['src', ...Array.from({ length: depth }, () => rng.pick(modules).split('-')[rng.below(2)])].join('/')
        if (dirs.has(d)) d += `-${rng.below(1000)}`
      } while (dirs.has(d))
      dirs.add(d)
      dir = d
      inDir = rng.int(3, 25)
      names = new Set()
    }
    inDir--
    let size = rng.logNormal(3500, 1.0, 80, 200_000)
    size = Math.min(size, budget - used)
    const isDoc = rng.chance(0.06)
    const ext = isDoc ? 'md' : rng.pick(LANG_EXT[lang])
    let name = lang === 'ts' || lang === 'go' ? `${rng.pick(WORDS)}${cap(rng.pick(WORDS))}` : `${rng.pick(WORDS)}_${rng.pick(WORDS)}`
    if (names.has(name)) name += String(n)
    names.add(name)
    const fileRng = Rng.for(seed, 'srcfile', key, n)
    const data = isDoc ? markdownFile(fileRng, size) : codeFile(fileRng, lang, modules, size)
    w.whole(`${root}/${dir}/${name}.${ext}`, data)
    used += size
    n++
  }
}

/**
 * Generates the dataset into `dir` (created). Returns what was written.
 * Memory stays bounded: at most a few MiB of buffers at any time.
 */
export function generateDataset(o: GenerateOptions): GenerateResult {
  const seed = o.seed ?? DEFAULT_SEED
  const started = Date.now()
  mkdirSync(o.dir, { recursive: true })
  if (readdirSync(o.dir).length) throw new Error(`${o.dir} is not empty`)
  const b = planBudget(o.size)
  const w = new Writer(o.dir, o.size, o.onProgress)
  const rng = Rng.for(seed, 'plan')
  const mediaDups: { rel: string; size: number; r: Recipe }[] = []
  const binDups: { rel: string; size: number; r: Recipe }[] = []

  // Source trees.
  w.setPhase('source trees')
  const nProj = srcProjects(b.src)
  const projNames: string[] = []
  for (let p = 0; p < nProj; p++) {
    const name = `${rng.pick(WORDS)}-${rng.pick(WORDS)}-${String(p).padStart(2, '0')}`
    projNames.push(name)
    writeSourceProject(w, seed, `src/${name}`, name, Math.round(b.src / nProj))
  }
  w.whole('docs/README.md', markdownFile(Rng.for(seed, 'docs'), 12_000))
  w.whole('docs/notes/meeting-notes.md', markdownFile(Rng.for(seed, 'notes'), 30_000))

  // Logs.
  w.setPhase('logs')
  {
    const services = ['api', 'worker', 'scheduler', 'ingest', 'trainer', 'db-migrate', 'web', 'gpu-node-1', 'gpu-node-2']
    const nLogs = Math.max(2, Math.min(services.length, Math.round(b.logs / 5e6)))
    const shares = Array.from({ length: nLogs }, () => 0.3 + rng.float())
    const sum = shares.reduce((s, x) => s + x, 0)
    let left = b.logs
    for (let i = 0; i < nLogs; i++) {
      const size = i === nLogs - 1 ? left : Math.round((b.logs * shares[i]) / sum)
      left -= size
      const lr = Rng.for(seed, 'log', services[i], 0)
      let ms = Date.UTC(2024, 0, 1)
      const comps = logComponents(services[i])
      w.text(`logs/${services[i]}.log`, size, (want) => {
        const r = logText(lr, want, ms, comps)
        ms = r.ms
        return r.text
      })
    }
  }

  // Database.
  w.setPhase('database')
  {
    const pages = b.db / PAGE
    const dr = Rng.for(seed, 'db', 0)
    let pageNo = 0
    w.file('data/db/lab.sqlite', b.db, (_off, n) => {
      const out = Buffer.allocUnsafe(n)
      for (let i = 0; i < n; i += PAGE) dbPage(dr, pageNo++, 1).copy(out, i)
      return out
    })
    void pages
  }

  // Build outputs.
  w.setPhase('build outputs')
  {
    const obj = Math.round(b.build * 0.4)
    const bin = Math.round(b.build * 0.35)
    const lib = b.build - obj - bin
    let used = 0
    let i = 0
    while (used < obj) {
      const size = Math.min(obj - used, rng.logNormal(40_000, 1.0, 2_000, 2_000_000))
      const proj = projNames[i % projNames.length]
      writeRecipe(w, seed, `build/obj/${proj}/${rng.pick(WORDS)}_${i}.o`, size, { kind: 'binary', key: `obj-${i}` })
      used += size
      i++
    }
    used = 0
    i = 0
    while (used < bin) {
      const size = Math.min(bin - used, rng.logNormal(8e6, 0.8, 100_000, 60e6))
      const rel = `build/bin/${rng.pick(WORDS)}-${rng.pick(WORDS)}`
      const r: Recipe = { kind: 'binary', key: `bin-${i}` }
      writeRecipe(w, seed, rel, size, r, 0o755)
      if (binDups.length < 200) binDups.push({ rel, size, r })
      used += size
      i++
    }
    used = 0
    i = 0
    while (used < lib) {
      const size = Math.min(lib - used, rng.logNormal(5e6, 0.8, 100_000, 40e6))
      writeRecipe(w, seed, `build/lib/lib${rng.pick(WORDS)}${i}.so`, size, { kind: 'binary', key: `lib-${i}` }, 0o755)
      used += size
      i++
    }
    mkdirSync(join(o.dir, 'build/tmp'), { recursive: true })
  }

  // Media: incompressible.
  w.setPhase('media')
  {
    const nShoots = Math.max(3, Math.min(200, Math.round(b.media / 60e6)))
    const maxVideo = Math.max(1e6, Math.min(300e6, b.media * 0.05))
    let left = b.media
    for (let s = 0; s < nShoots; s++) {
      const shoot = `shoot-${String(s).padStart(3, '0')}-${rng.pick(WORDS)}`
      let budget = s === nShoots - 1 ? left : Math.round(b.media / nShoots)
      left -= budget
      let i = 0
      while (budget > 0) {
        const video = rng.chance(0.08)
        const ext = video ? 'mp4' : rng.chance(0.8) ? 'jpg' : 'png'
        const size = Math.min(budget, video ? rng.logNormal(maxVideo / 3, 0.7, 1e6, maxVideo) : rng.logNormal(2.5e6, 0.6, 50_000, 12e6))
        const rel = `media/${shoot}/${video ? `clip-${String(i).padStart(3, '0')}` : `IMG_${String(1000 + s * 500 + i)}`}.${ext}`
        const r: Recipe = { kind: 'media', ext, key: rel }
        writeRecipe(w, seed, rel, size, r)
        if (mediaDups.length < 400 && rng.chance(0.3)) mediaDups.push({ rel, size, r })
        budget -= size
        i++
      }
    }
  }

  // Archives: real gzip of generated text (multi-member gzip, 2 MiB of text per member).
  w.setPhase('archives')
  {
    let left = b.archives
    let i = 0
    while (left > 0) {
      const size = Math.min(left, rng.logNormal(20e6, 0.8, 1e6, 400e6))
      const ar = Rng.for(seed, 'archive', i)
      const vocab = new CodeVocab(ar, 'c')
      let pending = Buffer.alloc(0)
      let ms = Date.UTC(2023, 0, 1)
      const bs = new ByteStream(seed, 'archive', i)
      w.file(`archives/${rng.pick(WORDS)}-${2019 + (i % 5)}-${String(i).padStart(2, '0')}.tar.gz`, size, (off, n) => {
        // Real gzip for the first 8 MiB; deflate output is incompressible, so the rest is keystream (cheaper).
        if (off >= ARCHIVE_GZIP_BYTES) return bs.bytes(n)
        while (pending.length < n) {
          const text = ar.chance(0.5) ? logText(ar, 2 * MiB, ms, ['a', 'b', 'c']).text : codeFunctions(ar, vocab, 2 * MiB)
          ms += 1e7
          pending = Buffer.concat([pending, gzipSync(Buffer.from(text, 'latin1'), { level: 1 })])
        }
        const out = pending.subarray(0, n)
        pending = pending.subarray(n)
        return out
      })
      left -= size
      i++
    }
  }

  // Large files and the single-file restore target.
  w.setPhase('large files')
  {
    const sizes = [0.5, 0.3, 0.2].map((f) => Math.round(b.sim * f))
    sizes[2] = b.sim - sizes[0] - sizes[1]
    sizes.forEach((size, i) => writeSim(w, seed, `data/sim/run-${String(i).padStart(3, '0')}.h5`, size, `run-${i}`))
    symlinkSync('run-000.h5', join(o.dir, 'data/sim/latest.h5'))
    writeSim(w, seed, SINGLE_FILE, b.reference, 'reference')
  }

  // Duplicates: a vendored source project, copies of media files, released binaries.
  w.setPhase('duplicates')
  {
    let left = b.dups
    const vendor = Math.min(Math.round(b.dups * 0.3), Math.round(b.src / nProj))
    writeSourceProject(w, seed, `vendor/${projNames[0]}`, projNames[0], vendor)
    left -= vendor
    const binShare = Math.round(left * 0.45)
    let used = 0
    for (const d of binDups) {
      if (used + d.size > binShare) continue
      writeRecipe(w, seed, `releases/v0.9/${d.rel.replace('build/', '')}`, d.size, d.r, 0o755)
      used += d.size
    }
    left -= used
    for (const d of mediaDups) {
      if (d.size > left) continue
      writeRecipe(w, seed, `shared/${d.rel}`, d.size, d.r)
      left -= d.size
    }
    // Whatever the duplicates could not fill goes to tables.
    b.tables += left
    b.dups -= left
  }

  // Tables: fills up to the exact total.
  w.setPhase('tables')
  {
    let i = 0
    const topics = ['measurements', 'survey', 'runs', 'sensors', 'annotations', 'exports']
    while (w.bytes < o.size) {
      const left = o.size - w.bytes
      let size = rng.logNormal(2e6, 1.2, 10_000, 200e6)
      if (left - size < 10_000) size = left
      size = Math.min(size, left)
      const topic = topics[i % topics.length]
      const tr = Rng.for(seed, 'table', i)
      const kind = tr.below(3)
      const ext = kind === 0 ? 'csv' : kind === 1 ? 'jsonl' : 'tsv'
      writeTable(w, `data/tables/${topic}/${topic}-${String(i).padStart(4, '0')}.${ext}`, size, tr, ext)
      i++
    }
  }
  w.setPhase('done')
  return { dir: o.dir, seed, size: o.size, bytes: w.bytes, files: w.files, budget: b, seconds: (Date.now() - started) / 1000 }
}

function codeFunctions(rng: Rng, v: CodeVocab, bytes: number): string {
  const parts: string[] = []
  let len = 0
  while (len < bytes) {
    const f = codeFunction(rng, v) + '\n'
    parts.push(f)
    len += f.length
  }
  return parts.join('')
}

function logComponents(service: string): string[] {
  const r = Rng.for('components', service)
  return Array.from({ length: 10 }, () => `${r.pick(WORDS)}.${r.pick(WORDS)}`)
}

function writeTable(w: Writer, rel: string, size: number, tr: Rng, ext: string): void {
  const cols = tr.int(3, 12)
  const kinds = Array.from({ length: cols }, () => tr.below(4))
  const names = Array.from({ length: cols }, () => `${tr.pick(WORDS)}_${tr.pick(WORDS)}`)
  let rowId = 0
  let first = true
  w.text(rel, size, (want) => {
    let head = ''
    if (first && ext !== 'jsonl') head = ['id', 't', ...names].join(ext === 'tsv' ? '\t' : ',') + '\n'
    first = false
    const r = csvRows(tr, want, cols, kinds, rowId)
    rowId = r.rowId
    if (ext === 'csv') return head + r.text
    if (ext === 'tsv') return head + r.text.replace(/,/g, '\t')
    return r.text.split('\n').filter(Boolean).map((l) => {
      const c = l.split(',')
      return `{"id":${c[0]},"t":${c[1]},${names.map((n, j) => `"${n}":${/^[a-z]/.test(c[j + 2]) ? `"${c[j + 2]}"` : c[j + 2]}`).join(',')}}`
    }).join('\n') + '\n'
  })
}

// ---------------------------------------------------------------------------
// Walking

/** Files under `dir`, sorted, as paths relative to it (forward slashes). Directories are walked depth-first. */
export function* walkFiles(dir: string, rel = ''): Generator<{ rel: string; kind: 'file' | 'dir' | 'symlink' | 'other' }> {
  const names = readdirSync(join(dir, rel)).sort()
  for (const name of names) {
    const r = rel ? `${rel}/${name}` : name
    const st = lstatSync(join(dir, r))
    if (st.isDirectory()) {
      yield { rel: r, kind: 'dir' }
      yield* walkFiles(dir, r)
    } else if (st.isFile()) yield { rel: r, kind: 'file' }
    else if (st.isSymbolicLink()) yield { rel: r, kind: 'symlink' }
    else yield { rel: r, kind: 'other' }
  }
}

let readBuf: Buffer | null = null

/** BLAKE3 of a file's content, streamed through one reused 4 MiB buffer. */
export function fileDigest(path: string): string {
  const h = new Blake3Hasher()
  const fd = openSync(path, 'r')
  const buf = (readBuf ??= Buffer.allocUnsafe(4 * MiB))
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null)
      if (n <= 0) break
      h.update(buf.subarray(0, n))
    }
  } finally {
    closeSync(fd)
  }
  return h.digest('hex')
}

export interface TreeDigest {
  digest: string
  files: number
  dirs: number
  symlinks: number
  bytes: number
}

/**
 * One digest over the tree: sorted paths, types, sizes, file contents and
 * symlink targets (not modes or times). Equal digests mean equal trees.
 */
export function treeDigest(dir: string): TreeDigest {
  const h = new Blake3Hasher()
  const r: TreeDigest = { digest: '', files: 0, dirs: 0, symlinks: 0, bytes: 0 }
  for (const e of walkFiles(dir)) {
    const p = join(dir, e.rel)
    if (e.kind === 'dir') {
      r.dirs++
      h.update(Buffer.from(`d ${e.rel}\n`))
    } else if (e.kind === 'symlink') {
      r.symlinks++
      h.update(Buffer.from(`l ${e.rel} -> ${readlinkSync(p)}\n`))
    } else if (e.kind === 'file') {
      const size = statSync(p).size
      r.files++
      r.bytes += size
      h.update(Buffer.from(`f ${e.rel} ${size} ${fileDigest(p)}\n`))
    }
  }
  r.digest = h.digest('hex')
  return r
}

// ---------------------------------------------------------------------------
// Mutations between milestones

export interface MutationResult {
  round: number
  editedFiles: number
  deletedFiles: number
  addedFiles: number
  /** Bytes of new or rewritten file content (approximate for in-place edits). */
  changedBytes: number
  logBytesAppended: number
  dbPagesWritten: number
  dbPagesAppended: number
  inserted: { file: string; offset: number; bytes: number } | null
  renamed: { from: string; to: string } | null
  seconds: number
}

function listDir(root: string, rel: string): string[] {
  const p = join(root, rel)
  return existsSync(p) ? readdirSync(p).sort() : []
}

/**
 * Applies milestone `round` (1, 2, ...) to the dataset in `dir`. Deterministic
 * given the tree on disk, the seed and the round; applying rounds 1..N in
 * order to a fresh dataset always gives the same tree.
 */
export function mutateDataset(dir: string, o: { seed?: string; round: number; onProgress?: (p: Progress) => void }): MutationResult {
  const seed = o.seed ?? DEFAULT_SEED
  const round = o.round
  if (!Number.isInteger(round) || round < 1) throw new Error(`round must be 1 or more, got ${round}`)
  const started = Date.now()
  const rng = Rng.for(seed, 'round', round)
  const res: MutationResult = {
    round, editedFiles: 0, deletedFiles: 0, addedFiles: 0, changedBytes: 0, logBytesAppended: 0,
    dbPagesWritten: 0, dbPagesAppended: 0, inserted: null, renamed: null, seconds: 0,
  }
  const w = new Writer(dir, 0, o.onProgress, `round ${round}`)

  // 1. Source edits, deletions, additions.
  let srcTotal = 0
  const newFileBudget: { proj: string; lang: Lang }[] = []
  for (const proj of listDir(dir, 'src')) {
    let files = 0
    for (const e of walkFiles(join(dir, 'src', proj))) {
      if (e.kind !== 'file') continue
      const rel = `src/${proj}/${e.rel}`
      const ext = rel.slice(rel.lastIndexOf('.') + 1)
      const lang: Lang | null = ext === 'ts' || ext === 'tsx' ? 'ts' : ext === 'py' ? 'py' : ext === 'c' || ext === 'h' ? 'c' : ext === 'go' ? 'go' : null
      files++
      const roll = rng.float()
      if (roll < 0.005) {
        rmSync(join(dir, rel))
        res.deletedFiles++
      } else if (roll < 0.035 && lang) {
        const p = join(dir, rel)
        const lines = readFileSync(p, 'latin1').split('\n')
        const er = Rng.for(seed, 'edit', round, rel)
        const v = new CodeVocab(er, lang)
        const edits = er.int(1, 4)
        for (let k = 0; k < edits; k++) {
          const at = er.below(lines.length)
          if (er.chance(0.5)) lines.splice(at, er.int(0, 3), ...codeFunction(er, v).split('\n'))
          else lines[at] = (lines[at].match(/^\s*/)?.[0] ?? '') + statement(er, v)
        }
        const data = Buffer.from(lines.join('\n'), 'latin1')
        writeFileSync(p, data)
        res.editedFiles++
        res.changedBytes += data.length
      }
      if (lang && newFileBudget.length < 2000 && rng.chance(0.005)) newFileBudget.push({ proj, lang })
    }
    srcTotal += files
  }
  newFileBudget.forEach(({ proj, lang }, i) => {
    const fr = Rng.for(seed, 'newsrc', round, i)
    const size = fr.logNormal(3500, 1.0, 80, 100_000)
    const data = codeFile(fr, lang, ['core-utils', 'io-stream'], size)
    w.whole(`src/${proj}/src/feature-r${round}/${fr.pick(WORDS)}_${i}.${LANG_EXT[lang][0]}`, data)
    res.addedFiles++
    res.changedBytes += size
  })
  void srcTotal

  // 2. Log appends: 1–3 % of each log, continuing its timestamps.
  for (const name of listDir(dir, 'logs')) {
    if (!name.endsWith('.log')) continue
    const p = join(dir, 'logs', name)
    const size = statSync(p).size
    const lr = Rng.for(seed, 'log', name, round)
    const add = Math.max(4096, Math.round(size * (0.01 + lr.float() * 0.02)))
    const { text } = logText(lr, add, Date.UTC(2024, 0, 1) + round * 86_400_000 * 30, logComponents(name.replace(/\.log$/, '')))
    const fd = openSync(p, 'a')
    try {
      writeAll(fd, Buffer.from(text, 'latin1'))
    } finally {
      closeSync(fd)
    }
    res.logBytesAppended += text.length
  }

  // 3. Database: scattered page rewrites, a hot region near the end, appended pages, header counter.
  {
    const p = join(dir, 'data/db/lab.sqlite')
    if (existsSync(p)) {
      const fd = openSync(p, 'r+')
      try {
        const pages = Math.floor(fstatSync(fd).size / PAGE)
        const dr = Rng.for(seed, 'dbround', round)
        const scattered = Math.max(4, Math.round(pages * 0.002))
        const hot = Math.max(8, Math.round(pages * 0.01))
        const written = new Set<number>()
        for (let i = 0; i < scattered; i++) written.add(1 + dr.below(pages - 1))
        const hotStart = Math.max(1, pages - Math.round(pages * 0.05))
        for (let i = 0; i < hot; i++) written.add(hotStart + dr.below(pages - hotStart))
        for (const pg of [...written].sort((a, b) => a - b)) {
          writeAll(fd, dbPage(dr, pg, round + 1), pg * PAGE)
        }
        const append = Math.max(4, Math.round(pages * 0.005))
        for (let i = 0; i < append; i += 256) {
          const n = Math.min(256, append - i)
          const buf = Buffer.allocUnsafe(n * PAGE)
          for (let k = 0; k < n; k++) dbPage(dr, pages + i + k, round + 1).copy(buf, k * PAGE)
          writeAll(fd, buf, (pages + i) * PAGE)
        }
        writeAll(fd, dbPage(dr, 0, round + 1), 0)
        res.dbPagesWritten = written.size + 1
        res.dbPagesAppended = append
        res.changedBytes += (written.size + 1 + append) * PAGE
      } finally {
        closeSync(fd)
      }
    }
  }

  // 4. A byte range inserted into the middle of the largest file (rewritten through a temporary file).
  {
    const sims = listDir(dir, 'data/sim').filter((n) => n.endsWith('.h5'))
    let largest = ''
    let largestSize = -1
    for (const n of sims) {
      const st = lstatSync(join(dir, 'data/sim', n))
      if (st.isFile() && st.size > largestSize) {
        largest = n
        largestSize = st.size
      }
    }
    if (largest) {
      const p = join(dir, 'data/sim', largest)
      const tmp = p + '.tmp'
      const insert = Math.max(64 * KiB, Math.min(8 * MiB, Math.round(largestSize * 0.002)))
      const at = Math.floor(largestSize * (0.3 + rng.float() * 0.4))
      const bs = new ByteStream(seed, 'insert', round)
      const src = openSync(p, 'r')
      const dst = openSync(tmp, 'w', 0o644)
      const buf = Buffer.allocUnsafe(4 * MiB)
      try {
        let off = 0
        let copied = 0
        while (off < largestSize) {
          if (off === at && copied === 0) {
            writeAll(dst, bs.bytes(insert))
            copied = 1
          }
          const n = readSync(src, buf, 0, Math.min(buf.length, (off < at ? at : largestSize) - off), off)
          if (n <= 0) break
          writeAll(dst, buf.subarray(0, n))
          off += n
          w.bytes += n
          w.tick()
        }
        if (copied === 0) writeAll(dst, bs.bytes(insert))
      } finally {
        closeSync(src)
        closeSync(dst)
      }
      renameSync(tmp, p)
      res.inserted = { file: `data/sim/${largest}`, offset: at, bytes: insert }
      res.changedBytes += insert
    }
  }

  // 5. A folder renamed: one media shoot (the round-th, counting from the oldest).
  {
    const shoots = listDir(dir, 'media').filter((n) => n.startsWith('shoot-'))
    if (shoots.length) {
      const from = shoots[(round - 1) % shoots.length]
      const to = `${from.replace(/^shoot-/, 'archived-')}-r${round}`
      renameSync(join(dir, 'media', from), join(dir, 'media', to))
      res.renamed = { from: `media/${from}`, to: `media/${to}` }
    }
  }

  // 6. Build outputs: ~10 % of object files recompiled, one binary relinked, a few deleted and added.
  {
    for (const proj of listDir(dir, 'build/obj')) {
      for (const name of listDir(dir, `build/obj/${proj}`)) {
        const rel = `build/obj/${proj}/${name}`
        const roll = rng.float()
        if (roll < 0.01) {
          rmSync(join(dir, rel))
          res.deletedFiles++
        } else if (roll < 0.11) {
          const size = statSync(join(dir, rel)).size
          writeRecipe(w, seed, rel, size, { kind: 'binary', key: `${rel}@${round}` })
          res.editedFiles++
          res.changedBytes += size
        }
      }
    }
    const bins = listDir(dir, 'build/bin')
    if (bins.length) {
      const rel = `build/bin/${bins[rng.below(bins.length)]}`
      const size = statSync(join(dir, rel)).size
      writeRecipe(w, seed, rel, size, { kind: 'binary', key: `${rel}@${round}` }, 0o755)
      res.editedFiles++
      res.changedBytes += size
    }
    for (let i = 0; i < 5; i++) {
      const size = rng.logNormal(40_000, 1.0, 2_000, 2_000_000)
      writeRecipe(w, seed, `build/obj/new-r${round}/unit_${i}.o`, size, { kind: 'binary', key: `new-obj-${round}-${i}` })
      res.addedFiles++
      res.changedBytes += size
    }
  }

  // 7. Media: a few files deleted, a new shoot added (~0.5 % of the media bytes).
  {
    let mediaBytes = 0
    const all: string[] = []
    for (const shoot of listDir(dir, 'media')) {
      for (const name of listDir(dir, `media/${shoot}`)) {
        all.push(`media/${shoot}/${name}`)
        mediaBytes += statSync(join(dir, 'media', shoot, name)).size
      }
    }
    for (let i = 0; i < 3 && all.length > 1; i++) {
      const k = rng.below(all.length)
      rmSync(join(dir, all[k]))
      all.splice(k, 1)
      res.deletedFiles++
    }
    let budget = Math.max(100_000, Math.round(mediaBytes * 0.02))
    let i = 0
    while (budget > 0) {
      const size = Math.min(budget, rng.logNormal(2.5e6, 0.6, 50_000, 12e6))
      const rel = `media/new-r${round}/IMG_${9000 + i}.jpg`
      writeRecipe(w, seed, rel, size, { kind: 'media', ext: 'jpg', key: `${rel}@${round}` })
      budget -= size
      res.addedFiles++
      res.changedBytes += size
      i++
    }
  }

  // 8. Tables: one new export, one table grown by appended rows.
  {
    const tr = Rng.for(seed, 'newtable', round)
    let tableBytes = 0
    if (existsSync(join(dir, 'data/tables'))) for (const e of walkFiles(join(dir, 'data/tables'))) if (e.kind === 'file') tableBytes += statSync(join(dir, 'data/tables', e.rel)).size
    const size = Math.max(10_000, Math.round(tableBytes * (0.01 + tr.float() * 0.02)))
    writeTable(w, `data/tables/exports/export-r${round}.csv`, size, tr, 'csv')
    res.addedFiles++
    res.changedBytes += size
    const measurements = listDir(dir, 'data/tables/measurements').filter((n) => n.endsWith('.csv'))
    if (measurements.length) {
      const p = join(dir, 'data/tables/measurements', measurements[rng.below(measurements.length)])
      const { text } = csvRows(tr, Math.max(10_000, Math.round(statSync(p).size * 0.02)), 6, [0, 1, 2, 3, 0, 0], 1_000_000 * round)
      const fd = openSync(p, 'a')
      try {
        writeAll(fd, Buffer.from(text, 'latin1'))
      } finally {
        closeSync(fd)
      }
      res.changedBytes += text.length
    }
  }

  res.seconds = (Date.now() - started) / 1000
  return res
}

// ---------------------------------------------------------------------------
// Compressibility

export interface RatioRow {
  category: string
  bytes: number
  sampledBytes: number
  compressedBytes: number
  ratio: number
}

/** The category of a dataset path (its first one or two components). */
export function categoryOf(rel: string): string {
  const [a, b] = rel.split('/')
  if (a === 'data') return `data/${b}`
  if (a === 'shared' || a === 'releases' || a === 'vendor') return 'duplicates'
  return a
}

/**
 * zstd ratio per category, compressing 1 MiB blocks (about one chunk each) at
 * `level`. Datasets over `maxSampleBytes` are sampled evenly by block.
 */
export async function compressibility(dir: string, level = 3, maxSampleBytes = 2 * GiB): Promise<RatioRow[]> {
  const { compress } = await import('zstd-napi')
  let total = 0
  for (const e of walkFiles(dir)) if (e.kind === 'file') total += statSync(join(dir, e.rel)).size
  const every = Math.max(1, Math.ceil(total / maxSampleBytes))
  const rows = new Map<string, RatioRow>()
  const buf = Buffer.allocUnsafe(MiB)
  let blockNo = 0
  for (const e of walkFiles(dir)) {
    if (e.kind !== 'file') continue
    const cat = categoryOf(e.rel)
    const row = rows.get(cat) ?? { category: cat, bytes: 0, sampledBytes: 0, compressedBytes: 0, ratio: 0 }
    rows.set(cat, row)
    const fd = openSync(join(dir, e.rel), 'r')
    try {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null)
        if (n <= 0) break
        row.bytes += n
        if (blockNo++ % every === 0) {
          row.sampledBytes += n
          row.compressedBytes += Math.min(n, compress(buf.subarray(0, n), { compressionLevel: level }).length)
        }
      }
    } finally {
      closeSync(fd)
    }
  }
  const out = [...rows.values()].sort((a, b) => b.bytes - a.bytes)
  const all: RatioRow = { category: 'all', bytes: 0, sampledBytes: 0, compressedBytes: 0, ratio: 0 }
  for (const r of out) {
    r.ratio = r.compressedBytes ? r.sampledBytes / r.compressedBytes : 1
    all.bytes += r.bytes
    all.sampledBytes += r.sampledBytes
    all.compressedBytes += r.compressedBytes
  }
  all.ratio = all.compressedBytes ? all.sampledBytes / all.compressedBytes : 1
  out.push(all)
  return out
}

// ---------------------------------------------------------------------------
// Command line

function arg(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name)
  if (i >= 0) return argv[i + 1]
  const eq = argv.find((a) => a.startsWith(name + '='))
  return eq?.slice(name.length + 1)
}

function progressLine(p: Progress): void {
  const pct = p.totalBytes ? ` ${((p.bytes / p.totalBytes) * 100).toFixed(1)}%` : ''
  process.stderr.write(`dataset: ${p.phase}${pct} ${formatBytes(p.bytes)}${p.totalBytes ? ` / ${formatBytes(p.totalBytes)}` : ''}, ${p.files} files\n`)
}

async function cli(argv: string[]): Promise<void> {
  const [cmd] = argv
  const seed = arg(argv, '--seed') ?? DEFAULT_SEED
  const json = argv.includes('--json')
  const print = (v: unknown): void => {
    process.stdout.write(JSON.stringify(v, null, 2) + '\n')
  }
  if (cmd === 'generate') {
    const out = arg(argv, '--out')
    if (!out) throw new Error('generate needs --out DIR')
    const size = parseSize(arg(argv, '--size') ?? '1GB')
    const r = generateDataset({ dir: out, size, seed, onProgress: progressLine })
    const rounds = Number(arg(argv, '--rounds') ?? 0)
    const muts: MutationResult[] = []
    for (let k = 1; k <= rounds; k++) muts.push(mutateDataset(out, { seed, round: k }))
    if (json) print({ ...r, mutations: muts })
    else process.stdout.write(`generated ${formatBytes(r.bytes)} in ${r.files} files at ${out} in ${r.seconds.toFixed(1)} s${rounds ? `, then ${rounds} rounds` : ''}\n`)
  } else if (cmd === 'mutate') {
    const out = arg(argv, '--out')
    if (!out) throw new Error('mutate needs --out DIR')
    print(mutateDataset(out, { seed, round: Number(arg(argv, '--round') ?? 1) }))
  } else if (cmd === 'digest') {
    print(treeDigest(argv[1]))
  } else if (cmd === 'ratio') {
    const rows = await compressibility(argv[1], Number(arg(argv, '--level') ?? 3))
    if (json) print(rows)
    else for (const r of rows) process.stdout.write(`${r.category.padEnd(16)} ${formatBytes(r.bytes).padStart(10)}  ${r.ratio.toFixed(2)}x\n`)
  } else {
    process.stderr.write('usage: dataset.js generate --size 1GB --out DIR [--seed S] [--rounds N] | mutate --out DIR --round R | digest DIR | ratio DIR\n')
    process.exitCode = 2
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  cli(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`dataset: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(1)
  })
}
