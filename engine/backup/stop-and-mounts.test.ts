/**
 * Two backup options the jobs runtime needs: `oneFileSystem` (host jobs do not cross into other mounts) and
 * `signal` (SIGTERM to a job stops the backup at a checkpoint: what was read is stored and indexed, no
 * snapshot is written, and the next run reuses it).
 */
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { backup } from './index.js'
import { InterruptedError } from '../errors.js'
import { TreeReader } from '../tree/index.js'
import { findSnapshot, listSnapshots } from '../snapshot/index.js'
import { verify } from '../verify/index.js'
import { makeTestRepo, seededBytes } from '../testing/test-repo.js'

const base = { hostname: 'h', username: 'u', now: () => new Date(), program: 'test' }

async function paths(tr: Awaited<ReturnType<typeof makeTestRepo>>, id: string): Promise<string[]> {
  const s = await findSnapshot(tr.repo, id)
  const out: string[] = []
  for await (const [p, n] of new TreeReader(tr.repo).walk(s.tree)) out.push(p.toString() + (n.type === 'dir' ? '/' : ''))
  return out
}

/** A folder with a file system mounted inside it: a tmpfs mounted by the test (root), else /dev with /dev/pts. */
function mountedSource(t: Test, dir: string): { source: string; mount: string; inner: string; unmount(): void } | null {
  if (process.getuid?.() === 0) {
    const src = join(dir, 'src')
    const mnt = join(src, 'mnt')
    mkdirSync(mnt, { recursive: true })
    writeFileSync(join(src, 'here.txt'), 'on the source file system')
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'coldstore-test', mnt])
    if (r.status === 0) {
      // Unmounted by the test itself: tap removes the test folder in a teardown that runs before any added later.
      const unmount = (): void => void spawnSync('umount', ['-l', mnt])
      process.once('exit', unmount)
      writeFileSync(join(mnt, 'inside.txt'), 'on another file system')
      return { source: src, mount: 'src/mnt', inner: 'src/mnt/inside.txt', unmount }
    }
  }
  if (existsSync('/dev/pts/ptmx') && statSync('/dev').dev !== statSync('/dev/pts').dev) {
    return { source: '/dev', mount: 'dev/pts', inner: 'dev/pts/ptmx', unmount: () => undefined }
  }
  return null
}

t.test('oneFileSystem keeps other mounts out, as empty folders', async (t) => {
  const dir = t.testdir()
  const m = mountedSource(t, dir)
  if (!m) {
    if (process.env.CI === 'true') t.fail('no mount point to test with: neither mount(8) of a tmpfs nor /dev/pts')
    else t.skip('no mount point to test with (not root, and /dev/pts is not a separate mount)')
    return
  }
  const tr = await makeTestRepo(join(dir, 'r'))
  t.teardown(() => tr.repo.close())
  const across = await backup(tr.repo, { ...base, paths: [m.source] })
  t.ok((await paths(tr, across.id!)).includes(m.inner), `without the option the backup enters ${m.mount}`)
  const one = await backup(tr.repo, { ...base, paths: [m.source], oneFileSystem: true })
  const p = await paths(tr, one.id!)
  t.ok(p.includes(`${m.mount}/`), 'the mount point itself is kept')
  t.notOk(p.some((x) => x.startsWith(`${m.mount}/`) && x !== `${m.mount}/`), 'nothing below it')
  if (m.source !== '/dev') t.ok(p.includes('src/here.txt'), 'the source file system is stored')
  m.unmount()
})

t.test('an aborted signal stops at a checkpoint; the next run reuses what was stored', async (t) => {
  const dir = t.testdir()
  const src = join(dir, 'src')
  mkdirSync(src)
  for (let i = 0; i < 40; i++) writeFileSync(join(src, `f${String(i).padStart(2, '0')}.bin`), seededBytes(`f${i}`, 200_000))
  const tr = await makeTestRepo(join(dir, 'r'))
  t.teardown(() => tr.repo.close())
  const ac = new AbortController()
  let files = 0
  await t.rejects(
    backup(tr.repo, { ...base, paths: [src], signal: ac.signal, workers: 1, onFile: () => { if (++files === 10) ac.abort() } }),
    InterruptedError,
    'rejects with InterruptedError',
  )
  t.same(await listSnapshots(tr.repo), [], 'no snapshot written')
  const report = await verify(tr.repo)
  t.same(report.findings.filter((f) => f.severity === 'error'), [], 'the repository verifies after the stop')
  const again = await backup(tr.repo, { ...base, paths: [src] })
  t.equal(again.snapshot.stats.files, 40)
  const fresh = await makeTestRepo(join(dir, 'fresh'))
  t.teardown(() => fresh.repo.close())
  const all = (await backup(fresh.repo, { ...base, paths: [src] })).snapshot.stats.new_chunks
  t.ok(again.snapshot.stats.new_chunks <= all - 10, `the run after the stop stored ${again.snapshot.stats.new_chunks} new blobs, a fresh repository needs ${all}`)
  const full = await backup(tr.repo, { ...base, paths: [src] })
  t.equal(full.snapshot.stats.unchanged_files, 40, 'then everything is unchanged')
})
