import { execFile } from 'node:child_process'
import { arch, cpus, platform, release, totalmem, type as osType, version as osVersion } from 'node:os'

/** The environment a freeze was taken in (`--include-environment`). */
export interface EnvironmentInfo {
  os: { platform: string; type: string; release: string; version: string; arch: string }
  cpu: { model: string; cores: number }
  memory_bytes: number
  /** Runtimes found on the PATH, with the version they print. */
  runtimes: Record<string, string>
  /** Lock and requirements files among the frozen files, with their BLAKE3 (paths relative to the freeze's top level). */
  lock_files: { path: string; blake3: string; size: number }[]
}

/** Runtimes probed: name → command and arguments. The first line of its output that holds a digit is kept. */
const RUNTIMES: readonly [string, string, readonly string[]][] = [
  ['python', 'python3', ['--version']],
  ['R', 'R', ['--version']],
  ['java', 'java', ['-version']],
  ['julia', 'julia', ['--version']],
  ['go', 'go', ['version']],
  ['rustc', 'rustc', ['--version']],
  ['ruby', 'ruby', ['--version']],
  ['perl', 'perl', ['-e', 'print "perl $^V\\n"']],
  ['gcc', 'gcc', ['--version']],
  ['conda', 'conda', ['--version']],
  ['docker', 'docker', ['--version']],
]

/** File names recognised as lock or requirements files. */
const LOCK_FILE = /^(package-lock\.json|npm-shrinkwrap\.json|yarn\.lock|pnpm-lock\.yaml|poetry\.lock|Pipfile\.lock|uv\.lock|requirements[^/]*\.txt|environment\.ya?ml|conda-lock\.ya?ml|Cargo\.lock|renv\.lock|go\.sum|Gemfile\.lock|composer\.lock|Manifest\.toml|packrat\.lock|pixi\.lock)$/

/** True for a lock or requirements file name (`package-lock.json`, `requirements-dev.txt`, `renv.lock`...). */
export function isLockFile(name: string): boolean {
  return LOCK_FILE.test(name)
}

function probe(cmd: string, args: readonly string[]): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 10_000, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && !stdout && !stderr) return resolve(null)
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return resolve(null)
      const line = `${stdout}\n${stderr}`.split('\n').map((l) => l.trim()).find((l) => /\d/.test(l))
      resolve(line ?? null)
    })
  })
}

/**
 * Captures OS, CPU and the runtimes found; `nodeVersion` is this process's
 * Node.js (passed in: the engine does not look at its own process).
 */
export async function captureEnvironment(nodeVersion: string, lockFiles: EnvironmentInfo['lock_files']): Promise<EnvironmentInfo> {
  const found = await Promise.all(RUNTIMES.map(async ([name, cmd, args]) => [name, await probe(cmd, args)] as const))
  const runtimes: Record<string, string> = { node: nodeVersion }
  for (const [name, v] of found) if (v) runtimes[name] = v
  const c = cpus()
  return {
    os: { platform: platform(), type: osType(), release: release(), version: osVersion(), arch: arch() },
    cpu: { model: c[0]?.model.trim() ?? 'unknown', cores: c.length },
    memory_bytes: totalmem(),
    runtimes,
    lock_files: [...lockFiles].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
  }
}
