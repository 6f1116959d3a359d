/**
 * remote/: where repository objects live. The Remote contract (remote.ts),
 * one implementation per kind in remote/<kind>/, wrappers that add behaviour
 * to any Remote (wrappers/), and registry.ts, which opens a remote from a URL.
 *
 * Must not import anything from the engine but errors.ts and types.ts (no
 * pack/, index/, repo/...). A kind's SDK is imported only inside its own
 * folder, and only registry.ts loads such kinds (with import()); do not
 * re-export an SDK-backed kind here, or every user of the engine loads its SDK.
 */
export type {
  ArchiveAccess, ArchiveState, ByteRange, ObjectInfo, ObjectProtection, ObjectWriter, ProtectionRequest, PutOptions, Remote, RemoteProperties, RetrievalTier,
} from './remote.js'
export { BufferedObjectWriter, DATA_PREFIX, assertObjectName, createObjectWriter } from './remote.js'
export { StagedObjectWriter, cleanStaging } from './staged-writer.js'
export { LocalRemote } from './local/index.js'
export { MemoryRemote } from './memory/index.js'
export { ReadOnlyRemote } from './wrappers/read-only.js'
export { wrapRemote, type WrapOptions } from './wrappers/wrap.js'
export { RetryingRemote, DEFAULT_RETRY, isTransient, type RetryOptions, type RetryEvent } from './wrappers/retrying.js'
export { TimeoutRemote, RemoteTimeoutError, DEFAULT_TIMEOUTS, type TimeoutOptions } from './wrappers/timeout.js'
export { CircuitBreakerRemote, CircuitOpenError, DEFAULT_BREAKER, type CircuitBreakerOptions, type CircuitEvent, type CircuitState } from './wrappers/circuit-breaker.js'
export { ConcurrencyLimitRemote, Semaphore } from './wrappers/concurrency.js'
export { BandwidthLimitRemote, TokenBucket, parseByteRate, type BandwidthOptions } from './wrappers/bandwidth.js'
export { StagingRemote } from './wrappers/staging.js'
export { SYSTEM_CLOCK, type Clock } from './wrappers/clock.js'
export type { RemoteCall, CallInfo } from './wrappers/forward.js'
export { describeRemoteUrl, mergeSettings, openRemote, settingBool, settingNumber, settingString } from './registry.js'
export type { KindContext, OpenRemoteOptions, RemoteLimits, RemoteSettings } from './registry.js'
