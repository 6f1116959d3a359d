/**
 * cost-report/: what a repository costs (stored bytes per class, per job, a full restore per tier,
 * early-deletion fees, a retention change's savings) from its listing and trees. Imports cost/ (the price
 * table), repo/, snapshot/, tree/, restore/; never reads a data pack.
 */
export {
  DAYS_PER_MONTH, estimateRepositoryCost,
  type ClassUsage, type CostOptions, type EarlyDeletion, type JobCost, type PricedSet, type RepositoryCost, type RestoreEstimate, type RestoreTier, type RetentionSavings,
} from './repository-cost.js'
