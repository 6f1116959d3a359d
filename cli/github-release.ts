/**
 * `--github-release` for commands that make a package (export, freeze): resolves the token, API URL, tag and repository before any work is
 * done, so a missing token or tag fails fast (exit 2), then publishes.
 */
import { writeFileSync } from 'node:fs'
import { basename } from 'node:path'
import {
  DEFAULT_GITHUB_API_URL, gitOriginRepo, gitTagAtHead, publishGithubRelease, verifyPackage, UsageError,
  type ExportResult, type GithubReleaseResult, type PackageReport, type ReleaseAsset, type Snapshot,
} from '../engine/index.js'
import { CliError, EXIT, Progress, VERSION, err, type GlobalArgs } from './common.js'

export interface GithubArgs extends GlobalArgs {
  'github-release'?: boolean
  'github-api-url'?: string
  source?: string
}

export interface GithubTarget {
  token: string
  apiUrl: string
  owner: string
  repo: string
  tag: string
}

/** The release target, or null without --github-release. Throws CliError (exit 2) when it cannot be made. */
export async function githubTarget(a: GithubArgs): Promise<GithubTarget | null> {
  if (!a['github-release']) return null
  const token = process.env.GITHUB_TOKEN
  if (!token) throw new CliError('--github-release needs a GitHub token in GITHUB_TOKEN (a token with contents: write on the repository)', EXIT.usage)
  const dir = a.source ?? process.cwd()
  try {
    const tag = await gitTagAtHead(dir)
    const { owner, repo } = await gitOriginRepo(dir)
    return { token, apiUrl: a['github-api-url'] || process.env.GITHUB_API_URL || DEFAULT_GITHUB_API_URL, owner, repo, tag }
  } catch (e) {
    if (e instanceof UsageError) throw new CliError(e.message, EXIT.usage)
    throw e
  }
}

/** Uploads `files` (package, report …) to the release of the target's tag. */
export async function publishRelease(a: GlobalArgs, t: GithubTarget, files: string[], notes: string): Promise<GithubReleaseResult> {
  const progress = new Progress(a)
  const assets: ReleaseAsset[] = files.map((path) => ({
    name: basename(path),
    path,
    contentType: /\.json$/.test(path) ? 'application/json' : /\.(zst|tzst)$/.test(path) ? 'application/zstd' : /\.tar$/.test(path) ? 'application/x-tar' : 'application/octet-stream',
  }))
  return publishGithubRelease({
    token: t.token, apiUrl: t.apiUrl, owner: t.owner, repo: t.repo, tag: t.tag, title: t.tag, body: notes, assets,
    userAgent: `coldstore/${VERSION}`,
    onProgress: (m) => progress.line(m, true),
  })
}

/**
 * Verifies a package just written, saves the report beside it
 * (`FILE.verify.json`) and, when it verifies, attaches both to the release.
 * A package that does not verify is not published (exit 1).
 */
export async function verifyAndPublish(
  a: GlobalArgs, gh: GithubTarget, output: string, snapshot: Snapshot, result: ExportResult,
): Promise<{ verification: PackageReport; release: GithubReleaseResult | null }> {
  const progress = new Progress(a)
  progress.line(`verifying ${output}`, true)
  const verification = await verifyPackage(output)
  progress.done()
  const reportPath = `${output}.verify.json`
  writeFileSync(reportPath, JSON.stringify({ ...verification, package: basename(output), snapshot: snapshot.id }, null, 2) + '\n')
  if (!verification.ok) {
    for (const p of verification.problems) err(`error: ${p.message}`)
    err('coldstore: error: the package does not verify; not publishing it')
    process.exitCode = EXIT.failure
    return { verification, release: null }
  }
  const notes = `coldstore ${snapshot.kind} ${snapshot.id} (${snapshot.time}, ${snapshot.host}).\n\n` +
    `Package \`${basename(output)}\`: ${result.files} files, ${result.bytes} bytes.\n` +
    `BLAKE3 of MANIFEST.b3: \`${result.manifest_blake3}\`\nSHA-256 of SHA256SUMS: \`${result.manifest_sha256}\`\n\n` +
    'Unpack it and run `b3sum --check MANIFEST.b3` in its folder (see README.txt inside).\n'
  return { verification, release: await publishRelease(a, gh, [output, reportPath], notes) }
}
