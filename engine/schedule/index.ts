/**
 * schedule/: cron expressions and presets, time-zone aware, pure over an injected time. Imports only
 * errors.ts and croner.
 */
export { SCHEDULE_PRESETS, missedRuns, nextRun, parseSchedule, previousRun, type Schedule } from './schedule.js'
