import { UsageError } from '../errors.js'
import { applyRetention, isEmptyPolicy, type GroupField, type RetentionDecision, type RetentionPolicy } from '../retention/index.js'
import type { Repository } from '../repo/index.js'
import { listSnapshots, type Snapshot } from '../snapshot/index.js'

export interface ForgetOptions {
  policy: RetentionPolicy
  /** The clock (`within` counts from the newest snapshot before now). */
  now: () => Date
  /** IANA zone the buckets are counted in (default UTC; the CLI passes the local zone). */
  timeZone?: string
  groupBy?: readonly GroupField[] | 'auto'
  /** See RetentionOptions.keepOldest (default true, as restic ≥ 0.16). */
  keepOldest?: boolean
  /** Only snapshots of these hosts / jobs / with all tags of one of these lists are considered (others are left alone). */
  hosts?: readonly string[]
  jobs?: readonly string[]
  tags?: readonly (readonly string[])[]
  dryRun?: boolean
  /**
   * Called with the decision before anything is removed (not in a dry run, and only when something would be
   * removed): resolve false to stop without changes. The CLI asks for confirmation and appends the audit
   * entry here, so a removal that cannot be recorded does not happen.
   */
  approve?: (decision: RetentionDecision) => Promise<boolean>
  /** Snapshot objects that cannot be read: left alone (their kind is unknown) and reported here. */
  onUnreadable?: (id: string, err: unknown) => void
}

export interface ForgetResult {
  decision: RetentionDecision
  /** Ids of the snapshot objects deleted (none in a dry run). */
  removed: string[]
  dryRun: boolean
  /** True when `approve` declined. */
  aborted: boolean
  /** Snapshots the filters selected. */
  considered: number
}

/**
 * Applies a retention policy (restic's forget semantics, engine/retention) to the repository's snapshots
 * and deletes the `snapshots/<id>` objects of those it does not keep, nothing else (prune removes the data
 * later). Freezes are always kept. Throws UsageError for an empty policy: forgetting everything by mistake
 * takes an explicit rule.
 */
export async function forget(repo: Repository, o: ForgetOptions): Promise<ForgetResult> {
  if (isEmptyPolicy(o.policy)) throw new UsageError('no retention rule given: use --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within or --keep-tag')
  const all = await listSnapshots(repo, (id, err) => o.onUnreadable?.(id, err))
  const hasTags = (s: Snapshot, l: readonly string[]): boolean => l.every((t) => s.tags.includes(t))
  const chosen = all.filter((s) =>
    (!o.hosts?.length || o.hosts.includes(s.host)) &&
    (!o.jobs?.length || (s.job !== null && o.jobs.includes(s.job))) &&
    (!o.tags?.length || o.tags.some((l) => hasTags(s, l))))
  const decision = applyRetention(chosen, o.policy, { now: o.now(), timeZone: o.timeZone, groupBy: o.groupBy, keepOldest: o.keepOldest })
  const kinds = new Map(chosen.map((s) => [s.id, s.kind]))
  const remove = decision.remove.map((r) => r.id).filter((id) => kinds.get(id) === 'snapshot') // retention never picks a freeze; checked again
  const result: ForgetResult = { decision, removed: [], dryRun: o.dryRun === true, aborted: false, considered: chosen.length }
  if (o.dryRun || remove.length === 0) return result
  if (o.approve && !(await o.approve(decision))) {
    result.aborted = true
    return result
  }
  for (const id of remove) {
    await repo.remote.delete(`snapshots/${id}`)
    result.removed.push(id)
  }
  return result
}
