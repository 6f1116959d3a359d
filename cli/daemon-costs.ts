/**
 * The daemon's cost estimates: `estimateRepositoryCost` of every repository the jobs use, computed in the
 * background (at start, after each run for that run's repository, and otherwise at most hourly: each
 * estimate lists the remote and walks every snapshot's trees, far too slow for a page view) and kept in
 * memory for the dashboard. The daily cost check (`notify.cost_threshold_usd`) reads them.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  costThresholdEvent, estimateRepositoryCost, formatUSD,
  type JobDefinition, type NotifyEvent, type PriceTable, type Repository, type RepositoryCost,
} from '../engine/index.js'
import type { DashboardCosts } from '../server/index.js'

/** One repository to estimate. */
export interface CostTarget {
  /** Resolved URL (the key). */
  url: string
  /** As the configuration names it. */
  location: string
  jobs: JobDefinition[]
  /** The open repository, or null when it could not be opened (then `error` says why). */
  repo: Repository | null
  error: string | null
}

interface Entry {
  target: CostTarget
  report: RepositoryCost | null
  error: string | null
}

/** Estimates older than this are recomputed at the scheduler's next wake-up. */
export const COST_REFRESH_MS = 3_600_000

/** Cached cost estimates (see the module comment). */
export class CostCache {
  private readonly entries = new Map<string, Entry>()
  private readonly pending = new Set<string>()
  private loop: Promise<void> | null = null
  private lastFullMs = -Infinity
  private readonly o: { prices: PriceTable; thresholdUSD: number | null; now: () => Date; log: (line: string) => void }

  constructor(targets: readonly CostTarget[], o: { prices: PriceTable; thresholdUSD: number | null; now: () => Date; log: (line: string) => void }) {
    this.o = o
    for (const t of targets) this.entries.set(t.url, { target: t, report: null, error: t.error })
  }

  /** What the dashboard shows. */
  state(): DashboardCosts {
    const list = [...this.entries.values()]
    const reports = list.map((e) => e.report).filter((r): r is RepositoryCost => r !== null)
    const updated = reports.map((r) => r.time).sort().pop() ?? null
    return {
      updated,
      computing: this.loop !== null,
      totalMonthlyUSD: reports.length ? Math.round(reports.reduce((n, r) => n + r.stored.monthlyUSD, 0) * 1e9) / 1e9 : null,
      thresholdUSD: this.o.thresholdUSD,
      repositories: list.map((e) => ({ location: e.target.location, jobs: e.target.jobs.map((j) => j.name), report: e.report, error: e.error })),
    }
  }

  /** The URL of a job's repository (null for restic jobs). */
  urlOf(job: string): string | null {
    for (const e of this.entries.values()) if (e.target.jobs.some((j) => j.name === job)) return e.target.url
    return null
  }

  /**
   * Estimates `urls` (default: every repository) again, after whatever is being estimated now; resolves when
   * they are done. Estimates run one at a time.
   */
  refresh(urls?: readonly string[]): Promise<void> {
    const all = urls === undefined
    for (const u of urls ?? this.entries.keys()) if (this.entries.has(u)) this.pending.add(u)
    if (all) this.lastFullMs = this.o.now().getTime()
    if (!this.loop) {
      this.loop = (async () => {
        try {
          while (this.pending.size) {
            const batch = [...this.pending]
            this.pending.clear()
            for (const u of batch) await this.estimate(this.entries.get(u)!)
            const s = this.state()
            const snapshots = s.repositories.reduce((n, r) => n + (r.report?.jobs.reduce((m, j) => m + j.snapshots, 0) ?? 0), 0)
            const stored = s.repositories.reduce((n, r) => n + (r.report?.stored.bytes ?? 0), 0)
            this.o.log(`costs: estimated ${batch.length} of ${this.entries.size} repositor${this.entries.size === 1 ? 'y' : 'ies'}: ${snapshots} snapshots, ${stored} bytes stored, ${formatUSD(s.totalMonthlyUSD ?? 0)}/month in total`)
          }
        } finally {
          this.loop = null
        }
      })()
    }
    return this.loop
  }

  /** Recomputes everything when the last full estimate is older than COST_REFRESH_MS. */
  async refreshIfOld(): Promise<void> {
    if (this.o.now().getTime() - this.lastFullMs >= COST_REFRESH_MS) await this.refresh()
  }

  /** Resolves when nothing is being estimated. */
  async idle(): Promise<void> {
    while (this.loop) await this.loop
  }

  private async estimate(e: Entry): Promise<void> {
    const repo = e.target.repo
    if (!repo) return
    try {
      // New snapshots name packs from index objects this process has not loaded yet.
      await repo.syncIndex()
      e.report = await estimateRepositoryCost(repo, { prices: this.o.prices, now: this.o.now() })
      e.error = null
    } catch (err) {
      e.error = `cost estimate failed: ${(err as Error).message}`
      this.o.log(`costs: ${e.target.location}: ${e.error}`)
    }
  }

  /**
   * The daily cost check: once a day (the last check is remembered in `<state>/daemon/cost-check.json`,
   * so a restart does not repeat it), the `cost_threshold` event when the estimated total is above the
   * threshold. Null when there is nothing to send (no threshold, not due, within it, no estimate yet).
   */
  async dailyCheck(stateDir: string): Promise<NotifyEvent | null> {
    const threshold = this.o.thresholdUSD
    if (threshold === null) return null
    const s = this.state()
    if (s.totalMonthlyUSD === null) return null
    const file = join(stateDir, 'daemon', 'cost-check.json')
    const now = this.o.now()
    let last = NaN
    try {
      last = Date.parse((JSON.parse(await readFile(file, 'utf8')) as { last?: string }).last ?? '')
    } catch {
      // never checked
    }
    if (!Number.isNaN(last) && now.getTime() - last < 86_400_000 && now.getTime() >= last) return null
    await mkdir(join(stateDir, 'daemon'), { recursive: true })
    const tmp = `${file}.${process.pid}.tmp`
    await writeFile(tmp, JSON.stringify({ last: now.toISOString(), total_monthly_usd: s.totalMonthlyUSD, threshold_usd: threshold }) + '\n')
    await rename(tmp, file)
    const parts: Record<string, number> = {}
    for (const r of s.repositories) for (const j of r.report?.jobs ?? []) if (j.job) parts[`job ${j.job}`] = j.referenced.monthlyUSD
    const event = costThresholdEvent({ monthlyUSD: s.totalMonthlyUSD, thresholdUSD: threshold, parts })
    this.o.log(`costs: daily check: ${formatUSD(s.totalMonthlyUSD)}/month, threshold $${threshold}${event ? ': above, notifying' : ''}`)
    return event
  }
}
