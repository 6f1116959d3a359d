/**
 * Telling whether a process recorded in a lock or a journal entry still runs: by pid, and on Linux by boot
 * id and the process's start time, so a pid reused after a crash or a reboot (or in a new container) is not
 * taken for the old process.
 */
import { currentBootId, processStartTime } from '../proc.js'
import type { ProcessIdentity } from './events.js'

/** The identity of process `pid` on this machine (default: this process). */
export function processIdentity(host: string, pid: number = process.pid): ProcessIdentity {
  return { pid, host, boot_id: currentBootId(), proc_start: processStartTime(pid) }
}

/**
 * True when the process still runs. Another boot (or machine) by boot id: dead. Same boot: by pid, and by
 * start time when known (a reused pid has another). A record of another host without a boot id cannot be
 * checked and counts as alive. Host names are not compared otherwise: a re-created container has a new one
 * on the same boot, and its pids are then checked like any other.
 */
export function isProcessAlive(p: ProcessIdentity, host: string): boolean {
  const boot = currentBootId()
  if (p.boot_id !== null && boot !== null) {
    if (p.boot_id !== boot) return false
  } else if (p.host !== host) {
    return true
  }
  try {
    process.kill(p.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  if (p.proc_start !== null) {
    const now = processStartTime(p.pid)
    if (now !== null && now !== p.proc_start) return false
  }
  return true
}
