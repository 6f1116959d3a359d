/**
 * Repositories of format version 1 stay readable: the checked-in fixtures
 * (fixtures/repo-v1-*, made once by fixtures/make-fixtures.ts) are copied,
 * opened, listed, restored and verified with today's code. The expected
 * contents are written out here, not taken from the generator, so a change of
 * either side is caught. The originals are never modified.
 */
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { cpSync, lstatSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  FORMAT_VERSION, PasswordError, backup, closeRepository, listSnapshots, openRepository, restore, verify, type Repository, type Snapshot,
} from '../index.js'

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures')

/** Same formula as fixtures/make-fixtures.ts; its SHA-256 is pinned below. */
function multiChunkText(): string {
  let s = ''
  for (let i = 0; s.length < 150_000; i++) s += `${i.toString(16).padStart(6, '0')} the quick brown fox ${(i * 7919) % 10007} jumps over ${(i * 104729) % 65521}\n`
  return s
}
const BIG_SHA256 = 'dcb79dbe2c0fe9bb767afedf41618743cae25e1e532e9282f79a3a104e272229'

const FILE_TIME = Date.parse('2025-12-24T18:30:00.000Z')
const FILE_TIME2 = Date.parse('2025-12-31T23:59:59.000Z')
const DIR_TIME = Date.parse('2025-12-25T08:00:00.000Z')
const RAW_NAME = Buffer.concat([Buffer.from('raw-'), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')])

interface Expected {
  time: string
  tags: string[]
  meta?: Record<string, unknown>
  /** Files under fixture-src/: content, mode, mtime (ms). */
  files: Record<string, { content: string; mode: number; mtime: number }>
  absent: string[]
}
const common = {
  'docs/notes.md': { content: '# Notes\n\nFormat version 1 fixture.\n', mode: 0o600, mtime: FILE_TIME },
  'docs/big.txt': { content: multiChunkText(), mode: 0o644, mtime: FILE_TIME },
  'run.sh': { content: '#!/bin/sh\necho fixture\n', mode: 0o755, mtime: FILE_TIME },
}
const SNAPSHOTS: Expected[] = [
  {
    time: '2026-01-02T03:04:05.000Z',
    tags: ['fixture', 'first'],
    files: { ...common, 'hello.txt': { content: 'hello, coldstore\n', mode: 0o644, mtime: FILE_TIME }, 'empty.txt': { content: '', mode: 0o644, mtime: FILE_TIME } },
    absent: ['docs/added.txt'],
  },
  {
    time: '2026-01-03T03:04:05.000Z',
    tags: ['fixture', 'second'],
    meta: { note: 'second fixture snapshot' },
    files: {
      ...common,
      'hello.txt': { content: 'hello again, coldstore\n', mode: 0o644, mtime: FILE_TIME2 },
      'docs/added.txt': { content: 'added in snapshot 2\n', mode: 0o644, mtime: FILE_TIME2 },
    },
    absent: ['empty.txt'],
  },
]

const FIXTURES = [
  {
    name: 'repo-v1-plain',
    password: null,
    encryption: 'none',
    snapshotIds: ['60d5fa541c7f75c3545f7bd4afb254dbf224e8640664530881073d8b058b786f', 'ca0307b58c01657531eac9f30aa9cb8f46ebac714f59b1a4d65f6ecc67fc7f36'],
  },
  {
    name: 'repo-v1-encrypted',
    password: 'fixture',
    encryption: 'aes-256-gcm',
    snapshotIds: ['4546cac6ea26c030f550cfa2d40917361451a1956091f776b683664ec1578710', 'cb938181a4d3f962fd948004cadf9043d687909e7987180e0fdf707c68cb6131'],
  },
] as const

/** Names and contents of every file under `dir`, as one digest. */
function treeDigest(dir: string): string {
  const h = createHash('sha256')
  const walk = (rel: string): void => {
    for (const n of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n
      if (lstatSync(join(dir, r)).isDirectory()) walk(r)
      else h.update(`${r}\0`).update(readFileSync(join(dir, r))).update('\0')
    }
  }
  walk('')
  return h.digest('hex')
}

async function checkSnapshot(t: Test, repo: Repository, s: Snapshot, want: Expected, target: string): Promise<void> {
  t.equal(s.version, 1)
  t.equal(s.kind, 'snapshot')
  t.equal(s.time, want.time)
  t.equal(s.host, 'fixture-host')
  t.equal(s.username, 'fixture-user')
  t.equal(s.job, 'fixture-job')
  t.same(s.tags, want.tags)
  t.equal(s.program, 'coldstore make-fixtures')
  t.equal(s.paths.length, 1)
  t.match(s.paths[0], /\/fixture-src$/)
  if (want.meta) t.same(s.meta, want.meta)
  t.equal(s.stats.files, Object.keys(want.files).length + 1, 'stats: files (with the raw-named one)')

  const r = await restore(repo, { snapshot: s, target })
  t.same(r.errors, [], 'restore: no errors')
  const root = join(target, 'fixture-src')
  for (const [rel, f] of Object.entries(want.files)) {
    const p = join(root, rel)
    const content = readFileSync(p)
    if (rel === 'docs/big.txt') t.equal(createHash('sha256').update(content).digest('hex'), BIG_SHA256, 'big.txt: pinned digest')
    t.ok(content.equals(Buffer.from(f.content)), `${rel}: content`)
    const st = statSync(p)
    t.equal(st.mode & 0o7777, f.mode, `${rel}: mode`)
    t.equal(st.mtimeMs, f.mtime, `${rel}: mtime`)
  }
  for (const rel of want.absent) t.throws(() => lstatSync(join(root, rel)), { code: 'ENOENT' }, `${rel}: not in this snapshot`)
  const raw = Buffer.concat([Buffer.from(root + '/'), RAW_NAME])
  t.equal(readFileSync(raw, 'utf8'), 'raw name\n', 'a name that is not UTF-8 restores byte for byte')
  t.equal(readlinkSync(join(root, 'link-to-hello')), 'hello.txt', 'symlink')
  t.equal(lstatSync(join(root, 'link-to-hello')).mtimeMs, FILE_TIME, 'symlink mtime')
  t.ok(statSync(join(root, 'empty-dir')).isDirectory(), 'empty dir')
  t.same(readdirSync(join(root, 'empty-dir')), [])
  for (const d of ['.', 'docs', 'empty-dir']) t.equal(statSync(join(root, d)).mtimeMs, DIR_TIME, `dir ${d}: mtime`)
}

for (const fx of FIXTURES) {
  t.test(`format v1 fixture ${fx.name}`, async (t) => {
    const original = join(fixtures, fx.name)
    const before = treeDigest(original)
    const dir = t.testdir()
    const copy = join(dir, 'repo')
    cpSync(original, copy, { recursive: true })

    const config = JSON.parse(readFileSync(join(copy, 'config'), 'utf8')) as { version: number; encryption: string }
    t.equal(config.version, 1, 'the fixture is format version 1')
    t.ok(FORMAT_VERSION >= 1)
    t.equal(config.encryption, fx.encryption)

    if (fx.password !== null) {
      await t.rejects(openRepository({ url: copy, password: 'not the password', cacheDir: join(dir, 'cache-x') }), PasswordError)
    }
    const repo = await openRepository({ url: copy, password: fx.password, cacheDir: join(dir, 'cache') })
    t.teardown(() => closeRepository(repo))
    t.equal(repo.config.encryption, fx.encryption)

    const snaps = await listSnapshots(repo)
    t.same(snaps.map((s) => s.id), fx.snapshotIds, 'the two snapshots, oldest first')
    for (const [i, s] of snaps.entries()) {
      await t.test(`snapshot ${i + 1} (${s.id.slice(0, 8)})`, (t) => checkSnapshot(t, repo, s, SNAPSHOTS[i], join(dir, `out-${i + 1}`)))
    }

    const v = await verify(repo, { readData: 1 })
    t.ok(v.ok, 'verify --read-data')
    t.same(v.findings, [])
    t.equal(v.stats.snapshots, 2)
    t.equal(v.stats.packs_read, v.stats.packs)

    // Today's code can also add to a version-1 repository.
    const src = join(dir, 'new-src')
    mkdirSync(src)
    writeFileSync(join(src, 'new.txt'), 'written by a newer coldstore\n')
    const b = await backup(repo, { paths: [src], hostname: 'h', username: 'u', program: 'test', now: () => new Date('2026-06-01T00:00:00Z'), workers: 1 })
    t.ok(b.id)
    const v2 = await verify(repo, { readData: 1 })
    t.ok(v2.ok, 'verify after adding a snapshot')
    t.equal(v2.stats.snapshots, 3)

    t.equal(treeDigest(original), before, 'the checked-in fixture is unchanged')
  })
}
