/**
 * `coldstore serve` as users run it (the built CLI in a child process):
 * startup line and --json, refusals with exit code 2, bearer-token and
 * HTTPS Basic authentication, clean shutdown on SIGTERM/SIGINT, and 32
 * concurrent curl clients reading different large files with the server's
 * peak RSS bounded.
 */
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createCipheriv, createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { blake3 } from '@napi-rs/blake-hash'
import { backup, closeRepository } from '../engine/index.js'
import { makeTestRepo, writeTree } from '../engine/testing/test-repo.js'
import { CLI, PASSWORD, cli, curl, ensureBuilt, haveTool, peakRssBytes, run } from './testing/fixture.js'

ensureBuilt(t)

/** Deterministic incompressible bytes, fast (AES-128-CTR keystream keyed by the seed). */
function fastSeededBytes(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(length))
}

interface Repo {
  dir: string
  env: NodeJS.ProcessEnv
}

async function smallRepo(t: Test, files: Record<string, Buffer | string> = { 'a.txt': 'hello\n' }): Promise<Repo> {
  const dir = t.testdir()
  writeTree(join(dir, 'src'), files)
  const tr = await makeTestRepo(dir, { password: PASSWORD, packSizeBytes: 8 * 1024 * 1024 })
  await backup(tr.repo, { hostname: 'h', username: 'u', program: 'test', paths: [join(dir, 'src')], job: 'data', now: () => new Date('2026-01-01T00:00:00Z') })
  await closeRepository(tr.repo)
  return { dir, env: { PATH: process.env.PATH, HOME: dir, COLDSTORE_PASSWORD: PASSWORD, COLDSTORE_CACHE_DIR: tr.cacheDir, COLDSTORE_REPO: tr.repoDir } }
}

interface Serving {
  child: ChildProcess
  url: string
  stderr: () => string
  /** Resolves with the exit code once the process ended. */
  exited: Promise<number | null>
}

/** Starts `coldstore serve --json ...` and waits for its JSON line. */
async function startServe(t: Test, args: string[], env: NodeJS.ProcessEnv): Promise<Serving> {
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', '--json', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  let out = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n')[0]
      if (out.includes('\n')) resolve((JSON.parse(line) as { url: string }).url)
    })
    void exited.then((code) => reject(new Error(`serve exited ${code}: ${err}`)))
  })
  return { child, url, stderr: () => err, exited }
}

t.test('refusals: exposing the repository without authentication, bad options (exit 2)', async (t) => {
  const r = await smallRepo(t)
  const basicFile = join(r.dir, 'basic')
  writeFileSync(basicFile, 'alice:s3cret-password\n')
  const cases: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ['0.0.0.0 without auth', ['--listen', '0.0.0.0:0'], {}, /refusing to serve on 0\.0\.0\.0 without authentication/],
    ['[::] without auth', ['--listen', '[::]:0'], {}, /refusing to serve on :: without authentication/],
    ['Basic without TLS off loopback', ['--listen', '0.0.0.0:0', '--basic-auth-file', basicFile], {}, /refusing Basic authentication .* plain HTTP/],
    ['short token', ['--listen', '0.0.0.0:0'], { COLDSTORE_SERVE_TOKEN: 'short' }, /at least 16 characters/],
    ['cert without key', ['--tls-cert', basicFile], {}, /--tls-cert and --tls-key go together/],
    ['bad --listen', ['--listen', 'nonsense'], {}, /expected HOST:PORT/],
    ['missing token file', ['--token-file', join(r.dir, 'nope')], {}, /cannot read token file/],
    ['malformed Basic file', ['--basic-auth-file', join(r.dir, 'src', 'a.txt')], {}, /USER:PASSWORD/],
  ]
  for (const [name, args, env, msg] of cases) {
    const res = await cli(['serve', ...args], { ...r.env, ...env })
    t.equal(res.code, 2, `${name}: exit 2`)
    t.match(res.stderr, msg, `${name}: says why`)
    t.equal(res.stdout.length, 0)
  }
  const noRepo = await cli(['serve', '--repo', join(r.dir, 'no-such-repo')], r.env)
  t.equal(noRepo.code, 10, 'no repository: the documented exit code 10')
})

t.test('startup line, --json, clean stop on SIGTERM and SIGINT', async (t) => {
  const r = await smallRepo(t)
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    const s = await startServe(t, [], r.env)
    t.match(s.url, /^http:\/\/127\.0\.0\.1:\d+\/$/)
    const err = s.stderr()
    t.match(err, `serving ${r.env.COLDSTORE_REPO} read-only at ${s.url}`)
    t.match(err, `dav://${new URL(s.url).host}/`, 'GNOME Files')
    t.match(err, 'mount -t davfs -o ro', 'davfs2')
    t.match(err, 'Connect to Server', 'macOS Finder')
    t.match(err, 'Map network drive', 'Windows Explorer')
    t.match(err, 'Ctrl-C', 'how to stop')
    const res = await fetch(`${s.url}data/latest/src/a.txt`)
    t.equal(await res.text(), 'hello\n')
    s.child.kill(sig)
    t.equal(await s.exited, 0, `${sig}: exit 0`)
    t.match(s.stderr(), 'stopped')
  }
})

