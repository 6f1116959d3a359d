/**
 * The built CLI's bandwidth limits: --limit-upload / --limit-download parse (bad values are usage errors,
 * exit 2), and a limited snapshot and restore of a local repository complete, no faster than the limit
 * allows. Also the limit_upload setting of a named remote in coldstore.yaml.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createCipheriv } from 'node:crypto'
import { seededBytes, writeTree } from '../engine/testing/test-repo.js'
import { CLI, ROOT, ensureBuilt } from './testing/build.js'

ensureBuilt(t)

interface Result {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

function run(args: readonly string[], home: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', COLDSTORE_PROGRESS_INTERVAL_MS: '100000' }
    const t0 = performance.now()
    const child = spawn(process.execPath, [CLI, ...args], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - t0 }))
  })
}

const MiB = 1024 * 1024

t.test('bad rates are usage errors', async (t) => {
  const dir = t.testdir()
  const repo = join(dir, 'repo')
  const cases: string[][] = [
    ['--limit-upload', 'fast'],
    ['--limit-upload', '20MiB'],
    ['--limit-upload', '0'],
    ['--limit-upload', '20Mbit/s'],
    ['--limit-download', '20 mib/s'],
    ['--limit-download=-5MiB/s'],
    ['--limit-upload', ''],
  ]
  for (const c of cases) {
    const r = await run(['snapshots', '--repo', repo, '--cache-dir', join(dir, 'cache'), ...c], dir)
    t.equal(r.code, 2, `${c.join(' ')}: exit 2`, { stderr: r.stderr })
    const option = c[0].replace(/=.*/, '')
    t.match(r.stderr, new RegExp(`${option}: invalid rate .*like 20MiB/s`), `${c.join(' ')}: says what is wrong`)
  }
})

t.test('a limited snapshot and restore of a local repository complete, at the limit', async (t) => {
  const dir = t.testdir()
  const repo = join(dir, 'repo')
  const cache = join(dir, 'cache')
  const src = join(dir, 'src')
  // Incompressible: about 3 MiB reach the remote.
  const data = createCipheriv('aes-256-ctr', seededBytes('limits', 32), Buffer.alloc(16)).update(Buffer.alloc(3 * MiB))
  writeTree(src, { 'data.bin': data, 'note.txt': 'hello\n' })
  const common = ['--repo', repo, '--cache-dir', cache]
  const init = await run(['init', '--no-encryption', ...common], dir)
  t.equal(init.code, 0, 'init', { stderr: init.stderr })

  const snap = await run(['snapshot', src, '--json', '--limit-upload', '1MiB/s', ...common], dir)
  t.equal(snap.code, 0, 'snapshot --limit-upload 1MiB/s: exit 0', { stderr: snap.stderr })
  const id = (JSON.parse(snap.stdout) as { id: string }).id
  t.ok(id, 'a snapshot was written')
  // A 1 MiB burst, then 1 MiB/s: 3 MiB take at least 2 s.
  t.ok(snap.ms >= 2000, `the upload was limited (${Math.round(snap.ms)} ms for 3 MiB at 1 MiB/s)`)

  const out = join(dir, 'out')
  const rest = await run(['restore', id, '--target', out, '--limit-download', '1MiB/s', ...common], dir)
  t.equal(rest.code, 0, 'restore --limit-download 1MiB/s: exit 0', { stderr: rest.stderr })
  t.ok(readFileSync(join(out, 'src', 'data.bin')).equals(data), 'restored byte-identical')
  t.ok(rest.ms >= 2000, `the download was limited (${Math.round(rest.ms)} ms)`)

  const quick = await run(['snapshot', src, '--json', '--limit-upload', '1MiB/s', ...common], dir)
  t.equal(quick.code, 0, 'a second snapshot (nothing new to upload)')
})

t.test('limit_upload of a named remote in coldstore.yaml', async (t) => {
  const dir = t.testdir()
  const repo = join(dir, 'repo')
  const cache = join(dir, 'cache')
  const src = join(dir, 'src')
  const data = createCipheriv('aes-256-ctr', seededBytes('named', 32), Buffer.alloc(16)).update(Buffer.alloc(2 * MiB))
  writeTree(src, { 'data.bin': data })
  const config = join(dir, 'coldstore.yaml')
  writeFileSync(config, `remotes:\n  slow:\n    url: ${JSON.stringify(repo)}\n    limit_upload: 512KiB/s\n  bad:\n    url: ${JSON.stringify(repo)}\n    limit_upload: fast\n`)
  const common = ['--config', config, '--cache-dir', cache]
  t.equal((await run(['init', '--no-encryption', '--repo', repo, '--cache-dir', cache], dir)).code, 0, 'init')
  const snap = await run(['snapshot', src, '--repo', 'slow://', ...common], dir)
  t.equal(snap.code, 0, 'snapshot into the named remote', { stderr: snap.stderr })
  // 2 MiB at 512 KiB/s after a 512 KiB burst: at least 3 s.
  t.ok(snap.ms >= 3000, `limited by the setting (${Math.round(snap.ms)} ms)`)
  const bad = await run(['snapshots', '--repo', 'bad://', ...common], dir)
  t.equal(bad.code, 2, 'an invalid limit_upload setting: exit 2', { stderr: bad.stderr })
  t.match(bad.stderr, /limit_upload: invalid rate "fast"/)
})
