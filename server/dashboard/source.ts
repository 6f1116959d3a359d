import type { BrowseView, JobDefinition, RepositoryCost } from '../../engine/index.js'
import type { JobsService } from '../api/service.js'

/** One repository's cost estimate as the dashboard shows it. */
export interface RepositoryCostState {
  /** The repository as the configuration names it (path, URL or name://). */
  location: string
  /** Jobs of the configuration that use it. */
  jobs: string[]
  /** The last estimate, or null (not computed yet, or it failed). */
  report: RepositoryCost | null
  /** Why the last estimate failed, or null. */
  error: string | null
}

/**
 * Cost estimates, computed outside page views (after runs, at most hourly otherwise: each walks every
 * snapshot's trees) and served from memory.
 */
export interface DashboardCosts {
  /** When the newest estimate was made (ISO), null before the first. */
  updated: string | null
  /** True while estimates are being computed. */
  computing: boolean
  /** The sum of every repository's monthly storage cost, null before the first estimate. */
  totalMonthlyUSD: number | null
  /** The threshold of `notify.cost_threshold_usd`, if set. */
  thresholdUSD: number | null
  repositories: RepositoryCostState[]
}

/**
 * What the dashboard shows: the jobs runtime (the JSON API's service), the configured jobs, the browsing
 * view its snapshot links lead into, and the cached cost estimates. The daemon implements it.
 */
export interface DashboardSource {
  service: JobsService
  jobs: ReadonlyMap<string, JobDefinition>
  /** The WebDAV/HTML view served on the same listener (`/<job>/<snapshot>/...`). */
  view: BrowseView
  costs(): DashboardCosts
  /** The daemon's clock (health, "ago", session expiry). */
  now(): Date
  /** The zone retention counts days, weeks... in (forget's: the daemon's local zone). */
  timeZone: string
}
