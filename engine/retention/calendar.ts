import { UsageError } from '../errors.js'
import type { RetentionDuration } from './duration.js'

/** Wall-clock fields of an instant in a time zone, and that zone's offset from UTC then. */
export interface WallTime {
  year: number
  /** 1–12 */
  month: number
  day: number
  hour: number
  /** Milliseconds to add to UTC to get the wall clock (east of Greenwich is positive). */
  offsetMs: number
}

const formatters = new Map<string, Intl.DateTimeFormat>()

/** Throws UsageError unless `timeZone` is an IANA zone name this runtime knows (or `UTC`). */
export function checkTimeZone(timeZone: string): void {
  formatter(timeZone)
}

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone)
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
      })
    } catch (err) {
      throw new UsageError(`unknown time zone ${JSON.stringify(timeZone)} (use an IANA name such as Europe/Berlin, or UTC)`, { cause: err })
    }
    formatters.set(timeZone, f)
  }
  return f
}

/** The wall clock of `ms` (milliseconds since the epoch) in `timeZone`. */
export function wallTime(ms: number, timeZone: string): WallTime {
  if (timeZone === 'UTC') {
    const d = new Date(ms)
    return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), offsetMs: 0 }
  }
  const parts = formatter(timeZone).formatToParts(new Date(ms))
  const get = (type: Intl.DateTimeFormatPartTypes): number => Number(parts.find((p) => p.type === type)?.value)
  const year = get('year')
  const month = get('month')
  const day = get('day')
  const hour = get('hour')
  const wallAsUtc = Date.UTC(year, month - 1, day, hour, get('minute'), get('second'))
  // The formatter drops milliseconds: compare whole seconds.
  const offsetMs = wallAsUtc - (ms - (((ms % 1000) + 1000) % 1000))
  return { year, month, day, hour, offsetMs }
}

/** ISO 8601 week-numbering year and week (what Go's `Time.ISOWeek` returns) of a calendar date. */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = Date.UTC(year, month - 1, day)
  const weekday = (new Date(date).getUTCDay() + 6) % 7 // Monday 0 … Sunday 6
  const thursday = date + (3 - weekday) * 86_400_000 // the week belongs to the year of its Thursday
  const isoYear = new Date(thursday).getUTCFullYear()
  const dayOfYear = Math.floor((thursday - Date.UTC(isoYear, 0, 1)) / 86_400_000) // 0-based
  return { year: isoYear, week: Math.floor(dayOfYear / 7) + 1 }
}

/**
 * `ms` moved back by `d` like restic does it: Go's `AddDate(-y, -m, -d)` on the wall clock in the zone's
 * offset at `ms` (a fixed offset, as the snapshot time restic reads has: months and days overflow the way
 * Go's `time.Date` normalizes them, e.g. March 31 minus one month is March 3 or 2), then minus `hours` hours
 * of elapsed time.
 */
export function subtractDuration(ms: number, d: RetentionDuration, timeZone: string): number {
  const offsetMs = wallTime(ms, timeZone).offsetMs
  const wall = new Date(ms + offsetMs)
  // Date.UTC normalizes overflowing months and days the same way Go's time.Date does.
  const moved = Date.UTC(
    wall.getUTCFullYear() - d.years, wall.getUTCMonth() - d.months, wall.getUTCDate() - d.days,
    wall.getUTCHours(), wall.getUTCMinutes(), wall.getUTCSeconds(), wall.getUTCMilliseconds(),
  )
  return moved - offsetMs - d.hours * 3_600_000
}
