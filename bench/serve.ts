/**
 * Benchmark of `coldstore serve` (the built CLI, as users run it) against
 * `coldstore restore` of the same file:
 *   - PROPFIND Depth 1 of a folder of N entries (first request, then median of 5);
 *   - time to first byte of a large file (first GET after start, then warm);
 *   - throughput of a full GET of that file (bytes discarded) vs `coldstore restore` of it.
 *
 * Usage:
 *   node dist/bench/serve.js [--file-mib 1024] [--entries 10000] [--dir DIR]
 *       generates a seeded file and a folder of N small files, snapshots them into a new repository;
 *   node dist/bench/serve.js --repo R --password-file F --file VIEWPATH --folder VIEWPATH
 *       measures an existing repository (paths as the server shows them: job/latest/...).
 * Prints one JSON document on stdout; progress on stderr.
 */
import { spawn, spawnSync } from 'node:child_process'
import { createCipheriv, createHash } from 'node:crypto'
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CLI = join(ROOT, 'dist', 'bundle', 'coldstore.js')
const MiB = 1024 * 1024

interface Options {
  fileMiB: number
  entries: number
  dir?: string
  repo?: string
  passwordFile?: string
  file?: string
  folder?: string
}

function parseArgs(argv: string[]): Options {
  const o: Options = { fileMiB: 1024, entries: 10_000 }
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1]
    switch (argv[i]) {
      case '--file-mib': o.fileMiB = Number(v); i++; break
      case '--entries': o.entries = Number(v); i++; break
      case '--dir': o.dir = v; i++; break
      case '--repo': o.repo = v; i++; break
      case '--password-file': o.passwordFile = v; i++; break
      case '--file': o.file = v; i++; break
      case '--folder': o.folder = v; i++; break
      default: throw new Error(`unknown option ${argv[i]}`)
    }
  }
  return o
}

const log = (s: string): void => void process.stderr.write(s + '\n')

function cliSync(args: string[], env: NodeJS.ProcessEnv): void {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'ignore', 'inherit'] })
  if (r.status !== 0) throw new Error(`coldstore ${args.join(' ')} exited ${r.status}`)
}

