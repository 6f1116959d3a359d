/**
 * Job locks across real processes (one winner, stale locks of dead or reused pids taken over, waiting for a
 * release) and the journal (concurrent appenders, follow, sealing, compression, rotation, verification).
 */
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decompress } from 'zstd-napi'
import { JobLocks, type LockRecord } from './lock.js'
import { Journal, dayOf, parseJournalText } from './journal.js'
import { processIdentity } from './process-identity.js'
import type { JournalEvent } from './events.js'

const CHILD = fileURLToPath(new URL('../testing/jobs-child.ts', import.meta.url))
const loaderArgs = process.execArgv.filter((a) => a.includes('@tapjs/typescript') || a.includes('ts-node') || a.includes('tsx'))
const host = hostname()
const now = (): Date => new Date()

function child(args: string[]): ChildProcess {
  return spawn(process.execPath, [...loaderArgs, CHILD, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
}

function firstLine(c: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = ''
    c.stdout!.on('data', (d: Buffer) => {
      s += d.toString()
      const i = s.indexOf('\n')
      if (i >= 0) resolve(s.slice(0, i))
    })
    c.on('exit', (code) => reject(new Error(`child exited ${code} before answering`)))
  })
}

function exited(c: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (c.exitCode !== null ? resolve(c.exitCode) : c.on('exit', (code) => resolve(code))))
}

t.test('locks: one winner among processes; a live holder blocks; release frees', async (t) => {
  const dir = t.testdir()
  const kids = Array.from({ length: 4 }, () => child(['lock', dir, 'job.photos']))
  t.teardown(() => kids.forEach((k) => k.kill()))
  const answers = (await Promise.all(kids.map(firstLine))).map((l) => JSON.parse(l) as { acquired: boolean; holder: number | null })
  t.equal(answers.filter((a) => a.acquired).length, 1, 'exactly one process holds the lock')
  const winner = kids[answers.findIndex((a) => a.acquired)]
  for (const a of answers.filter((x) => !x.acquired)) t.equal(a.holder, winner.pid, 'the others name the holder')
  const locks = new JobLocks({ dir, host, now })
  t.equal((await locks.holder('job.photos'))?.pid, winner.pid, 'holder() sees the live process')
  const mine = await locks.tryAcquire('job.photos', { run: null, purpose: 'test' })
  t.notOk(mine.lock, 'this process cannot take it either')
  // Waiting: acquire resolves once the holder releases (the lock folder changes).
  const waiting = locks.acquire('job.photos', { run: 'r2', purpose: 'test' }, { pollMs: 60_000 })
  for (const k of kids) k.stdin!.end()
  await Promise.all(kids.map(exited))
  const held = await waiting
  t.equal(held.record.run, 'r2', 'acquired after the release, woken by the folder change')
  t.ok(await held.isHeld())
  await held.release()
  t.notOk(existsSync(join(dir, 'job.photos.lock')), 'released: the file is gone')
  t.equal(await locks.holder('job.photos'), null)
})

t.test('locks: stale locks (dead process, reused pid, garbage) are taken over', async (t) => {
  const dir = t.testdir()
  const locks = new JobLocks({ dir, host, now })
  // A process that has exited: its lock is stale.
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
  const deadPid = Number(gone.stdout)
  const stale: LockRecord = { ...processIdentity(host), pid: deadPid, proc_start: '1', token: 'dead', name: 'job.a', since: '2026-01-01T00:00:00Z', run: 'old', purpose: 'backup' }
  writeFileSync(join(dir, 'job.a.lock'), JSON.stringify(stale))
  t.equal(await locks.holder('job.a'), null, 'a dead holder is no holder')
  const a = await locks.tryAcquire('job.a', { run: 'new', purpose: 'backup' })
  t.ok(a.lock, 'taken over')
  t.equal(JSON.parse(readFileSync(join(dir, 'job.a.lock'), 'utf8')).run, 'new')
  await a.lock?.release()
  // A live pid whose start time differs: the pid was reused by another process.
  const reused: LockRecord = { ...processIdentity(host), proc_start: '12345', token: 'reused', name: 'job.b', since: '2026-01-01T00:00:00Z', run: null, purpose: 'backup' }
  if (reused.boot_id !== null) {
    writeFileSync(join(dir, 'job.b.lock'), JSON.stringify(reused))
    t.ok((await locks.tryAcquire('job.b', { run: null, purpose: 'x' })).lock, 'a reused pid (other start time) is stale')
  } else {
    t.comment('no /proc here: start times cannot be compared')
  }
  // Another boot.
  writeFileSync(join(dir, 'job.c.lock'), JSON.stringify({ ...processIdentity(host), boot_id: 'another-boot', token: 'x', name: 'job.c', since: '', run: null, purpose: '' }))
  t.ok((await locks.tryAcquire('job.c', { run: null, purpose: 'x' })).lock, 'a lock from another boot is stale')
  writeFileSync(join(dir, 'job.d.lock'), 'not json')
  t.ok((await locks.tryAcquire('job.d', { run: null, purpose: 'x' })).lock, 'an unreadable lock is taken over')
  // This process's own live lock is held.
  const own = await locks.tryAcquire('job.e', { run: null, purpose: 'x' })
  const again = await locks.tryAcquire('job.e', { run: null, purpose: 'x' })
  t.equal(again.holder?.pid, process.pid, 'a second acquisition by a live process is refused')
  await own.lock?.release()
  t.same(readdirSync(dir).filter((n) => n.includes('.tmp') || n.includes('.stale')), [], 'no temporary files left')
})

