import { NotFoundError, isNotFound } from './errors.js'
import { describeRemoteUrl, openRemote, type OpenRemoteOptions, type Remote } from './remote/index.js'
import { Repository, type InitOptions } from './repo/index.js'

/** Options of `openRepository`. */
export interface OpenRepositoryOptions {
  /** Repository location: a path, file:// or memory:// URL. */
  url: string
  password: string | null
  cacheDir: string
  /** Load new index objects into the cache (default true). */
  syncIndex?: boolean
  onProgress?: (p: { phase: string; done: number; total: number }) => void
  /** How to open the remote: settings, environment for credentials, staging directory (see OpenRemoteOptions). */
  remote?: Omit<OpenRemoteOptions, 'create'>
}

/** Opens the remote at `url`, unlocks the repository and brings its cache up to date. */
export async function openRepository(o: OpenRepositoryOptions): Promise<Repository> {
  let remote: Remote
  try {
    remote = await openRemote(o.url, o.remote ?? {})
  } catch (err) {
    if (isNotFound(err)) throw new NotFoundError('config', `no repository at ${describeRemoteUrl(o.url)} (run 'coldstore init' first)`, { cause: err })
    throw err
  }
  let repo: Repository
  try {
    repo = await Repository.open(remote, { password: o.password, cacheDir: o.cacheDir })
  } catch (err) {
    await remote.close()
    throw err
  }
  if (o.syncIndex !== false) await repo.syncIndex(o.onProgress)
  return repo
}

/** Creates a repository at `url` (the directory is created for local paths). */
export async function initRepository(url: string, o: InitOptions, remoteOptions: Omit<OpenRemoteOptions, 'create'> = {}): Promise<{ id: string; remote: Remote }> {
  const remote = await openRemote(url, { ...remoteOptions, create: true })
  try {
    const config = await Repository.init(remote, o)
    return { id: config.id, remote }
  } finally {
    await remote.close()
  }
}

/** Closes a repository and its remote. */
export async function closeRepository(repo: Repository): Promise<void> {
  await repo.close()
  await repo.remote.close()
}
