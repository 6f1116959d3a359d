/**
 * Listing the snapshots of a remote repository with many snapshots (issue 6: 500 snapshots, < 1 s with a
 * warm local cache, < 3 s cold), through the built CLI as users run it.
 *
 * Usage (credentials in the environment, as for any coldstore command):
 *   node dist/bench/snapshots.js --repo URL [--count 500] [--runs 5]
 * Creates a new repository at URL (it must be empty), takes `count` snapshots of a tiny folder (each a real
 * snapshot object with its tree), then times `coldstore snapshots --json` with an empty cache directory
 * (cold: every snapshot object is fetched) and with the cache the first listing left (warm), `runs` times
 * each; prints one JSON document with the medians on stdout, progress on stderr.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { backup, closeRepository, initRepository, openRepository, DEFAULT_CHUNKER_PARAMS, DEFAULT_PACK_BYTES } from '../engine/index.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CLI = join(ROOT, 'dist', 'bundle', 'coldstore.js')

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`)
  if (i !== -1 && process.argv[i + 1] !== undefined) return process.argv[i + 1]
  if (fallback === undefined) throw new Error(`--${name} is required`)
  return fallback
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

async function main(): Promise<void> {
  const url = arg('repo')
  const count = Number(arg('count', '500'))
  const runs = Number(arg('runs', '5'))
  const work = mkdtempSync(join(tmpdir(), 'coldstore-bench-snapshots-'))
  const password = 'bench snapshots'
  const env = { ...process.env, COLDSTORE_PASSWORD: password }
  try {
    const remote = { env: process.env, stagingDir: join(work, 'staging') }
    await initRepository(url, { password, chunker: DEFAULT_CHUNKER_PARAMS, packSizeBytes: DEFAULT_PACK_BYTES, hostname: 'bench', username: 'bench', now: new Date() }, remote)
    const repo = await openRepository({ url, password, cacheDir: join(work, 'cache-make'), remote })
    const src = join(work, 'src')
    for (let i = 0; i < count; i++) {
      writeFileSync(src, `snapshot ${i}\n`)
      await backup(repo, { paths: [src], hostname: 'bench', username: 'bench', program: 'bench', job: `job${i % 5}`, now: () => new Date(Date.UTC(2026, 0, 1) + i * 3_600_000) })
      if ((i + 1) % 50 === 0) process.stderr.write(`made ${i + 1}/${count} snapshots\n`)
    }
    await closeRepository(repo)
    const time = (cache: string): number => {
      const t0 = process.hrtime.bigint()
      const r = spawnSync(process.execPath, [CLI, 'snapshots', '--json', '--repo', url, '--cache-dir', cache], { env, encoding: 'utf8', maxBuffer: 64 << 20 })
      const s = Number(process.hrtime.bigint() - t0) / 1e9
      if (r.status !== 0) throw new Error(`coldstore snapshots failed: ${r.stderr}`)
      const n = (JSON.parse(r.stdout) as unknown[]).length
      if (n !== count) throw new Error(`listed ${n} snapshots, expected ${count}`)
      return s
    }
    const cold: number[] = []
    const warm: number[] = []
    for (let i = 0; i < runs; i++) {
      const cache = join(work, `cache-${i}`)
      cold.push(time(cache))
      warm.push(time(cache))
      process.stderr.write(`run ${i + 1}/${runs}: cold ${cold[i].toFixed(2)} s, warm ${warm[i].toFixed(2)} s\n`)
    }
    // A command's fixed cost (start-up, key derivation), for reference: `snapshots` of an empty listing is not possible, so --version.
    const t0 = process.hrtime.bigint()
    spawnSync(process.execPath, [CLI, '--version'])
    const startup = Number(process.hrtime.bigint() - t0) / 1e9
    process.stdout.write(JSON.stringify({ url: url.replace(/\?.*/, ''), snapshots: count, runs, cold_s: median(cold), warm_s: median(warm), cold_all_s: cold, warm_all_s: warm, startup_s: startup }, null, 2) + '\n')
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`)
  process.exit(1)
})
