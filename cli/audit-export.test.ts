/**
 * End-to-end tests of the audit trail, export packages and GitHub releases
 * through the built CLI (child processes of dist/bundle/coldstore.js):
 *
 * - snapshot, restore, verify and export append hash-chained audit entries;
 *   `audit --verify` exits 1 on a removed, altered or reordered entry and on an
 *   altered snapshot object; signed entries are checked with --audit-pubkey;
 * - `export` writes .tar / .tar.zst packages that plain tar, zstd, b3sum and
 *   sha256sum unpack and check, and `verify FILE.tar[.zst]` finds altered,
 *   missing and extra files;
 * - `export --github-release` talks to a local HTTP server on 127.0.0.1 that
 *   records every request, with a real git repository for the tag and origin.
 */
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { seededBytes } from '../engine/testing/test-repo.js'
import { CLI, ROOT, ensureBuilt } from './testing/build.js'

const PASSWORD = 'correct horse battery staple'
ensureBuilt(t)

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

function run(args: readonly string[], env: NodeJS.ProcessEnv, cwd = ROOT): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 })
    const out: Buffer[] = []
    const errs: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => errs.push(d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errs).toString('utf8') }))
  })
}

function exits(t: Test, r: Result, code: number, what: string): boolean {
  return t.equal(r.code, code, `${what}: exit ${code}`, r.code === code ? {} : { stdout: r.stdout.slice(0, 3000), stderr: r.stderr.slice(0, 3000) })
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function json(t: Test, r: Result, what: string): any {
  try {
    return JSON.parse(r.stdout)
  } catch {
    t.fail(`${what}: stdout is not one JSON document`, { stdout: r.stdout.slice(0, 2000), stderr: r.stderr.slice(0, 2000) })
    return {}
  }
}

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

/** Fails (in CI) or skips the test when a tool is missing. */
function need(t: Test, ...cmds: string[]): boolean {
  const missing = cmds.filter((c) => !which(c))
  if (missing.length === 0) return true
  if (process.env.CI === 'true') t.fail(`${missing.join(', ')} not installed (CI installs them in .ci/run)`)
  else t.pass('skipped', { skip: `${missing.join(', ')} not installed` })
  return false
}

function sh(t: Test, cmd: string, args: string[], cwd: string, input?: Buffer): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, input, encoding: 'utf8', maxBuffer: 64 << 20 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

// ---------------------------------------------------------------------------

const base = t.testdir()
const home = join(base, 'home')
mkdirSync(home, { recursive: true })
const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', COLDSTORE_PASSWORD: PASSWORD }
const repoDir = join(base, 'repo')
const cacheDir = join(base, 'cache')
const cs = (args: string[], extra: NodeJS.ProcessEnv = {}, cwd?: string): Promise<Result> =>
  run([...args, '--repo', repoDir, '--cache-dir', cacheDir], { ...env, ...extra }, cwd)

const src = join(base, 'project')
const MARKER = 'UNIQUE-MARKER-CONTENT-0123456789 '.repeat(40)
const sourceFiles: Record<string, Buffer> = {
  'README.md': Buffer.from('# project\n'),
  'data/measurements.csv': Buffer.from('t,v\n1,2\n3,4\n'),
  'data/big.bin': seededBytes('big', 700_000),
  'data/empty': Buffer.alloc(0),
  'notes/marker.txt': Buffer.from(MARKER),
  'notes/back\\slash.txt': Buffer.from('backslash'),
  'notes/new\nline.txt': Buffer.from('newline'),
  'notes/ünïcødé ☃.txt': Buffer.from('unicode'),
}
for (const [p, b] of Object.entries(sourceFiles)) {
  mkdirSync(join(src, p, '..'), { recursive: true })
  writeFileSync(join(src, p), b)
}
chmodSync(join(src, 'README.md'), 0o755)
symlinkSync('README.md', join(src, 'link-to-readme'))

let snapId = ''

t.test('snapshot, verify and restore record hash-chained audit entries', async (t) => {
  exits(t, await cs(['init', '--quiet']), 0, 'init')
  const s = await cs(['snapshot', src, '--json', '--tag', 'v1'])
  exits(t, s, 0, 'snapshot')
  snapId = json(t, s, 'snapshot').id
  exits(t, await cs(['verify', '--quiet']), 0, 'verify')
  exits(t, await cs(['restore', 'latest', '--target', join(base, 'restored'), '--quiet']), 0, 'restore')
  const a = await cs(['audit', '--json'])
  exits(t, a, 0, 'audit --json')
  const doc = json(t, a, 'audit')
  t.same(doc.entries.map((e: { operation: string }) => e.operation), ['snapshot', 'verify', 'restore'])
  t.same(doc.entries.map((e: { seq: number }) => e.seq), [1, 2, 3])
  t.equal(doc.entries[0].snapshot.id, snapId, 'the snapshot entry names the snapshot')
  t.equal(doc.entries[2].snapshot.id, snapId, 'the restore entry names what was restored')
  t.equal(doc.entries[1].prev, doc.entries[0].id)
  t.equal(doc.entries[2].prev, doc.entries[1].id)
  t.match(doc.entries[0], { host: /./, username: /./, program: /^coldstore /, summary: { files: 8 } })
  t.equal(doc.verify, null, 'no verification without --verify')
  t.same(readdirSync(join(repoDir, 'audit')).sort().map((n) => n.slice(0, 11)), ['0000000001', '0000000001-', '0000000002', '0000000002-', '0000000003', '0000000003-'], 'entries and their claims')

  const v = await cs(['audit', '--verify', '--json'])
  exits(t, v, 0, 'audit --verify')
  t.match(json(t, v, 'audit --verify').verify, { ok: true, entries: 3, head: { seq: 3 }, snapshots: { total: 1, covered: 1 } })
  const text = await cs(['audit', '--verify'])
  exits(t, text, 0, 'audit --verify (text)')
  t.match(text.stdout, /audit trail intact: 3 entries/)
  t.match(text.stdout, /snapshot +[0-9a-f]{8}/)
})

const entryNames = (dir: string): string[] => readdirSync(join(dir, 'audit')).filter((n) => n.includes('-')).sort()

t.test('audit --verify exits 1 on tampering', async (t) => {
  const cases: [string, (dir: string) => void, string][] = [
    ['a removed entry', (dir) => {
      const name = entryNames(dir)[1]
      rmSync(join(dir, 'audit', name))
      rmSync(join(dir, 'audit', name.slice(0, 10)))
    }, 'missing_entry'],
    ['an altered entry', (dir) => {
      const f = join(dir, 'audit', entryNames(dir)[0])
      const b = readFileSync(f)
      b[b.length - 5] ^= 0x20
      writeFileSync(f, b)
    }, 'altered_entry'],
    ['reordered entries', (dir) => {
      const names = entryNames(dir)
      renameSync(join(dir, 'audit', names[0]), join(dir, 'audit', `0000000002-${names[0].slice(11)}`))
      renameSync(join(dir, 'audit', names[1]), join(dir, 'audit', `0000000001-${names[1].slice(11)}`))
    }, 'seq_mismatch'],
    ['an altered snapshot object', (dir) => {
      const f = join(dir, 'snapshots', readdirSync(join(dir, 'snapshots'))[0])
      const b = readFileSync(f)
      b[40] ^= 1
      writeFileSync(f, b)
    }, 'altered_snapshot'],
  ]
  for (const [what, damage, kind] of cases) {
    const dir = join(base, `tampered-${kind}`)
    cpSync(repoDir, dir, { recursive: true })
    damage(dir)
    const r = await run(['audit', '--verify', '--json', '--repo', dir, '--cache-dir', join(base, `cache-${kind}`)], env)
    exits(t, r, 1, `audit --verify after ${what}`)
    const doc = json(t, r, what)
    t.equal(doc.verify?.ok, false, `${what}: not ok`)
    t.ok(doc.verify?.findings.some((f: { kind: string; severity: string }) => f.kind === kind && f.severity === 'error'), `${what}: reported as ${kind}`, { findings: doc.verify?.findings })
    const text = await run(['audit', '--verify', '--repo', dir, '--cache-dir', join(base, `cache-${kind}`)], env)
    exits(t, text, 1, `audit --verify (text) after ${what}`)
    t.match(text.stdout, new RegExp(`error: ${kind}: `))
  }
})

t.test('export .tar.zst: plain zstd, tar, b3sum and sha256sum unpack and check it', async (t) => {
  const pkg = join(base, 'out', 'project-v1.tar.zst')
  mkdirSync(join(base, 'out'))
  const r = await cs(['export', snapId.slice(0, 12), '--output', pkg, '--name', 'project-v1', '--json'])
  exits(t, r, 0, 'export')
  const doc = json(t, r, 'export')
  t.match(doc, { snapshot: snapId, name: 'project-v1', compressed: true, files: 8, symlinks: 1, bytes: Object.values(sourceFiles).reduce((n, b) => n + b.length, 0) })
  t.match(doc.manifest_blake3, /^[0-9a-f]{64}$/)
  t.equal(doc.package_bytes, statSync(pkg).size)
  t.same(readdirSync(join(base, 'out')), ['project-v1.tar.zst'], 'no temporary files left')
  if (!need(t, 'zstd', 'tar', 'b3sum', 'sha256sum')) return
  const x = join(base, 'unpacked-zst')
  mkdirSync(x)
  const tarred = spawnSync('zstd', ['-dc', pkg], { maxBuffer: 64 << 20 })
  t.equal(tarred.status, 0, 'zstd -dc')
  const tarOut = sh(t, 'tar', ['-xf', '-'], x, tarred.stdout)
  t.equal(tarOut.status, 0, 'zstd -dc | tar -x', { stderr: tarOut.stderr })
  const top = join(x, 'project-v1')
  t.same(readdirSync(top).sort(), ['MANIFEST.b3', 'README.txt', 'SHA256SUMS', 'coldstore-metadata.yaml', 'files'])
  const b3 = sh(t, 'b3sum', ['--check', 'MANIFEST.b3'], top)
  t.equal(b3.status, 0, 'b3sum --check MANIFEST.b3', { stdout: b3.stdout, stderr: b3.stderr })
  t.equal(b3.stdout.trim().split('\n').length, 8, 'b3sum checked every file')
  const s2 = sh(t, 'sha256sum', ['--check', 'SHA256SUMS'], top)
  t.equal(s2.status, 0, 'sha256sum --check SHA256SUMS', { stdout: s2.stdout, stderr: s2.stderr })
  t.equal(sh(t, 'b3sum', ['--no-names', 'MANIFEST.b3'], top).stdout.trim(), doc.manifest_blake3, 'the printed digest is the manifest\'s')
  for (const [p, b] of Object.entries(sourceFiles)) {
    t.ok(readFileSync(join(top, 'files', 'project', p)).equals(b), `files/project/${JSON.stringify(p)} has the source's bytes`)
  }
  t.equal(statSync(join(top, 'files/project/README.md')).mode & 0o777, 0o755, 'modes kept')
  t.equal(Math.floor(statSync(join(top, 'files/project/data/big.bin')).mtimeMs / 1000), Math.floor(statSync(join(src, 'data/big.bin')).mtimeMs / 1000), 'mtimes kept')
  t.equal(readFileSync(join(top, 'files/project/link-to-readme'), 'utf8'), '# project\n', 'the symlink is a symlink to the file')
  const meta = parseYaml(readFileSync(join(top, 'coldstore-metadata.yaml'), 'utf8'))
  t.match(meta, { coldstore_package: 1, snapshot: { id: snapId, kind: 'snapshot', tags: ['v1'], paths: [src], stats: { files: 8 } }, package: { name: 'project-v1', files: 8 } })
  t.match(readFileSync(join(top, 'README.txt'), 'utf8'), /b3sum --check MANIFEST\.b3/)
  const manifest = readFileSync(join(top, 'MANIFEST.b3'), 'utf8')
  t.match(manifest, /^\\[0-9a-f]{64} {2}files\/project\/notes\/back\\\\slash\.txt$/m, 'a backslash is escaped as b3sum does')
  t.match(manifest, /^\\[0-9a-f]{64} {2}files\/project\/notes\/new\\nline\.txt$/m, 'a newline is escaped as b3sum does')

  const v = await run(['verify', pkg, '--json'], env)
  exits(t, v, 0, 'coldstore verify FILE.tar.zst')
  t.match(json(t, v, 'verify package'), { ok: true, name: 'project-v1', files: 8, checked_blake3: 8, checked_sha256: 8, manifest_blake3: doc.manifest_blake3, problems: [] })

  const audit = json(t, await cs(['audit', '--json']), 'audit')
  t.match(audit.entries.at(-1), { operation: 'export', snapshot: { id: snapId }, summary: { package: 'project-v1.tar.zst', manifest_blake3: doc.manifest_blake3 } })

  const nodir = await cs(['export', snapId, '--output', join(base, 'no-such-folder', 'x.tar')])
  exits(t, nodir, 2, 'export into a missing folder')
  t.match(nodir.stderr, /does not exist/)

  const again = await cs(['export', snapId, '--output', pkg])
  exits(t, again, 2, 'export onto an existing file')
  t.match(again.stderr, /exists: not replacing it/)
})

t.test('export .tar, and tampered packages are detected', async (t) => {
  const pkg = join(base, 'plain.tar')
  exits(t, await cs(['export', 'latest', '--output', pkg, '--quiet']), 0, 'export .tar')
  exits(t, await run(['verify', pkg], env), 0, 'verify .tar')
  if (!need(t, 'tar', 'b3sum', 'zstd')) return
  const name = `coldstore-${snapId.slice(0, 8)}`

  // One byte of a file changed in place.
  const altered = join(base, 'altered.tar')
  const bytes = readFileSync(pkg)
  const at = bytes.indexOf(Buffer.from('UNIQUE-MARKER'))
  t.ok(at > 0, 'the marker file is stored uncompressed in the .tar')
  bytes[at] ^= 0x01
  writeFileSync(altered, bytes)
  let r = await run(['verify', altered, '--json'], env)
  exits(t, r, 1, 'verify altered package')
  let doc = json(t, r, 'verify altered')
  t.same(doc.problems.map((p: { kind: string; path: string }) => [p.kind, p.path]), [['altered', 'files/project/notes/marker.txt']])
  r = await run(['verify', altered], env)
  exits(t, r, 1, 'verify altered package (text)')
  t.match(r.stdout, /error: altered: files\/project\/notes\/marker\.txt: content does not match MANIFEST\.b3/)
  const x = join(base, 'unpacked-altered')
  mkdirSync(x)
  t.equal(sh(t, 'tar', ['-xf', altered], x).status, 0)
  const b3 = sh(t, 'b3sum', ['--check', 'MANIFEST.b3'], join(x, name))
  t.not(b3.status, 0, 'b3sum --check fails on the altered package too')
  t.match(b3.stdout, /marker\.txt: FAILED/)

  // The same, compressed.
  const alteredZst = join(base, 'altered.tar.zst')
  t.equal(spawnSync('zstd', ['-q', '-o', alteredZst, altered]).status, 0)
  exits(t, await run(['verify', alteredZst], env), 1, 'verify altered .tar.zst')

  // A file deleted, and one added.
  const removed = join(base, 'removed.tar')
  cpSync(pkg, removed)
  t.equal(sh(t, 'tar', ['--delete', '-f', removed, `${name}/files/project/data/measurements.csv`], base).status, 0, 'tar --delete')
  doc = json(t, await run(['verify', removed, '--json'], env), 'verify removed')
  t.same(doc.problems.map((p: { kind: string; path: string }) => [p.kind, p.path]), [['missing', 'files/project/data/measurements.csv']])
  const added = join(base, 'added.tar')
  cpSync(pkg, added)
  mkdirSync(join(base, 'extra', name, 'files'), { recursive: true })
  writeFileSync(join(base, 'extra', name, 'files', 'smuggled.txt'), 'not from the snapshot')
  t.equal(sh(t, 'tar', ['-rf', added, `${name}/files/smuggled.txt`], join(base, 'extra')).status, 0, 'tar -r')
  r = await run(['verify', added, '--json'], env)
  exits(t, r, 1, 'verify package with an extra file')
  doc = json(t, r, 'verify added')
  t.same(doc.problems.map((p: { kind: string; path: string }) => [p.kind, p.path]), [['extra', 'files/smuggled.txt']])

  // A truncated package.
  const cut = join(base, 'cut.tar.zst')
  writeFileSync(cut, readFileSync(join(base, 'out', 'project-v1.tar.zst')).subarray(0, 2000))
  r = await run(['verify', cut, '--json'], env)
  exits(t, r, 1, 'verify truncated package')
  t.ok(json(t, r, 'cut').problems.some((p: { kind: string }) => p.kind === 'unreadable' || p.kind === 'manifest'))
})

t.test('concurrent commands in separate processes each record their entry', async (t) => {
  const before = json(t, await cs(['audit', '--json']), 'audit before').entries.length
  const runs = await Promise.all([0, 1, 2, 3].map(() => cs(['verify', '--quiet'])))
  runs.forEach((r, i) => exits(t, r, 0, `verify ${i}`))
  const r = await cs(['audit', '--verify', '--json'])
  exits(t, r, 0, 'audit --verify after concurrent appends')
  const doc = json(t, r, 'audit')
  t.equal(doc.entries.length, before + 4, 'four more entries, none lost')
  t.same(doc.entries.map((e: { seq: number }) => e.seq), doc.entries.map((_: unknown, i: number) => i + 1), 'one chain, no duplicate seq')
  t.same(doc.verify.findings.filter((f: { severity: string }) => f.severity !== 'info'), [], 'no orphans or other findings')
})

t.test('verify of a package file that does not exist is a usage error', async (t) => {
  const r = await run(['verify', join(base, 'nope.tar.zst')], env)
  exits(t, r, 2, 'verify missing package')
  t.match(r.stderr, /no such package file/)
})

t.test('names the manifests cannot hold are refused before anything is written', async (t) => {
  const dir = join(base, 'cr-src')
  mkdirSync(dir)
  writeFileSync(join(dir, 'carriage\rreturn.txt'), 'x')
  const s = await cs(['snapshot', dir, '--json'])
  exits(t, s, 0, 'snapshot')
  const id = json(t, s, 'snapshot').id
  const out = join(base, 'cr.tar')
  const r = await cs(['export', id, '--output', out])
  exits(t, r, 2, 'export')
  t.match(r.stderr, /carriage return/)
  t.notOk(existsSync(out), 'no package written')
  t.same(readdirSync(base).filter((n) => n.includes('cr.tar')), [], 'no temporary files left')
})

t.test('signed audit entries: keygen, --audit-key, audit --verify --audit-pubkey', async (t) => {
  const key = join(base, 'audit.pem')
  const k = await run(['audit', 'keygen', '--output', key, '--json'], env)
  exits(t, k, 0, 'audit keygen')
  t.match(json(t, k, 'keygen'), { private_key: key, public_key: `${key}.pub`, key_id: /^[0-9a-f]{32}$/ })
  t.equal(statSync(key).mode & 0o777, 0o600, 'the private key is private')
  exits(t, await run(['audit', 'keygen', '--output', key], env), 2, 'keygen does not replace a key')

  exits(t, await cs(['snapshot', src, '--audit-key', key, '--quiet']), 0, 'snapshot signed with --audit-key')
  exits(t, await cs(['verify', '--quiet'], { COLDSTORE_AUDIT_KEY: key }), 0, 'verify signed through COLDSTORE_AUDIT_KEY')
  let r = await cs(['audit', '--verify', '--audit-pubkey', `${key}.pub`, '--json'])
  exits(t, r, 0, 'audit --verify --audit-pubkey')
  let doc = json(t, r, 'audit verify signed')
  t.equal(doc.verify.signed, 2)
  t.ok(doc.verify.findings.every((f: { severity: string }) => f.severity !== 'error'))
  t.ok(doc.verify.findings.some((f: { kind: string; severity: string }) => f.kind === 'unsigned_entry' && f.severity === 'info'), 'older unsigned entries are reported')
  t.equal(doc.entries.at(-1).signature.key_id, json(t, k, 'keygen').key_id)

  // An entry without a signature after signing began.
  exits(t, await cs(['verify', '--quiet']), 0, 'verify without the key')
  r = await cs(['audit', '--verify', '--audit-pubkey', `${key}.pub`, '--json'])
  exits(t, r, 1, 'audit --verify --audit-pubkey with an unsigned newest entry')
  doc = json(t, r, 'audit verify unsigned')
  t.ok(doc.verify.findings.some((f: { kind: string; severity: string; seq: number }) => f.kind === 'unsigned_entry' && f.severity === 'error' && f.seq === doc.verify.head.seq))

  // A bad key stops the command before it does anything.
  writeFileSync(join(base, 'not-a-key.pem'), 'hello')
  const before = readdirSync(join(repoDir, 'snapshots')).length
  r = await cs(['snapshot', src, '--audit-key', join(base, 'not-a-key.pem')])
  exits(t, r, 2, 'snapshot with a bad audit key')
  t.match(r.stderr, /not a PEM private key/)
  t.equal(readdirSync(join(repoDir, 'snapshots')).length, before, 'no snapshot written')
})

// ---------------------------------------------------------------------------
// GitHub releases against a recording server.

interface Recorded {
  method: string
  path: string
  authorization?: string
  contentType?: string
  contentLength?: string
  bodyBytes: number
  bodySha: string
  body: Buffer
}

interface FakeGithub {
  url: string
  requests: Recorded[]
  release: { id: number; tag_name: string; upload_url: string; html_url: string } | null
  assets: Map<number, { id: number; name: string; size: number; sha: string }>
  close(): Promise<void>
}

async function fakeGithub(owner: string, repo: string): Promise<FakeGithub> {
  const state: FakeGithub = { url: '', requests: [], release: null, assets: new Map(), close: async () => undefined }
  let nextAsset = 100
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (d: Buffer) => parts.push(d))
    req.on('end', () => {
      const body = Buffer.concat(parts)
      state.requests.push({
        method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization, contentType: req.headers['content-type'],
        contentLength: req.headers['content-length'], bodyBytes: body.length, bodySha: sha256(body), body,
      })
      const send = (status: number, value?: unknown): void => {
        const data = value === undefined ? '' : JSON.stringify(value)
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end(data)
      }
      const u = new URL(req.url ?? '/', state.url)
      const api = `/repos/${owner}/${repo}`
      if (req.headers.authorization !== 'Bearer test-token') return send(401, { message: 'Bad credentials' })
      if (req.method === 'GET' && u.pathname.startsWith(`${api}/releases/tags/`)) {
        const tag = decodeURIComponent(u.pathname.slice(`${api}/releases/tags/`.length))
        return state.release && state.release.tag_name === tag ? send(200, state.release) : send(404, { message: 'Not Found' })
      }
      if (req.method === 'POST' && u.pathname === `${api}/releases`) {
        const b = JSON.parse(body.toString()) as { tag_name: string }
        state.release = {
          id: 7, tag_name: b.tag_name, html_url: `https://github.example/${owner}/${repo}/releases/tag/${b.tag_name}`,
          upload_url: `${state.url}/uploads${api}/releases/7/assets{?name,label}`,
        }
        return send(201, state.release)
      }
      if (req.method === 'GET' && u.pathname === `${api}/releases/7/assets`) return send(200, [...state.assets.values()])
      const del = new RegExp(`^${api}/releases/assets/(\\d+)$`).exec(u.pathname)
      if (req.method === 'DELETE' && del) {
        state.assets.delete(Number(del[1]))
        res.writeHead(204)
        return res.end()
      }
      if (req.method === 'POST' && u.pathname === `/uploads${api}/releases/7/assets`) {
        const name = u.searchParams.get('name') ?? ''
        if ([...state.assets.values()].some((a) => a.name === name)) return send(422, { message: 'already_exists' })
        const a = { id: nextAsset++, name, size: body.length, sha: sha256(body) }
        state.assets.set(a.id, a)
        return send(201, { ...a, browser_download_url: `https://github.example/download/${name}` })
      }
      send(404, { message: 'Not Found' })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  state.close = () => new Promise<void>((resolve) => server.close(() => resolve()))
  return state
}

function git(t: Test, dir: string, ...args: string[]): void {
  const r = spawnSync('git', args, { cwd: dir, encoding: 'utf8', env: { ...env, GIT_AUTHOR_NAME: 'A', GIT_AUTHOR_EMAIL: 'a@example.org', GIT_COMMITTER_NAME: 'A', GIT_COMMITTER_EMAIL: 'a@example.org' } })
  if (r.status !== 0) t.fail(`git ${args.join(' ')}: ${r.stderr}`)
}

t.test('export --github-release creates the release, then replaces its assets', async (t) => {
  if (!need(t, 'git')) return
  const gh = await fakeGithub('acme', 'thesis')
  t.teardown(() => gh.close())
  const work = join(base, 'gitwork')
  mkdirSync(work)
  git(t, work, 'init', '-q')
  writeFileSync(join(work, 'paper.tex'), '\\documentclass{article}')
  git(t, work, 'add', '.')
  git(t, work, 'commit', '-q', '-m', 'paper')
  git(t, work, 'remote', 'add', 'origin', 'git@github.com:acme/thesis.git')
  git(t, work, 'tag', 'v1.0')
  const ghEnv = { GITHUB_TOKEN: 'test-token', GITHUB_API_URL: gh.url }
  const pkg = join(base, 'release', 'thesis-v1.0.tar.zst')
  mkdirSync(join(base, 'release'))

  // Missing token: exit 2 before anything is exported or sent.
  let r = await cs(['export', snapId, '--output', pkg, '--github-release'], {}, work)
  exits(t, r, 2, 'without GITHUB_TOKEN')
  t.match(r.stderr, /GITHUB_TOKEN/)
  t.notOk(existsSync(pkg), 'nothing exported')
  t.equal(gh.requests.length, 0, 'nothing sent')

  // First run: the release is created.
  r = await cs(['export', snapId, '--output', pkg, '--github-release', '--json'], ghEnv, work)
  exits(t, r, 0, 'export --github-release')
  let doc = json(t, r, 'export --github-release')
  t.match(doc.github_release, { release_id: 7, tag: 'v1.0', created: true, assets: [{ name: 'thesis-v1.0.tar.zst', replaced: false }, { name: 'thesis-v1.0.tar.zst.verify.json', replaced: false }] })
  t.match(doc.verification, { ok: true, files: 8 })
  t.same(gh.requests.map((q) => `${q.method} ${q.path}`), [
    'GET /repos/acme/thesis/releases/tags/v1.0',
    'POST /repos/acme/thesis/releases',
    'GET /repos/acme/thesis/releases/7/assets?per_page=100&page=1',
    'POST /uploads/repos/acme/thesis/releases/7/assets?name=thesis-v1.0.tar.zst',
    'POST /uploads/repos/acme/thesis/releases/7/assets?name=thesis-v1.0.tar.zst.verify.json',
  ])
  t.ok(gh.requests.every((q) => q.authorization === 'Bearer test-token'), 'every request carries the token')
  const create = JSON.parse(gh.requests[1].body.toString())
  t.match(create, { tag_name: 'v1.0', name: 'v1.0', draft: false })
  t.match(create.body, new RegExp(doc.manifest_blake3), 'the release notes pin the manifest digest')
  const upload = gh.requests[3]
  t.equal(upload.contentType, 'application/zstd')
  t.equal(upload.contentLength, String(statSync(pkg).size))
  t.equal(upload.bodySha, sha256(readFileSync(pkg)), 'the uploaded bytes are the package')
  const report = JSON.parse(gh.requests[4].body.toString())
  t.equal(gh.requests[4].contentType, 'application/json')
  t.match(report, { ok: true, package: 'thesis-v1.0.tar.zst', snapshot: snapId, manifest_blake3: doc.manifest_blake3 })
  t.equal(gh.assets.size, 2)

  // Second run (the release and both assets exist): assets are deleted, then uploaded again.
  gh.requests.length = 0
  r = await cs(['export', snapId, '--output', pkg, '--overwrite', '--github-release', '--github-api-url', gh.url, '--source', work], { GITHUB_TOKEN: 'test-token' })
  exits(t, r, 0, 'export --github-release, update')
  t.match(r.stdout, /GitHub release v1\.0 updated: thesis-v1\.0\.tar\.zst \(replaced\)/)
  t.same(gh.requests.map((q) => `${q.method} ${q.path.replace(/\d{3}$/, 'N')}`), [
    'GET /repos/acme/thesis/releases/tags/v1.0',
    'GET /repos/acme/thesis/releases/7/assets?per_page=100&page=1',
    'DELETE /repos/acme/thesis/releases/assets/N',
    'POST /uploads/repos/acme/thesis/releases/7/assets?name=thesis-v1.0.tar.zst',
    'DELETE /repos/acme/thesis/releases/assets/N',
    'POST /uploads/repos/acme/thesis/releases/7/assets?name=thesis-v1.0.tar.zst.verify.json',
  ])
  t.equal(gh.assets.size, 2, 'still two assets')
  t.same([...gh.assets.values()].map((a) => a.name).sort(), ['thesis-v1.0.tar.zst', 'thesis-v1.0.tar.zst.verify.json'])
  t.equal([...gh.assets.values()].find((a) => a.name.endsWith('.zst'))?.sha, sha256(readFileSync(pkg)))

  // A bad token: the API's answer, exit 1.
  gh.requests.length = 0
  r = await cs(['export', snapId, '--output', pkg, '--overwrite', '--github-release'], { ...ghEnv, GITHUB_TOKEN: 'wrong' }, work)
  exits(t, r, 1, 'export --github-release with a bad token')
  t.match(r.stderr, /401 Bad credentials/)

  // No tag at HEAD: exit 2, nothing sent.
  writeFileSync(join(work, 'more.tex'), 'x')
  git(t, work, 'add', '.')
  git(t, work, 'commit', '-q', '-m', 'more')
  gh.requests.length = 0
  r = await cs(['export', snapId, '--output', join(base, 'release', 'untagged.tar'), '--github-release'], ghEnv, work)
  exits(t, r, 2, 'export --github-release without a tag at HEAD')
  t.match(r.stderr, /has no tag/)
  t.equal(gh.requests.length, 0)
})

t.test('freeze --github-release: the freeze is recorded in the audit trail, exported, verified and attached to the release', async (t) => {
  if (!need(t, 'git', 'zstd', 'tar', 'b3sum')) return
  const gh = await fakeGithub('lab', 'paper')
  t.teardown(() => gh.close())
  const work = join(base, 'freeze-gitwork')
  mkdirSync(work)
  git(t, work, 'init', '-q')
  writeFileSync(join(work, 'paper.tex'), '\\documentclass{article} % submitted')
  mkdirSync(join(work, 'data'))
  writeFileSync(join(work, 'data', 'results.csv'), 'a,b\n1,2\n')
  git(t, work, 'add', '.')
  git(t, work, 'commit', '-q', '-m', 'submission')
  git(t, work, 'remote', 'add', 'origin', 'https://github.com/lab/paper.git')
  git(t, work, 'tag', 'v1.0-submission')
  const dest = join(base, 'freeze-repo')
  const ghEnv = { GITHUB_TOKEN: 'test-token', GITHUB_API_URL: gh.url }

  // A dry run validates the release target but publishes nothing and records nothing.
  let r = await cs(['freeze', '--milestone', 'PNAS submission', '--github-release', '--dry-run', '.', dest], ghEnv, work)
  exits(t, r, 0, 'freeze --dry-run --github-release')
  t.equal(gh.requests.length, 0, 'a dry run sends nothing')

  r = await cs(['freeze', '--milestone', 'PNAS submission', '--github-release', '--json', '.', dest], ghEnv, work)
  exits(t, r, 0, 'freeze --github-release')
  const doc = json(t, r, 'freeze --github-release')
  const pkgName = `coldstore-${doc.short_id}.tar.zst`
  t.equal(doc.export.output, pkgName)
  t.match(doc.github_release, { tag: 'v1.0-submission', created: true, assets: [{ name: pkgName }, { name: `${pkgName}.verify.json` }] })
  const upload = gh.requests.find((q) => q.path.endsWith(`?name=${pkgName}`))
  t.ok(upload, 'the package was uploaded')
  t.equal(upload?.bodySha, sha256(readFileSync(join(work, pkgName))), 'the uploaded bytes are the package')

  // The package checks with plain tools.
  const unpack = join(base, 'freeze-unpacked')
  mkdirSync(unpack)
  const tar = sh(t, 'sh', ['-c', `zstd -dc ${JSON.stringify(join(work, pkgName))} | tar -xf -`], unpack)
  t.equal(tar.status, 0, tar.stderr)
  const top = readdirSync(unpack)[0]
  const b3 = sh(t, 'b3sum', ['--check', 'MANIFEST.b3'], join(unpack, top))
  t.equal(b3.status, 0, `b3sum --check: ${b3.stderr}`)
  t.match(readFileSync(join(unpack, top, 'coldstore-metadata.yaml'), 'utf8'), /PNAS submission/, 'the freeze metadata travels with the package')

  // The audit trail names the freeze.
  r = await run(['audit', '--repo', dest, '--cache-dir', cacheDir, '--verify', '--json'], env)
  exits(t, r, 0, 'audit --verify after a freeze')
  const audit = json(t, r, 'audit --verify')
  t.ok(audit.entries.some((e: { operation: string; snapshot?: { id: string } }) => e.operation === 'freeze' && e.snapshot?.id === doc.id), 'a freeze entry names the freeze')
  t.equal(audit.verify.ok, true)
})
