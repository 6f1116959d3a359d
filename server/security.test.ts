/**
 * The WebDAV server against hostile clients, with raw sockets (no client library normalises what is sent):
 *  - path traversal in every encoding (dot segments raw, percent-encoded, double-encoded, overlong UTF-8,
 *    backslashes, NUL, Unicode look-alike dots, absolute-form targets): 400 or 404, never a byte of anything
 *    outside the snapshot view (the repository's own files, /etc/passwd, a symlink's target);
 *  - write methods with large bodies: refused before the body is read, the connection closed;
 *  - oversized headers and PROPFIND bodies: 431 / 413, and the server keeps serving;
 *  - slow clients: 100 connections sending their headers a byte at a time, and 100 that send nothing, are
 *    all closed by the server within its headers timeout while a normal client is served at once; one
 *    address cannot take every connection;
 *  - authentication: required for every method when configured (OPTIONS included), token not accepted in
 *    the query string; without it, only loopback host names are answered;
 *  - the repository password (and the serve token) never in the server's output, its command line (what
 *    `ps` shows) or any response, also when requests fail.
 */
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { seededBytes } from '../engine/testing/test-repo.js'
import { CLI, PASSWORD, ensureBuilt, serveFiles } from './testing/fixture.js'

ensureBuilt(t)

/** Sends `raw` on a new connection; resolves with everything the server sent until it closed or `waitMs` passed. */
function rawRequest(port: number, raw: string | Buffer, waitMs = 3000): Promise<{ status: number; text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    const parts: Buffer[] = []
    let closed = false
    const done = (): void => {
      clearTimeout(timer)
      const text = Buffer.concat(parts).toString('latin1')
      s.destroy()
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0), text, closed })
    }
    const timer = setTimeout(done, waitMs)
    s.on('data', (d: Buffer) => parts.push(d))
    s.on('error', () => undefined)
    s.on('close', () => {
      closed = true
      done()
    })
    s.write(raw)
  })
}

