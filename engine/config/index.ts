/**
 * config/: the coldstore.yaml configuration file, parsed and validated from
 * its text (the caller reads the file). Imports errors.ts, yaml, and the pure
 * schedule/ and cost/ modules (schedules and the price table it validates).
 */
export {
  CONFIG_SECTIONS, REMOTE_SETTINGS, parseConfigFile, parseEnvFile, resolveRemoteUrl,
  type ColdstoreConfig, type RemoteDefinition, type ResolvedRemote,
} from './config.js'
export { HOST_EXCLUDES, JOB_TYPES, parseDuration, parseJobs, type JobDefinition, type JobRetention, type JobType, type MissedPolicy } from './jobs.js'
export {
  DEFAULT_NOTIFY_ON, NOTIFY_EVENTS, WEBHOOK_FORMATS, parseNotify,
  type NotifyChannel, type NotifyConfig, type NotifyEventKind, type SecretRef, type SmtpChannel, type SmtpTls, type WebhookChannel, type WebhookFormat,
} from './notify.js'
export { parsePrices } from './prices.js'
export { parseDaemonSection, parseServerSection, type DaemonSettings, type ServerSettings } from './server.js'
