/**
 * config/: the coldstore.yaml configuration file, parsed and validated from
 * its text (the caller reads the file). Imports only errors.ts and yaml.
 */
export {
  CONFIG_SECTIONS, REMOTE_SETTINGS, parseConfigFile, parseEnvFile, resolveRemoteUrl,
  type ColdstoreConfig, type RemoteDefinition, type ResolvedRemote,
} from './config.js'
export { HOST_EXCLUDES, JOB_TYPES, parseDuration, parseJobs, type JobDefinition, type JobRetention, type JobType, type MissedPolicy } from './jobs.js'
export { parseDaemonSection, parseServerSection, type DaemonSettings, type ServerSettings } from './server.js'