t.test('bearer token; Basic over HTTPS', async (t) => {
  if (!haveTool(t, 'curl') || !haveTool(t, 'openssl')) return
  const r = await smallRepo(t)
  const token = 'tok-0123456789abcdef0123'
  const s = await startServe(t, [], { ...r.env, COLDSTORE_SERVE_TOKEN: token })
  const file = `${s.url}data/latest/src/a.txt`
  const none = await curl(file)
  t.equal(none.status, 401)
  t.match(none.headers['www-authenticate'], /Bearer/)
  t.equal((await curl(file, ['-H', 'Authorization: Bearer wrong-token-0123456789'])).status, 401)
  t.equal((await curl(file, ['-u', `x:${token}`])).status, 401, 'token as Basic password only over HTTPS')
  const ok = await curl(file, ['-H', `Authorization: Bearer ${token}`])
  t.equal(ok.status, 200)
  t.equal(ok.body.toString(), 'hello\n')
  s.child.kill('SIGTERM')
  await s.exited

  const cert = join(r.dir, 'cert.pem')
  const key = join(r.dir, 'key.pem')
  const gen = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1'])
  t.equal(gen.code, 0, gen.stderr)
  const basicFile = join(r.dir, 'basic')
  writeFileSync(basicFile, 'alice:correct-horse-battery\n')
  const h = await startServe(t, ['--tls-cert', cert, '--tls-key', key, '--basic-auth-file', basicFile], { ...r.env, COLDSTORE_SERVE_TOKEN: token })
  t.match(h.url, /^https:\/\//)
  const hf = `${h.url}data/latest/src/a.txt`
  t.equal((await curl(hf, ['-k'])).status, 401)
  t.equal((await curl(hf, ['-k', '-u', 'alice:wrong'])).status, 401)
  t.equal((await curl(hf, ['-k', '-u', 'bob:correct-horse-battery'])).status, 401, 'user name checked')
  const b = await curl(hf, ['-k', '-u', 'alice:correct-horse-battery'])
  t.equal(b.status, 200)
  t.equal(b.body.toString(), 'hello\n')
  t.equal((await curl(hf, ['-k', '-u', `anyone:${token}`])).status, 200, 'token as Basic password over HTTPS')
  t.equal((await curl(hf, ['-k', '-u', 'alice:correct-horse-battery', '-X', 'PUT', '--data', 'x'])).status, 403, 'authenticated writes are still refused')
  h.child.kill('SIGTERM')
  t.equal(await h.exited, 0)
})

t.test('32 concurrent clients reading different large files: correct bytes, bounded memory', async (t) => {
  if (!haveTool(t, 'curl')) return
  const n = 32
  const sizeBytes = 4 * 1024 * 1024 + 333
  const files: Record<string, Buffer> = {}
  for (let i = 0; i < n; i++) files[`f${i}.bin`] = fastSeededBytes(`file-${i}`, sizeBytes)
  const r = await smallRepo(t, files)
  const digests = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, blake3(v).toString('hex')]))
  const s = await startServe(t, ['--cache-mib', '16'], r.env)
  const pid = s.child.pid!
  const t0 = performance.now()
  const results = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const out = join(r.dir, `got-${i}.bin`)
    const res = await run('curl', ['-s', '-S', '-f', '-o', out, `${s.url}data/latest/src/f${i}.bin`])
    return { i, code: res.code, digest: res.code === 0 ? blake3(readFileSync(out)).toString('hex') : res.stderr }
  }))
  const seconds = (performance.now() - t0) / 1000
  const peak = peakRssBytes(pid)
  t.equal(results.filter((x) => x.code === 0 && x.digest === digests[`f${x.i}.bin`]).length, n, 'every client got every byte right')
  t.comment(`${n} clients × ${(sizeBytes / 1048576).toFixed(1)} MiB in ${seconds.toFixed(2)} s (${((n * sizeBytes) / 1048576 / seconds).toFixed(0)} MiB/s); server peak RSS ${(peak / 1048576).toFixed(0)} MiB`)
  // 128 MiB went out; a server that buffered whole files or did not bound its cache would pass 300 MiB.
  t.ok(peak < 300 * 1024 * 1024, `peak RSS ${(peak / 1048576).toFixed(0)} MiB < 300 MiB`)
  s.child.kill('SIGTERM')
  t.equal(await s.exited, 0)
})