const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${extra}\r\n`

t.test('path traversal in every encoding never leaves the view', async (t) => {
  const s = await serveFiles(t, { 'inside.txt': 'inside\n', 'sub/deep.txt': 'deep\n' }, {
    prepare: (src) => symlinkSync('/etc/passwd', join(src, 'passwd-link')),
  })
  const port = s.server.port
  const configText = readFileSync(join(s.repoDir, 'config'), 'utf8')
  const base = '/data/latest/src'
  // Sanity: the view serves what is in it.
  t.equal((await rawRequest(port, get(`${base}/inside.txt`))).status, 200)
  const targets = [
    '/../../../../etc/passwd', `${base}/../../../../etc/passwd`, `${base}/../../../config`, '/..', '/.', `${base}/./inside.txt`,
    `${base}/%2e%2e/%2e%2e/%2e%2e/config`, `${base}/%2E%2E%2F%2E%2E%2Fconfig`, `${base}/..%2f..%2f..%2fconfig`, `${base}/.%2e/.%2e/config`,
    `${base}/%252e%252e/%252e%252e/config`, `${base}/%25%32%65%25%32%65/config`, // double-encoded
    `${base}/%c0%ae%c0%ae/%c0%ae%c0%ae/config`, `${base}/%c0%af..%c0%afconfig`, `${base}/%e0%80%ae%e0%80%ae/config`, // overlong UTF-8
    `${base}/..\\..\\..\\config`, `${base}/%5c..%5c..%5cconfig`, `${base}\\..\\..\\etc\\passwd`, // backslashes
    `${base}/inside.txt%00.png`, `${base}/%00/config`, `${base}/%00`, // NUL
    `${base}/%e2%80%a4%e2%80%a4/config`, `${base}/%ef%bc%8e%ef%bc%8e/config`, `${base}/\u2024\u2024/config`, `${base}/%e3%80%82%e3%80%82/config`, // look-alike dots
    `${base}/passwd-link`, `${base}/passwd-link/`, // a symlink to outside is not followed
    'http://127.0.0.1/../../etc/passwd', '//etc/passwd', '/%2e%2e%2f%2e%2e%2fetc%2fpasswd', `${base}/bad%zzescape`, `${base}/%`,
  ]
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n')[0]
  let refused = 0
  for (const target of targets) {
    const r = await rawRequest(port, get(target))
    const ok = r.status === 400 || r.status === 404
    if (ok) refused++
    t.ok(ok, `${JSON.stringify(target)}: ${r.status}`)
    t.notOk(passwd && r.text.includes(passwd), `${JSON.stringify(target)}: nothing of /etc/passwd`)
    t.notOk(r.text.includes(configText.slice(0, 40)) || /"format":\s*"coldstore"/.test(r.text), `${JSON.stringify(target)}: nothing of the repository's files`)
  }
  // The same through PROPFIND, which lists folders.
  for (const target of [`${base}/%2e%2e/%2e%2e/`, `${base}/..\\..\\`, `${base}/%c0%ae%c0%ae/`]) {
    const r = await rawRequest(port, `PROPFIND ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nDepth: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
    t.ok(r.status === 400 || r.status === 404, `PROPFIND ${target}: ${r.status}`)
  }
  t.comment(`figures: traversal ${JSON.stringify({ targets: targets.length, refused })}`)
  t.equal((await rawRequest(port, get(`${base}/inside.txt`))).status, 200, 'the server still serves')
})

t.test('write methods, oversized headers and bodies', async (t) => {
  const s = await serveFiles(t, { 'a.txt': 'a\n' })
  const port = s.server.port
  // A 100 MB upload announced: refused at once, without reading it, and the connection closed.
  for (const m of ['PUT', 'POST', 'DELETE', 'MKCOL', 'PROPPATCH', 'LOCK', 'MOVE', 'COPY']) {
    const t0 = performance.now()
    const r = await new Promise<{ status: number; closed: boolean; ms: number }>((resolve) => {
      const sock = connect(port, '127.0.0.1')
      let text = ''
      sock.on('data', (d: Buffer) => (text += d.toString('latin1')))
      sock.on('error', () => undefined)
      sock.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), closed: true, ms: performance.now() - t0 }))
      sock.write(`${m} /data/latest/src/a.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n`)
      sock.write(Buffer.alloc(64 * 1024, 0x41))
      setTimeout(() => sock.destroy(), 5000)
    })
    t.equal(r.status, 403, `${m} with a 100 MB body: 403`)
    t.ok(r.closed && r.ms < 4000, `${m}: connection closed without reading the body (${Math.round(r.ms)} ms)`)
  }
  t.equal(readFileSync(join(s.src, 'a.txt'), 'utf8'), 'a\n')
  // Headers beyond Node's limit (16 KiB): 431, no crash.
  const big = await rawRequest(port, get('/', `X-Big: ${'x'.repeat(100_000)}\r\n`))
  t.equal(big.status, 431, 'a 100 KB header: 431')
  const many = await rawRequest(port, get('/', Array.from({ length: 3000 }, (_, i) => `X-H${i}: v\r\n`).join('')))
  t.equal(many.status, 431, '3000 headers: 431')
  // A PROPFIND body over 1 MiB: 413.
  const body = `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>${'<D:getetag/>'.repeat(120_000)}</D:prop></D:propfind>`
  const pf = await rawRequest(port, `PROPFIND /data/ HTTP/1.1\r\nHost: 127.0.0.1\r\nDepth: 1\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`)
  t.equal(pf.status, 413, `a ${body.length}-byte PROPFIND body: 413`)
  // A chunked PROPFIND body that never ends is cut at the limit too.
  const chunked = await rawRequest(port, `PROPFIND /data/ HTTP/1.1\r\nHost: 127.0.0.1\r\nDepth: 1\r\nTransfer-Encoding: chunked\r\n\r\n${`10000\r\n${'<'.repeat(0x10000)}\r\n`.repeat(20)}`)
  // (Read up to the limit, then answered 413 and the connection closed: the client may see the reset first.)
  t.ok(chunked.status === 413 || (chunked.status === 0 && chunked.closed), `a 1.3 MB chunked PROPFIND body: refused (${chunked.status || 'connection closed'})`)
  for (let i = 0; i < 3; i++) await rawRequest(port, `PROPFIND /data/ HTTP/1.1\r\nHost: 127.0.0.1\r\nDepth: 1\r\nTransfer-Encoding: chunked\r\n\r\n${`10000\r\n${'<'.repeat(0x10000)}\r\n`.repeat(20)}`)
  t.equal((await rawRequest(port, get('/data/latest/src/a.txt'))).status, 200, 'the server still serves')
})

t.test('slow clients are bounded: headers a byte at a time, or nothing at all', async (t) => {
  const headersTimeoutMs = 1500
  const s = await serveFiles(t, { 'a.txt': seededBytes('a', 300_000) }, { limits: { headersTimeoutMs, maxConnectionsPerAddress: 256 } })
  const port = s.server.port
  const N = 100
  const sockets: { s: Socket; closedAt: number }[] = []
  const started = performance.now()
  const open = (slow: boolean): void => {
    const sock = connect(port, '127.0.0.1')
    const e = { s: sock, closedAt: 0 }
    sock.on('error', () => undefined)
    sock.on('close', () => (e.closedAt = performance.now()))
    if (slow) {
      const header = 'GET /data/latest/src/a.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'z'.repeat(1000)
      let i = 0
      const drip = setInterval(() => {
        if (sock.destroyed || i >= header.length) return clearInterval(drip)
        sock.write(header[i++])
      }, 50)
      sock.on('close', () => clearInterval(drip))
    }
    sockets.push(e)
  }
  for (let i = 0; i < N; i++) open(true)
  for (let i = 0; i < N; i++) open(false)
  await new Promise((r) => setTimeout(r, 300))
  // Meanwhile a normal client is served at once.
  const t0 = performance.now()
  const normal = await rawRequest(port, get('/data/latest/src/a.txt'))
  t.equal(normal.status, 200, 'a normal request during the attack is answered')
  t.ok(performance.now() - t0 < 1500, `promptly (${Math.round(performance.now() - t0)} ms)`)
  // Every slow or silent connection is closed by the server within the headers timeout (plus its checking interval).
  const deadline = headersTimeoutMs * 3 + 1000
  while (sockets.some((x) => x.closedAt === 0) && performance.now() - started < deadline) await new Promise((r) => setTimeout(r, 100))
  const stillOpen = { slow: sockets.slice(0, N).filter((x) => x.closedAt === 0).length, silent: sockets.slice(N).filter((x) => x.closedAt === 0).length }
  for (const x of sockets) x.s.destroy()
  t.same(stillOpen, { slow: 0, silent: 0 }, `all ${N} slow and ${N} silent connections closed by the server`)
  const latest = Math.max(...sockets.map((x) => (x.closedAt || performance.now()) - started))
  t.ok(latest < deadline, `the last within ${Math.round(latest)} ms (headers timeout ${headersTimeoutMs} ms)`)
  t.comment(`figures: slowloris ${JSON.stringify({ connections: 2 * N, headers_timeout_ms: headersTimeoutMs, all_closed_within_ms: Math.round(latest) })}`)
})

t.test('one address cannot take every connection', async (t) => {
  const s = await serveFiles(t, { 'a.txt': 'a\n' }, { limits: { maxConnectionsPerAddress: 20, headersTimeoutMs: 10_000 } })
  const hold: Socket[] = []
  for (let i = 0; i < 30; i++) {
    const sock = connect(s.server.port, '127.0.0.1')
    sock.on('error', () => undefined)
    hold.push(sock)
  }
  t.teardown(() => hold.forEach((x) => x.destroy()))
  await new Promise((r) => setTimeout(r, 500))
  const refused = hold.filter((x) => x.destroyed || x.readyState === 'closed').length
  t.equal(refused, 10, 'connections beyond the per-address limit are closed at once')
})

t.test('authentication when configured: every method, no token in the query', async (t) => {
  const token = 'a-very-long-secret-token-1234'
  const s = await serveFiles(t, { 'a.txt': 'a\n' }, { auth: { token, tls: false } })
  const port = s.server.port
  for (const m of ['GET', 'HEAD', 'OPTIONS', 'PROPFIND', 'PUT']) {
    const r = await rawRequest(port, `${m} /data/ HTTP/1.1\r\nHost: example.org\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
    t.equal(r.status, 401, `${m} without credentials: 401`)
    t.notOk(r.text.includes(token))
  }
  t.equal((await rawRequest(port, get(`/data/?token=${token}`))).status, 401, 'a token in the query string is not accepted')
  t.equal((await rawRequest(port, get('/data/', 'Authorization: Bearer wrong-token-wrong-token\r\n'))).status, 401, 'a wrong token: 401')
  t.equal((await rawRequest(port, get('/data/', `Authorization: Bearer ${token}\r\n`))).status, 200, 'the token: 200')
  t.equal((await rawRequest(port, `GET /data/ HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)).status, 200, 'with authentication, any host name')
  const open = await serveFiles(t, { 'a.txt': 'a\n' })
  for (const host of ['evil.example', 'localhost.evil.example', '127.0.0.1.nip.io', '0x7f000001']) {
    t.equal((await rawRequest(open.server.port, `GET /data/ HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)).status, 421, `without authentication, Host ${host}: 421`)
  }
})

