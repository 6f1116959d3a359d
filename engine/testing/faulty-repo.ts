/**
 * Test helper: a test repository over a FaultyRemote over a local remote (faults are added to `faulty`
 * by the test), opened as many times as the test likes, each with its own cache. Every Repository
 * opened on it, and the remote, are closed at teardown.
 */
import { join } from 'node:path'
import { LocalRemote } from '../remote/index.js'
import { FaultyRemote } from '../remote/wrappers/faulty.js'
import { Repository } from '../repo/index.js'
import { makeTestRepo } from './test-repo.js'

/** What a test needs of tap's Test here. */
interface TestLike {
  testdir(): string
  teardown(fn: () => unknown): void
}

export interface FaultyTestRepo {
  /** The test's folder (the repository is `<dir>/repo`). */
  dir: string
  /** `<dir>/src`, for the test's source files. */
  src: string
  faulty: FaultyRemote
  /** Opens the repository with the cache `<dir>/<cache>`, synced. */
  open(cache: string): Promise<Repository>
  /** Closes a repository `open` returned, before teardown. */
  close(r: Repository): Promise<void>
}

/** A repository (1 MiB packs, 16–256 KiB chunks) over a FaultyRemote without faults yet. */
export async function faultyTestRepo(t: TestLike): Promise<FaultyTestRepo> {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir)
  await tr.repo.close()
  const faulty = new FaultyRemote(await LocalRemote.open({ path: tr.repoDir }))
  const repos: Repository[] = []
  t.teardown(async () => {
    for (const r of repos) await r.close()
    await faulty.close()
  })
  const open = async (cache: string): Promise<Repository> => {
    const r = await Repository.open(faulty, { password: tr.password, cacheDir: join(dir, cache) })
    repos.push(r)
    await r.syncIndex()
    return r
  }
  const close = async (r: Repository): Promise<void> => {
    repos.splice(repos.indexOf(r), 1)
    await r.close()
  }
  return { dir, src: join(dir, 'src'), faulty, open, close }
}
