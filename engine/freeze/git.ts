import { execFile } from 'node:child_process'
import { describeRemoteUrl } from '../remote/index.js'

/** Git state of a freeze's source, stored in the freeze's metadata. */
export interface GitState {
  /** The repository's top-level directory, and the source's path inside it ('' when the source is the top level). */
  toplevel: string
  subdir: string
  /** HEAD commit (null in a repository without commits). */
  commit: string | null
  /** Checked-out branch (null when HEAD is detached). */
  branch: string | null
  /** Tags pointing at HEAD. */
  tags: string[]
  dirty: boolean
  /** Changed, staged and untracked files (`git status --porcelain` paths, relative to the top level); at most 1000. */
  dirty_files: string[]
  dirty_files_truncated: boolean
  /** Remotes (fetch URLs) with credentials removed. */
  remotes: { name: string; url: string }[]
  last_commit: { author: string; email: string; time: string; subject: string } | null
}

const MAX_DIRTY = 1000

/** Runs git in `dir`; null when it fails (not a repository, no commits, git missing). */
function git(dir: string, args: readonly string[]): Promise<string | null> {
  return new Promise((resolve) => {
    // --no-optional-locks: `status` must not refresh .git/index, which would change the source between a dry run and the real run.
    execFile('git', ['--no-optional-locks', '-C', dir, ...args], { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 }, (err, stdout) => {
      resolve(err ? null : stdout)
    })
  })
}

/** The top-level directory of the git work tree holding `dir`, or null when it is not in one (or git is missing). */
export async function gitToplevel(dir: string): Promise<string | null> {
  const out = await git(dir, ['rev-parse', '--show-toplevel'])
  return out === null ? null : out.trim() || null
}

/** Captures the git state of `dir`; null when it is not in a git work tree. */
export async function captureGit(dir: string): Promise<GitState | null> {
  const toplevel = await gitToplevel(dir)
  if (!toplevel) return null
  const prefix = ((await git(dir, ['rev-parse', '--show-prefix'])) ?? '').trim().replace(/\/$/, '')
  const [commit, branch, tags, status, remotes, log] = await Promise.all([
    git(dir, ['rev-parse', '--verify', '-q', 'HEAD']),
    git(dir, ['symbolic-ref', '--short', '-q', 'HEAD']),
    git(dir, ['tag', '--points-at', 'HEAD']),
    git(dir, ['status', '--porcelain=v1', '-z', '--untracked-files=all']),
    git(dir, ['remote', '-v']),
    git(dir, ['log', '-1', '--format=%an%x00%ae%x00%aI%x00%s']),
  ])
  const dirtyFiles: string[] = []
  if (status) {
    const parts = status.split('\0')
    for (let i = 0; i < parts.length; i++) {
      const e = parts[i]
      if (e.length < 4) continue
      dirtyFiles.push(e.slice(3))
      if (e[0] === 'R' || e[0] === 'C') i++ // renames and copies carry the old path as the next field
    }
  }
  dirtyFiles.sort()
  const remoteList: { name: string; url: string }[] = []
  for (const line of (remotes ?? '').split('\n')) {
    const m = /^(\S+)\s+(\S+)\s+\(fetch\)$/.exec(line)
    if (m) remoteList.push({ name: m[1], url: stripCredentials(m[2]) })
  }
  let last: GitState['last_commit'] = null
  if (log && log.includes('\0')) {
    const [author, email, time, subject] = log.replace(/\n$/, '').split('\0')
    last = { author, email, time, subject }
  }
  return {
    toplevel,
    subdir: prefix,
    commit: commit?.trim() || null,
    branch: branch?.trim() || null,
    tags: (tags ?? '').split('\n').map((s) => s.trim()).filter(Boolean).sort(),
    dirty: dirtyFiles.length > 0,
    dirty_files: dirtyFiles.slice(0, MAX_DIRTY),
    dirty_files_truncated: dirtyFiles.length > MAX_DIRTY,
    remotes: remoteList,
    last_commit: last,
  }
}

/** A git remote URL without user names, passwords or tokens (`https://tok@host/x` → `https://host/x`). */
export function stripCredentials(url: string): string {
  return describeRemoteUrl(url)
}
