/**
 * server/dashboard/: the daemon's dashboard (plain HTML and CSS, one small script, no build step): job
 * list with health, a page per job (history, logs, snapshots linked into the file browser, retention,
 * storage, cost and full-restore estimates, a stored-bytes chart), Run now with a live log, and the login
 * page that sets a session cookie. Imports engine/index.ts and server/ only; what it shows comes from a
 * DashboardSource the daemon implements.
 */
export { createDashboard, retentionPolicy, safeNext, type Dashboard, type DashboardOptions } from './dashboard.js'
export { SessionStore, parseCookies, MAX_FAILURES, FAILURE_WINDOW_MS, type SessionStoreOptions } from './sessions.js'
export { renderChart, addedBytesSeries, type ChartSeries } from './chart.js'
export { esc } from './render.js'
export type { DashboardSource, DashboardCosts, RepositoryCostState } from './source.js'
