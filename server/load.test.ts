/**
 * Load: `coldstore serve` (the built CLI, in its own process) under 64 concurrent readers on loopback for
 * a bounded time: whole files, ranges and folder listings, every byte checked against the source. No
 * errors, the server's memory bounded, throughput reported. 5 s; COLDSTORE_STRESS=1: 60 s.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { Agent, request } from 'node:http'
import { join } from 'node:path'
import { blake3 } from '@napi-rs/blake-hash'
import { makeTestRepo, seededRandom, writeTree } from '../engine/testing/test-repo.js'
import { CLI, ensureBuilt } from './testing/fixture.js'
import { cliEnv, peakRss, randomData, runCli, sandbox, textData } from '../cli/testing/harness.js'

ensureBuilt(t)
const STRESS = process.env.COLDSTORE_STRESS === '1'
const PASSWORD = 'load test'
const READERS = 64
const SECONDS = STRESS ? 60 : 5

t.test(`${READERS} concurrent readers for ${SECONDS} s`, async (t) => {
  const box = sandbox(t, 'load')
  const proj = join(box, 'proj')
  const files: Record<string, Buffer> = {}
  for (let i = 0; i < 24; i++) files[`bin/f${i}.bin`] = randomData(`f${i}`, 20_000 + i * 150_000)
  for (let i = 0; i < 16; i++) files[`text/t${i}.txt`] = textData(`t${i}`, 5_000 + i * 40_000)
  writeTree(proj, files)
  const names = Object.keys(files)
  const digests = new Map(names.map((n) => [n, blake3(files[n]).toString('hex')]))
  const tr = await makeTestRepo(box, { password: PASSWORD, packSizeBytes: 4 * 1024 * 1024 })
  await tr.repo.close()
  const env = cliEnv(box, PASSWORD)
  const snap = await runCli(['snapshot', proj, '--repo', tr.repoDir, '--job', 'data', '--json'], { env })
  t.equal(snap.code, 0, 'snapshot')

  const child = spawn(process.execPath, [CLI, 'serve', '--repo', tr.repoDir, '--listen', '127.0.0.1:0', '--json', '--cache-mib', '64'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d))
  child.stderr.on('data', (d: Buffer) => (out += d))
  const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)))
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  const t0 = performance.now()
  while (!/"port":\s*\d+/.test(out) && child.exitCode === null && performance.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 50))
  const port = Number(/"port":\s*(\d+)/.exec(out)?.[1] ?? 0)
  t.ok(port > 0, 'serve is listening')
  const startRss = peakRss(child.pid!)

  const agent = new Agent({ keepAlive: true, maxSockets: READERS })
  const base = '/data/latest/proj/'
  const stats = { requests: 0, bytes: 0, errors: [] as string[], files: 0, ranges: 0, listings: 0 }
  const fetch = (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method, agent, headers }, (res) => {
        const parts: Buffer[] = []
        res.on('data', (d: Buffer) => parts.push(d))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }))
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end()
    })
  const deadline = performance.now() + SECONDS * 1000
  let peak = startRss
  const poll = setInterval(() => (peak = Math.max(peak, peakRss(child.pid!))), 200)
  const reader = async (id: number): Promise<void> => {
    const rand = seededRandom(1000 + id)
    while (performance.now() < deadline) {
      const name = names[Math.floor(rand() * names.length)]
      const want = files[name]
      const path = base + name
      const kind = rand()
      try {
        if (kind < 0.6) {
          const r = await fetch(path)
          if (r.status !== 200 || blake3(r.body).toString('hex') !== digests.get(name)) stats.errors.push(`GET ${name}: ${r.status}, ${r.body.length} bytes`)
          stats.files++
          stats.bytes += r.body.length
        } else if (kind < 0.9) {
          const a = Math.floor(rand() * want.length)
          const b = Math.min(want.length - 1, a + Math.floor(rand() * 300_000))
          const r = await fetch(path, { Range: `bytes=${a}-${b}` })
          if (r.status !== 206 || !r.body.equals(want.subarray(a, b + 1))) stats.errors.push(`range ${a}-${b} of ${name}: ${r.status}, ${r.body.length} bytes`)
          stats.ranges++
          stats.bytes += r.body.length
        } else {
          const dir = name.slice(0, name.indexOf('/') + 1)
          const r = await fetch(base + dir, { Depth: '1' }, 'PROPFIND')
          const listed = (r.body.toString().match(/<D:href>/g) ?? []).length
          const expected = names.filter((n) => n.startsWith(dir)).length + 1
          if (r.status !== 207 || listed !== expected) stats.errors.push(`PROPFIND ${dir}: ${r.status}, ${listed} entries`)
          stats.listings++
          stats.bytes += r.body.length
        }
      } catch (err) {
        stats.errors.push(`${name}: ${(err as Error).message}`)
      }
      stats.requests++
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: READERS }, (_, i) => reader(i)))
  const seconds = (performance.now() - started) / 1000
  clearInterval(poll)
  peak = Math.max(peak, peakRss(child.pid!))
  agent.destroy()
  t.same(stats.errors.slice(0, 10), [], `no errors in ${stats.requests} requests`)
  t.ok(stats.requests > READERS, `every reader made requests (${stats.requests})`)
  const bound = 512 * 1024 * 1024
  t.ok(peak > 0 && peak < bound, `server peak RSS ${(peak / 1048576).toFixed(0)} MiB < ${bound / 1048576} MiB (at start ${(startRss / 1048576).toFixed(0)} MiB)`)
  const mibps = stats.bytes / 1048576 / seconds
  t.comment(`figures: load ${JSON.stringify({ readers: READERS, seconds: +seconds.toFixed(1), requests: stats.requests, files: stats.files, ranges: stats.ranges, listings: stats.listings, mib: +(stats.bytes / 1048576).toFixed(1), mib_per_s: +mibps.toFixed(1), requests_per_s: +(stats.requests / seconds).toFixed(0), errors: stats.errors.length, peak_rss_mib: +(peak / 1048576).toFixed(0) })}`)
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'serve stops cleanly on SIGTERM')
})