t.test('journal: concurrent appenders never interleave lines; events read back in order', async (t) => {
  const dir = t.testdir()
  const kids = ['a', 'b', 'c'].map((tag) => child(['append', dir, '300', tag]))
  const codes = await Promise.all(kids.map(exited))
  t.same(codes, [0, 0, 0])
  const j = new Journal({ dir, now })
  const files = await j.files()
  t.equal(files.length >= 1, true)
  const text = files.map((f) => readFileSync(f.path, 'utf8')).join('')
  const lines = text.split('\n').filter(Boolean)
  t.equal(lines.length, 900, 'every line is there')
  t.equal(parseJournalText(text).length, 900, 'and every line is one whole event')
  for (const tag of ['a', 'b', 'c']) {
    const mine = parseJournalText(text).filter((e) => e.job === tag) as Extract<JournalEvent, { type: 'log' }>[]
    t.equal(new Set(mine.map((e) => e.message.split(' ')[1])).size, 300, `${tag}: 300 distinct events`)
  }
})

t.test('journal: follow yields written events, live, across a day boundary', async (t) => {
  const dir = t.testdir()
  let clock = new Date('2026-05-10T23:59:59Z')
  const j = new Journal({ dir, now: () => clock })
  await j.append({ type: 'log', run: 'r1', job: 'x', level: 'info', source: 'coldstore', message: 'before' })
  const ac = new AbortController()
  const got: string[] = []
  const follower = (async () => {
    for await (const e of j.follow({ fromDay: '2026-05-10', signal: ac.signal, pollMs: 60_000 })) {
      if (e.type !== 'log') continue
      got.push(e.message)
      if (got.length === 1) {
        clock = new Date('2026-05-11T00:00:01Z')
        await j.append({ type: 'log', run: 'r1', job: 'x', level: 'info', source: 'coldstore', message: 'next day' })
      }
      if (got.length === 2) ac.abort()
    }
  })()
  await follower
  t.same(got, ['before', 'next day'], 'the old event, then the new one from the next day\'s file')
  t.same((await j.files()).map((f) => f.name), ['2026-05-10.jsonl', '2026-05-11.jsonl'], 'one file per UTC day')
})

t.test('journal: maintenance seals, compresses after 30 days, rotates, and verify checks the manifest', async (t) => {
  const dir = t.testdir()
  let clock = new Date('2026-01-01T12:00:00Z')
  const j = new Journal({ dir, now: () => clock, locks: new JobLocks({ dir: join(dir, 'locks'), host, now }) })
  const days = ['2026-01-01', '2026-01-20', '2026-03-01', '2026-04-05', '2026-04-10']
  for (const d of days) {
    clock = new Date(`${d}T12:00:00Z`)
    for (let i = 0; i < 5; i++) await j.append({ type: 'log', run: `run-${d}`, job: 'x', level: 'info', source: 'coldstore', message: `${d} ${i}` })
  }
  const before = new Map(days.map((d) => [d, readFileSync(join(dir, `${d}.jsonl`))]))
  clock = new Date('2026-04-10T18:00:00Z')
  const r = await j.maintain({ journalDays: 90 })
  t.ok(r.ran)
  t.same(r.deleted, ['2026-01-01'], 'older than journal_days: deleted')
  t.same(r.compressed, ['2026-01-20', '2026-03-01'], 'older than 30 days: compressed')
  t.same(r.sealed, ['2026-01-20', '2026-03-01', '2026-04-05'], 'past days sealed; today stays open')
  t.same((await j.files()).map((f) => f.name), ['2026-01-20.jsonl.zst', '2026-03-01.jsonl.zst', '2026-04-05.jsonl', '2026-04-10.jsonl'])
  t.same(decompress(readFileSync(join(dir, '2026-03-01.jsonl.zst'))), before.get('2026-03-01'), 'the compressed file holds the same bytes')
  const m = await j.manifest()
  t.same(m.files.map((f) => [f.day, f.name, f.events, f.compressed]), [
    ['2026-01-20', '2026-01-20.jsonl.zst', 5, true], ['2026-03-01', '2026-03-01.jsonl.zst', 5, true], ['2026-04-05', '2026-04-05.jsonl', 5, false],
  ])
  const { hashHex } = await import('../hash/index.js')
  t.equal(m.files[0].blake3, hashHex(before.get('2026-01-20')!), 'the digest is BLAKE3 of the JSONL content')
  const all: string[] = []
  for await (const e of j.events()) if (e.type === 'log') all.push(e.message)
  t.equal(all.length, 20, 'compressed days still read')
  t.same(await j.verify(), [], 'verify: everything matches')
  // Altering a sealed day is found (and maintenance leaves it as it is).
  writeFileSync(join(dir, '2026-04-05.jsonl'), readFileSync(join(dir, '2026-04-05.jsonl'), 'utf8').replace('2026-04-05 3', '2026-04-05 X'))
  t.same((await j.verify()).map((f) => [f.day, f.kind]), [['2026-04-05', 'altered']])
  t.same((await j.maintain({ journalDays: 90 })).altered, ['2026-04-05'])
  t.same(readdirSync(dir).filter((n) => n.includes('.tmp')), [])
})
