/**
 * What Linux's /proc says about processes on this machine, for telling whether the owner of a lock or a
 * journal entry still runs (gc/ locks, jobs/ locks and runs): the boot id, this process's pid namespace
 * and a process's start time. Each is null where /proc does not have it (another OS, a restricted sandbox).
 */
import { readFileSync, readlinkSync } from 'node:fs'

let bootIdCache: string | null | undefined

/** This machine's boot id, or null. */
export function currentBootId(): string | null {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null
    } catch {
      bootIdCache = null
    }
  }
  return bootIdCache
}

/** This process's pid namespace (`pid:[4026531836]`), or null. */
export function currentPidNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/pid')
  } catch {
    return null
  }
}

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or null. */
export function processStartTime(pid: number): string | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
  return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null
}
