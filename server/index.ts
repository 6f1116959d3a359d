/**
 * server/: the read-only WebDAV server and HTML view over engine's
 * SnapshotView (node:http/https). Imports engine/index.ts only; never cli/.
 */
export { startServer, isLoopbackHost, DEFAULT_LIMITS, type StartServerOptions, type RunningServer, type ServerLimits } from './start.js'
export { createDavHandler, statusOf, type DavHandlerOptions } from './dav-handler.js'
export { authRequired, checkCredentials, parseBasic, type AuthConfig } from './auth.js'
export { API_ROUTES, createApiHandler, type ApiContext, type ApiHandlerOptions, type ApiRoute, type JobsService } from './api/index.js'
export { createDashboard, type Dashboard, type DashboardOptions, type DashboardSource, type DashboardCosts, type RepositoryCostState } from './dashboard/index.js'
