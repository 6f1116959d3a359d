/**
 * Pre- and post-hooks: shell commands run with `/bin/sh -c` in their own process group, so a timeout or a
 * stop ends the hook and everything it started. Output lines are passed on as they come.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

/** How a hook ended. */
export interface HookResult {
  /** Exit code, or null when it ended by a signal. */
  code: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
  /** Stopped because `signal` aborted. */
  stopped: boolean
}

/** Options of runHook. */
export interface RunHookOptions {
  command: string
  cwd: string
  env: Record<string, string | undefined>
  timeoutMs: number
  signal?: AbortSignal
  /** Each line of output (stdout, stderr), without its newline. */
  onLine: (stream: 'stdout' | 'stderr', line: string) => void
  /** After SIGTERM, how long before SIGKILL (default 5 s). */
  killAfterMs?: number
}

/** Lines passed on per hook at most (the rest is counted). */
const MAX_LINES = 2000

/** Runs one hook. Never rejects for the hook's own failure (see HookResult); rejects when /bin/sh cannot start. */
export function runHook(o: RunHookOptions): Promise<HookResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', o.command], { cwd: o.cwd, env: o.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let timedOut = false
    let stopped = false
    let lines = 0
    let killTimer: NodeJS.Timeout | null = null
    const kill = (): void => {
      if (child.pid === undefined || child.exitCode !== null) return
      try {
        process.kill(-child.pid, 'SIGTERM')
      } catch {
        // already gone
      }
      killTimer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL')
        } catch {
          // gone
        }
      }, o.killAfterMs ?? 5000)
    }
    const timer = setTimeout(() => {
      timedOut = true
      kill()
    }, o.timeoutMs)
    const onAbort = (): void => {
      stopped = true
      kill()
    }
    o.signal?.addEventListener('abort', onAbort, { once: true })
    if (o.signal?.aborted) onAbort()
    const pass = (stream: 'stdout' | 'stderr', line: string): void => {
      if (++lines <= MAX_LINES) o.onLine(stream, line)
    }
    createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (l) => pass('stdout', l))
    createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', (l) => pass('stderr', l))
    child.on('error', (err) => {
      clearTimeout(timer)
      o.signal?.removeEventListener('abort', onAbort)
      reject(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (killTimer) clearTimeout(killTimer)
      o.signal?.removeEventListener('abort', onAbort)
      if (lines > MAX_LINES) o.onLine('stderr', `(${lines - MAX_LINES} more lines not kept)`)
      resolve({ code, signal, timedOut, stopped })
    })
  })
}
