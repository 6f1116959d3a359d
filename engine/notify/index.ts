/**
 * notify/: notifications of failed, missed and unverified runs and of costs above a threshold, to
 * webhooks (generic JSON, Slack, Discord) and SMTP email, rate-limited per event kind and job. Imports
 * config/ (the validated `notify:` section) and errors.ts; nodemailer is loaded on first use of SMTP.
 * Reads no environment: secrets referenced by `*_env` keys are looked up in the env the caller passes.
 */
export { Notifier, costThresholdEvent, type NotifierOptions, type NotifyOutcome } from './notifier.js'
export { deliver, readSecret, redact, type ChannelResult, type DeliveryContext } from './channels.js'
export { encodeDiscord, encodeEmail, encodeJson, encodeSlack, encodeWebhook, renderMessage, suppressedLine, type NotificationMessage, type NotifyEvent, type Suppressed } from './message.js'
export { FileRateLimitStore, MemoryRateLimitStore, decide, markSent, rateLimitKey, type RateDecision, type RateLimitEntry, type RateLimitState, type RateLimitStore } from './rate-limit.js'
