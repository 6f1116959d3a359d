/**
 * GitHub releases through the REST API: find or create the release of a tag,
 * then upload files as its assets, replacing assets of the same name.
 *
 *   GET    {api}/repos/{owner}/{repo}/releases/tags/{tag}      find (404: create)
 *   POST   {api}/repos/{owner}/{repo}/releases                 create
 *   GET    {api}/repos/{owner}/{repo}/releases/{id}/assets     existing assets (paged)
 *   DELETE {api}/repos/{owner}/{repo}/releases/assets/{id}     replace: delete first
 *   POST   {upload_url}?name={name}                            upload (streamed, Content-Length)
 *
 * The token and the API base are passed in (the engine does not read the
 * environment); the upload base comes from the release's `upload_url`.
 */
import { execFile } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import * as http from 'node:http'
import * as https from 'node:https'
import { EngineError, RemoteError, UsageError } from '../errors.js'

export const DEFAULT_GITHUB_API_URL = 'https://api.github.com'

export interface ReleaseAsset {
  name: string
  /** File to upload. */
  path: string
  contentType: string
}

export interface GithubReleaseOptions {
  token: string
  /** API base (default https://api.github.com; GitHub Enterprise: https://HOST/api/v3). */
  apiUrl?: string
  owner: string
  repo: string
  tag: string
  /** Title and notes of a release this call creates (an existing release is left as it is). */
  title?: string
  body?: string
  assets: ReleaseAsset[]
  userAgent?: string
  onProgress?: (message: string) => void
}

export interface GithubReleaseResult {
  release_id: number
  html_url: string | null
  tag: string
  created: boolean
  assets: { name: string; id: number; size: number; replaced: boolean; url: string | null }[]
}

/** A GitHub API call that failed. */
export class GithubError extends EngineError {
  readonly status: number
  constructor(message: string, status: number) {
    super('EREMOTE', message)
    this.status = status
  }
}

function run(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr }))
      else resolve(stdout)
    })
  })
}

/** The tag at HEAD of the git working tree `dir` (`git describe --exact-match --tags`). */
export async function gitTagAtHead(dir: string): Promise<string> {
  try {
    return (await run('git', ['describe', '--exact-match', '--tags', 'HEAD'], dir)).trim()
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? '')
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError('git is not installed: it is needed to find the tag for the GitHub release')
    if (/not a git repository/i.test(stderr)) throw new UsageError(`${dir} is not a git working tree: the GitHub release is named by the tag at its HEAD`)
    throw new UsageError(`HEAD of ${dir} has no tag: tag the commit to release (git tag v1.0 && git push origin v1.0)`)
  }
}

/** Owner and repository from a GitHub remote URL (https, ssh or scp-like forms). */
export function parseGithubRemote(url: string): { owner: string; repo: string } {
  const u = url.trim()
  let path: string | null = null
  const scp = /^(?:[^@/]+@)?[^:/]+:(?!\/)(.+)$/.exec(u)
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(u)) {
    try {
      path = new URL(u).pathname
    } catch {
      path = null
    }
  } else if (scp) {
    path = scp[1]
  }
  const m = path ? /^\/?([^/]+)\/([^/]+?)(?:\.git)?\/?$/.exec(path) : null
  if (!m) throw new UsageError(`cannot tell the GitHub owner and repository from the remote URL ${JSON.stringify(u)} (expected https://github.com/OWNER/REPO.git or git@github.com:OWNER/REPO.git)`)
  return { owner: m[1], repo: m[2] }
}

/** Owner and repository named by the `origin` remote of `dir`. */
export async function gitOriginRepo(dir: string): Promise<{ owner: string; repo: string; url: string }> {
  let url: string
  try {
    url = (await run('git', ['remote', 'get-url', 'origin'], dir)).trim()
  } catch {
    throw new UsageError(`${dir} has no git remote named origin: the GitHub repository is taken from it`)
  }
  return { ...parseGithubRemote(url), url }
}

interface Response {
  status: number
  body: Buffer
}

function request(url: string, method: string, headers: Record<string, string | number>, body?: Buffer | (() => NodeJS.ReadableStream)): Promise<Response> {
  return new Promise((resolve, reject) => {
    let u: URL
    try {
      u = new URL(url)
    } catch {
      return reject(new UsageError(`not a URL: ${url}`))
    }
    const mod = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : null
    if (!mod) return reject(new UsageError(`GitHub API URL must be http or https: ${url}`))
    const req = mod.request(u, { method, headers }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (d: Buffer) => parts.push(d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }))
      res.on('error', reject)
    })
    req.on('error', (err) => reject(new RemoteError(`${method} ${u.origin}${u.pathname}: ${err.message}`, { transient: true }, { cause: err })))
    if (body === undefined) req.end()
    else if (Buffer.isBuffer(body)) req.end(body)
    else {
      const src = body()
      src.on('error', (err) => req.destroy(err as Error))
      src.pipe(req)
    }
  })
}