/** One HTTP request; resolves with the time to the first body byte (or headers for empty bodies), the total, and the byte count. */
function timedRequest(url: string, method: string, headers: Record<string, string> = {}): Promise<{ ttfbMs: number; totalMs: number; bytes: number; status: number }> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now()
    const req = request(url, { method, headers, agent: false }, (res) => {
      let ttfb = -1
      let bytes = 0
      res.on('data', (d: Buffer) => {
        if (ttfb < 0) ttfb = performance.now() - t0
        bytes += d.length
      })
      res.on('end', () => resolvePromise({ ttfbMs: ttfb < 0 ? performance.now() - t0 : ttfb, totalMs: performance.now() - t0, bytes, status: res.statusCode ?? 0 }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const encode = (p: string): string => p.split('/').map(encodeURIComponent).join('/')

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2))
  const work = o.dir ?? mkdtempSync(join(tmpdir(), 'coldstore-serve-bench-'))
  mkdirSync(work, { recursive: true })
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: work, COLDSTORE_CACHE_DIR: join(work, 'cache') }
  let repo = o.repo
  let filePath = o.file
  let folderPath = o.folder
  if (repo) {
    if (!filePath || !folderPath) throw new Error('--repo needs --file and --folder (paths as the server shows them)')
    if (o.passwordFile) env.COLDSTORE_PASSWORD_FILE = resolve(o.passwordFile)
    // An existing repository: its usual cache (so the index need not be rebuilt).
    env.HOME = process.env.HOME
    if (process.env.COLDSTORE_CACHE_DIR) env.COLDSTORE_CACHE_DIR = process.env.COLDSTORE_CACHE_DIR
    else delete env.COLDSTORE_CACHE_DIR
  } else {
    env.COLDSTORE_PASSWORD = 'bench-password'
    repo = join(work, 'repo')
    const src = join(work, 'src')
    mkdirSync(join(src, 'many'), { recursive: true })
    log(`generating ${o.fileMiB} MiB file and ${o.entries} small files in ${src}`)
    const fd = openSync(join(src, 'large.bin'), 'w')
    const cipher = createCipheriv('aes-128-ctr', createHash('sha256').update('bench').digest().subarray(0, 16), Buffer.alloc(16))
    const zero = Buffer.alloc(4 * MiB)
    for (let left = o.fileMiB * MiB; left > 0; left -= zero.length) writeSync(fd, cipher.update(zero.subarray(0, Math.min(zero.length, left))))
    closeSync(fd)
    for (let i = 0; i < o.entries; i++) writeFileSync(join(src, 'many', `file-${String(i).padStart(6, '0')}.txt`), `${i}\n`)
    log('init + snapshot')
    cliSync(['init', '--repo', repo, '-q'], env)
    const t0 = performance.now()
    cliSync(['snapshot', src, '--repo', repo, '--job', 'bench', '-q'], env)
    log(`snapshot took ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    filePath = 'bench/latest/src/large.bin'
    folderPath = 'bench/latest/src/many'
  }

  log('starting coldstore serve')
  const child = spawn(process.execPath, [CLI, 'serve', '--repo', repo, '--listen', '127.0.0.1:0', '--json', '-q'], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  const url = await new Promise<string>((resolveUrl, reject) => {
    let out = ''
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('\n')) resolveUrl((JSON.parse(out.split('\n')[0]) as { url: string }).url)
    })
    child.on('exit', (code) => reject(new Error(`serve exited ${code}`)))
  })
  try {
    const folderUrl = `${url}${encode(folderPath!)}/`
    const fileUrl = `${url}${encode(filePath!)}`
    const firstFile = await timedRequest(fileUrl, 'GET', { Range: 'bytes=0-0' })
    const warmTtfb: number[] = []
    for (let i = 0; i < 5; i++) warmTtfb.push((await timedRequest(fileUrl, 'GET', { Range: `bytes=${(i + 1) * 7919}-${(i + 1) * 7919}` })).ttfbMs)
    const firstList = await timedRequest(folderUrl, 'PROPFIND', { Depth: '1' })
    const lists: number[] = []
    for (let i = 0; i < 5; i++) lists.push((await timedRequest(folderUrl, 'PROPFIND', { Depth: '1' })).totalMs)
    log('full read over HTTP')
    const full = await timedRequest(fileUrl, 'GET')
    log('coldstore restore of the same file')
    const target = join(work, `restore-${Date.now()}`)
    const [job, , ...rest] = filePath!.split('/')
    // The server's paths are job/latest/<path in snapshot>.
    const t0 = performance.now()
    cliSync(['restore', `latest:${rest.join('/')}`, '--job', job, '--repo', repo, '--target', target, '-q'], env)
    const restoreS = (performance.now() - t0) / 1000
    rmSync(target, { recursive: true, force: true })
    const result = {
      bench: 'serve',
      repo,
      file: filePath,
      file_bytes: full.bytes,
      folder: folderPath,
      propfind_depth1: { first_ms: Math.round(firstList.totalMs), median_ms: Math.round(median(lists)), response_bytes: firstList.bytes },
      ttfb: { first_ms: Math.round(firstFile.ttfbMs), warm_median_ms: +median(warmTtfb).toFixed(1) },
      full_read: { seconds: +(full.totalMs / 1000).toFixed(2), mib_per_s: Math.round(full.bytes / MiB / (full.totalMs / 1000)) },
      restore_same_file: { seconds: +restoreS.toFixed(2), mib_per_s: Math.round(full.bytes / MiB / restoreS), note: 'whole CLI process: start, open, index load, restore, fsync' },
    }
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  } finally {
    child.kill('SIGTERM')
    if (!o.dir && !o.repo) rmSync(work, { recursive: true, force: true })
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/serve: ${(e as Error).stack ?? String(e)}\n`)
  process.exit(1)
})
