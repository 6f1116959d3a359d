import type { CommandModule } from 'yargs'
import { stringify as toYaml } from 'yaml'
import { findSnapshot, type FreezeMeta } from '../../engine/index.js'
import { printJson, withRepo, type GlobalArgs } from '../common.js'

interface Args extends GlobalArgs {
  snap: string
  job?: string
}

export const inspectCommand: CommandModule<GlobalArgs, Args> = {
  command: 'inspect <snap>',
  describe: 'show everything recorded about a snapshot or freeze (YAML; --json for JSON)',
  builder: (y) =>
    y
      .positional('snap', { type: 'string', demandOption: true, describe: 'id, 8+ hex prefix, or latest' })
      .option('job', { type: 'string', describe: 'narrow "latest" to a job' }) as never,
  handler: async (a) => {
    const doc = await withRepo(a, async (repo) => {
      const s = await findSnapshot(repo, a.snap, { job: a.job })
      const meta = (s.meta ?? {}) as Partial<FreezeMeta> & Record<string, unknown>
      const { event, source, selection, compliance, immutability, git, environment, verification, generated, freeze_version: _v, ...rest } = meta
      let im: Record<string, unknown> | null = null
      if (immutability) {
        // What is enforced now, checked on the remote, beside what was recorded.
        const p = repo.remote.protection
        const now = p ? await p.isProtected(`snapshots/${s.id}`) : false
        im = {
          ...immutability,
          status: immutability.enforced
            ? now ? `enforced: ${immutability.mechanism} at ${immutability.where}` : `recorded as enforced, but the snapshot object at ${immutability.where} is no longer protected`
            : `not enforced at ${immutability.where}: ${immutability.note}`,
          snapshot_object_protected_now: now,
        }
      }
      return {
        id: s.id,
        short_id: s.id.slice(0, 8),
        kind: s.kind,
        created: s.time,
        host: s.host,
        username: s.username,
        paths: s.paths,
        job: s.job,
        tags: s.tags,
        program: s.program,
        repository: repo.remote.properties.location,
        sizes: { files: s.stats.files, dirs: s.stats.dirs, bytes: s.stats.bytes },
        stats: s.stats,
        ...(s.kind === 'freeze'
          ? { event, source, selection, compliance: compliance ?? null, immutability: im, git: git ?? null, environment: environment ?? null, verification, generated: generated ?? null }
          : {}),
        ...(Object.keys(rest).length ? { meta: rest } : {}),
        ...(s.repaired ? { repaired: s.repaired } : {}),
      }
    })
    if (a.json) printJson(doc)
    else process.stdout.write(toYaml(doc, { lineWidth: 0 }))
  },
}
