/**
 * coldstore engine: the one public entry. cli/, server/ and bench/ import
 * from here and nowhere else in engine/. A short, hand-picked list.
 *
 * The engine never prints, exits, or reads process.env: progress, warnings
 * and the clock are passed in by callers.
 */
export {
  EngineError, NotFoundError, IntegrityError, ConfigError, UsageError, RemoteError, PasswordError, KeyError,
  ExistsError, SourceError, FormatError, ArchivedError, LockedError, InterruptedError, isNotFound,
} from './errors.js'
export type { EngineErrorCode } from './errors.js'
export type { BlobId, PackId, SnapshotId, BlobType } from './types.js'
export { DEFAULT_CHUNKER_PARAMS, type ChunkerParams } from './chunker/index.js'
export { DEFAULT_KDF, TEST_KDF, type KdfParams } from './crypto/index.js'
export { openRemote, describeRemoteUrl, LocalRemote, MemoryRemote, type Remote } from './remote/index.js'
export { Repository, DEFAULT_PACK_BYTES, FORMAT_VERSION, type InitOptions, type RepoConfig } from './repo/index.js'
export { openRepository, initRepository, closeRepository, type OpenRepositoryOptions } from './open.js'
export { listSnapshots, findSnapshot, loadSnapshot, type Snapshot, type SnapshotDoc, type SnapshotStats, type SnapshotRepair, type SnapshotRepairExclusion } from './snapshot/index.js'
export { TreeReader, diffTrees, displayName, splitPath, type TreeNode, type NodeType, type DiffEntry } from './tree/index.js'
export { ExcludeMatcher } from './filter/index.js'
export { backup, type BackupOptions, type BackupResult, type BackupWarning, type BackupProgress } from './backup/index.js'
export { restore, planRestore, type RestoreOptions, type RestoreResult, type RestoreError, type RestorePlan, type RestoreSelection } from './restore/index.js'
export { checkRetrieval, mayNeedRetrieval, requestRetrieval, type RetrievalCheck, type Tally } from './retrieval/index.js'
export {
  DEFAULT_PRICES, GB, classPrices, formatUSD, formatWait, providerPrices, retrievalOptions,
  type ClassPrice, type PriceTable, type PriceTier, type ProviderPrice, type TierPrice, type RetrievalOption,
} from './cost/index.js'
export { SCHEDULE_PRESETS, missedRuns, nextRun, parseSchedule, previousRun, type Schedule } from './schedule/index.js'
export {
  verify, repairIndex, repairSnapshots, REPAIRED_TAG, type VerifyOptions, type VerifyReport, type Finding, type FindingKind, type RepairIndexResult,
  type RepairSnapshotsOptions, type RepairSnapshotsResult, type SnapshotRepairReport,
} from './verify/index.js'
export {
  SnapshotView, JobsView, VfsFile, ChunkCache, FREEZES_FOLDER, LATEST_FOLDER,
  type VfsEntry, type SnapshotViewOptions, type ChunkCacheOptions, type BrowseView, type JobFolder,
} from './vfs/index.js'
export {
  freeze, verifyFreeze, adoptUnindexedPacks, captureGit, gitToplevel, protectedPacks, packsOfSnapshot, isFreezeProtected, parseComplianceTemplates,
  findComplianceTemplate, checkRequiredFields, manifestDigest, canonicalManifest, FREEZE_INFO_FOLDER, FREEZE_FIELDS,
  type FreezeOptions, type FreezeResult, type FreezeMeta, type FreezeEvent, type FreezeImmutability, type FreezeVerification,
  type ComplianceTemplate, type FreezeField, type GitState, type EnvironmentInfo, type ManifestEntry,
} from './freeze/index.js'
export type { GeneratedFolder } from './backup/index.js'
export {
  CONFIG_SECTIONS, REMOTE_SETTINGS, parseConfigFile, parseEnvFile, resolveRemoteUrl,
  type ColdstoreConfig, type RemoteDefinition, type ResolvedRemote,
  HOST_EXCLUDES, JOB_TYPES, parseDuration, parseJobs, type JobDefinition, type JobRetention, type JobType, type MissedPolicy,
  DEFAULT_NOTIFY_ON, NOTIFY_EVENTS, WEBHOOK_FORMATS, parseNotify, parsePrices,
  type NotifyChannel, type NotifyConfig, type NotifyEventKind, type SecretRef, type SmtpChannel, type SmtpTls, type WebhookChannel, type WebhookFormat,
  parseDaemonSection, parseServerSection, type DaemonSettings, type ServerSettings,
} from './config/index.js'
export {
  Notifier, costThresholdEvent, FileRateLimitStore, MemoryRateLimitStore, redact,
  type ChannelResult, type NotifierOptions, type NotifyEvent, type NotifyOutcome, type RateLimitStore,
} from './notify/index.js'
export {
  DAYS_PER_MONTH, estimateRepositoryCost,
  type ClassUsage, type CostOptions, type EarlyDeletion, type JobCost, type PricedSet, type RepositoryCost, type RestoreEstimate, type RestoreTier, type RetentionSavings,
} from './cost-report/index.js'
export type { ObjectProtection, ProtectionRequest, ArchiveAccess, ArchiveState, RetrievalTier, OpenRemoteOptions, RemoteSettings } from './remote/index.js'
export {
  wrapRemote, parseByteRate, isTransient, RemoteTimeoutError, CircuitOpenError, DEFAULT_RETRY, DEFAULT_TIMEOUTS, DEFAULT_BREAKER,
  type WrapOptions, type RemoteLimits, type RetryEvent, type CircuitEvent, type CircuitState, type Clock as RemoteClock,
} from './remote/index.js'
export {
  appendAudit, listAudit, verifyAudit, generateAuditKey, loadAuditPrivateKey, loadAuditPublicKey, auditKeyId, AUDIT_OPERATIONS,
  type AuditEntry, type StoredAuditEntry, type AuditInput, type AuditOperation, type AuditFinding, type AuditFindingKind, type AuditVerifyReport, type AuditVerifyOptions,
} from './audit/index.js'
export {
  exportSnapshot, verifyPackage, isPackageName, manifestLine, parseManifestLine, publishGithubRelease, gitTagAtHead, gitOriginRepo, parseGithubRemote,
  GithubError, DEFAULT_GITHUB_API_URL,
  type ExportOptions, type ExportResult, type ExportProgress, type PackageReport, type PackageProblem, type GithubReleaseOptions, type GithubReleaseResult, type ReleaseAsset,
} from './export/index.js'
export {
  applyRetention, parseRetentionDuration, formatRetentionDuration, describePolicy, isEmptyPolicy, checkTimeZone, GROUP_FIELDS, FREEZE_REASON,
  type RetentionPolicy, type RetentionSnapshot, type RetentionOptions, type RetentionDecision, type RetentionGroup, type KeptSnapshot,
  type RemovedSnapshot, type GroupField, type RetentionDuration,
} from './retention/index.js'
export {
  forget, prune, DEFAULT_SAFETY_DELAY_MS, DEFAULT_REPACK_THRESHOLD,
  type ForgetOptions, type ForgetResult, type PruneOptions, type PruneReport, type PrunePreview, type PackCount, type SweptPlan, type DeferredPlan, type MarkedPlan,
} from './prune/index.js'
export { listLocks, listPrunePlans, LOCK_STALE_MS, LOCK_REFRESH_MS, type StoredLock, type LockDoc, type StoredPrunePlan, type PrunePlanDoc } from './gc/index.js'
export {
  Daemon, JobLocks, Journal, ManualClock, formatJournalEvent, engineWork, resticWork, runJob, jobStatuses, readJournalState, readRun, findRunDay, summarizeRuns,
  newRunId, isRunId, jobLockName, isProcessAlive, processIdentity, dayOf, resticKeepArgs, isRetryable,
  type Clock, type DaemonOptions, type DaemonRun, type WorkerRequest, type WorkerHandle, type StartWorker, type RunRequestResult,
  type RunKind, type RunTrigger, type RunPhase, type RunResult, type RunStats, type RetentionOutcome, type CheckOutcome, type ProcessIdentity,
  type JournalEvent, type FinishedEvent, type MissedEvent, type SkippedEvent, type JournalState, type JournalFinding, type MaintenanceReport,
  type RunSummary, type JobStatus, type RunBrief, type Health, type LockRecord, type HeldLock,
  type RunJobOptions, type RunOutcome, type JobWork, type AttemptContext, type JobEvent, type JobEventSink,
} from './jobs/index.js'