/** Creates the release of `o.tag` if missing, then uploads `o.assets`, replacing same-named assets. */
export async function publishGithubRelease(o: GithubReleaseOptions): Promise<GithubReleaseResult> {
  if (!o.token) throw new UsageError('a GitHub token is needed (GITHUB_TOKEN)')
  const api = (o.apiUrl ?? DEFAULT_GITHUB_API_URL).replace(/\/+$/, '')
  const base = `${api}/repos/${encodeURIComponent(o.owner)}/${encodeURIComponent(o.repo)}`
  const headers = {
    Authorization: `Bearer ${o.token}`,
    Accept: 'application/vnd.github+json',
    'X-GitHub-Api-Version': '2022-11-28',
    'User-Agent': o.userAgent ?? 'coldstore',
  }
  const json = async (method: string, url: string, body?: unknown, ok: number[] = [200]): Promise<{ status: number; value: any }> => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    const r = await request(url, method, data ? { ...headers, 'Content-Type': 'application/json', 'Content-Length': data.length } : headers, data)
    if (!ok.includes(r.status)) throw apiError(method, url, r)
    let value: unknown = null
    if (r.body.length) {
      try {
        value = JSON.parse(r.body.toString('utf8'))
      } catch {
        throw new GithubError(`${method} ${url}: answered ${r.status} with a body that is not JSON`, r.status)
      }
    }
    return { status: r.status, value }
  }

  const found = await json('GET', `${base}/releases/tags/${encodeURIComponent(o.tag)}`, undefined, [200, 404])
  let release = found.value as { id: number; html_url?: string; upload_url?: string }
  const created = found.status === 404
  if (created) {
    o.onProgress?.(`creating the GitHub release ${o.tag} of ${o.owner}/${o.repo}`)
    release = (await json('POST', `${base}/releases`, { tag_name: o.tag, name: o.title ?? o.tag, body: o.body ?? '', draft: false, prerelease: false }, [201])).value
  } else {
    o.onProgress?.(`updating the GitHub release ${o.tag} of ${o.owner}/${o.repo}`)
  }
  if (!release || typeof release.id !== 'number' || typeof release.upload_url !== 'string') {
    throw new GithubError(`the release of ${o.tag} came back without an id or upload_url`, 0)
  }

  const existing = new Map<string, number>()
  for (let page = 1; ; page++) {
    const list = (await json('GET', `${base}/releases/${release.id}/assets?per_page=100&page=${page}`)).value as { id: number; name: string }[]
    if (!Array.isArray(list)) break
    for (const a of list) existing.set(a.name, a.id)
    if (list.length < 100) break
  }

  const uploadBase = release.upload_url.replace(/\{[^}]*\}$/, '')
  const result: GithubReleaseResult = { release_id: release.id, html_url: release.html_url ?? null, tag: o.tag, created, assets: [] }
  for (const asset of o.assets) {
    const size = (await stat(asset.path)).size
    const old = existing.get(asset.name)
    if (old !== undefined) {
      o.onProgress?.(`replacing the asset ${asset.name}`)
      await json('DELETE', `${base}/releases/assets/${old}`, undefined, [204, 404])
    }
    o.onProgress?.(`uploading ${asset.name} (${size} bytes)`)
    const url = `${uploadBase}?name=${encodeURIComponent(asset.name)}`
    const r = await request(url, 'POST', { ...headers, 'Content-Type': asset.contentType, 'Content-Length': size }, () => createReadStream(asset.path))
    if (r.status !== 201) throw apiError('POST', url, r)
    const value = JSON.parse(r.body.toString('utf8') || '{}') as { id?: number; size?: number; browser_download_url?: string }
    result.assets.push({ name: asset.name, id: value.id ?? 0, size: value.size ?? size, replaced: old !== undefined, url: value.browser_download_url ?? null })
  }
  return result
}

function apiError(method: string, url: string, r: Response): GithubError {
  let message = ''
  try {
    message = String((JSON.parse(r.body.toString('utf8')) as { message?: unknown }).message ?? '')
  } catch {
    message = r.body.toString('utf8').slice(0, 200)
  }
  const hint = r.status === 401 ? ' (is GITHUB_TOKEN valid?)' : r.status === 403 || r.status === 404 ? ' (does the token have contents: write access to this repository?)' : ''
  const u = new URL(url)
  return new GithubError(`GitHub API ${method} ${u.pathname}: ${r.status}${message ? ` ${message}` : ''}${hint}`, r.status)
}
