/**
 * server/api/: the daemon's JSON API (jobs, runs, run logs with live streaming, Run now), mounted on the
 * WebDAV server's listener behind its access checks. Imports engine/index.ts only.
 */
export { API_ROUTES, createApiHandler, type ApiContext, type ApiHandlerOptions, type ApiRoute } from './routes.js'
export type { JobsService } from './service.js'
