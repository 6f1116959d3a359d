import type { Repository } from '../repo/index.js'

/**
 * Takes up packs an interrupted run renamed into place but did not record (see
 * `Repository.adoptUnindexedPacks`), so they are reused rather than stored again. A backup does this by
 * itself when the cache shows that the run before it did not finish; `coldstore resume` calls it too.
 *
 * Lists every pack: meant for resuming an interrupted operation, not for every run.
 */
export function adoptUnindexedPacks(repo: Repository): Promise<{ packs: number; bytes: number }> {
  return repo.adoptUnindexedPacks()
}