/** Runs `coldstore serve` and returns its port, output, and a stop function. */
async function serveCli(t: Test, env: NodeJS.ProcessEnv, args: string[]): Promise<{ port: number; pid: number; output: () => string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', '--json', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out += d.toString()))
  const closed = new Promise<void>((r) => child.on('close', () => r()))
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  const t0 = performance.now()
  while (!/"port":\s*(\d+)/.test(out) && performance.now() - t0 < 60_000 && child.exitCode === null) await new Promise((r) => setTimeout(r, 50))
  const port = Number(/"port":\s*(\d+)/.exec(out)?.[1] ?? 0)
  return {
    port, pid: child.pid!, output: () => out,
    stop: async () => {
      child.kill('SIGTERM')
      await closed
    },
  }
}

t.test('the repository password never in output, command line or responses', async (t) => {
  const token = 'Tok-Distinctive-55aa0f2e9d'
  const s = await serveFiles(t, { 'a.txt': 'a\n', 'page.html': '<p>x</p>', 'big.bin': seededBytes('big', 2_000_000) })
  const repoPassword = PASSWORD // the fixture's repository password (cli/secrets.test.ts uses a distinctive one for a whole session)
  const pwFile = join(s.dir, 'pw')
  writeFileSync(pwFile, repoPassword + '\n')
  for (const how of ['env', 'file'] as const) {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: s.dir, COLDSTORE_CACHE_DIR: join(s.dir, `cli-cache-${how}`), COLDSTORE_SERVE_TOKEN: token, COLDSTORE_DEBUG: '1' }
    if (how === 'env') env.COLDSTORE_PASSWORD = repoPassword
    const srv = await serveCli(t, env, ['--repo', s.repoDir, ...(how === 'file' ? ['--password-file', pwFile] : [])])
    t.ok(srv.port > 0, `serve started (password from ${how})`)
    const cmdline = readFileSync(`/proc/${srv.pid}/cmdline`, 'utf8')
    t.notOk(cmdline.includes(repoPassword) || cmdline.includes(token), 'the command line (what ps shows) holds neither the password nor the token')
    const responses: string[] = []
    const auth = `Authorization: Bearer ${token}\r\n`
    for (const req of [
      get('/', auth), get('/data/', auth), get('/data/latest/src/', auth), get('/data/latest/src/a.txt', auth), get('/data/latest/src/page.html', auth),
      get('/data/latest/src/?download=tar', auth), get('/data/', `${auth}Accept: application/json\r\n`), get('/nope', auth), get('/data/%zz', auth), get('/data/'),
      `PROPFIND /data/latest/src/ HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Depth: 1\r\nConnection: close\r\n\r\n`, `PUT /x HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Content-Length: 0\r\nConnection: close\r\n\r\n`,
    ]) responses.push((await rawRequest(srv.port, req)).text)
    // A failing read (the pack of big.bin damaged) makes the server log an error.
    if (how === 'file') {
      for (const d of readdirSync(join(s.repoDir, 'data'))) {
        for (const p of readdirSync(join(s.repoDir, 'data', d))) {
          const f = join(s.repoDir, 'data', d, p)
          const b = readFileSync(f)
          b[10] ^= 0xff
          writeFileSync(f, b)
        }
      }
      responses.push((await rawRequest(srv.port, get('/data/latest/src/big.bin', auth))).text)
    }
    await srv.stop()
    const all = responses.join('\n') + srv.output()
    t.ok(responses.filter((r) => /^HTTP\/1\.1 200/.test(r)).length >= 6, 'pages, listings and files were served')
    t.notOk(all.includes(repoPassword), `the password appears in no response and in no line the server printed (${how})`)
    t.notOk(all.includes(token), `nor does the token (${how})`)
  }
})
