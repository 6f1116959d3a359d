import { UsageError } from '../errors.js'

/**
 * A calendar duration as restic's `--keep-within` takes it: years, months, days and hours
 * (`1y2m3d4h`). Months and years are calendar units, applied like Go's `time.AddDate`.
 */
export interface RetentionDuration {
  years: number
  months: number
  days: number
  hours: number
}

/** The zero duration (nothing kept by a `within` rule). */
export const ZERO_DURATION: RetentionDuration = Object.freeze({ years: 0, months: 0, days: 0, hours: 0 })

/**
 * Parses `6y5m234d37h` (any of the four parts, in any order; a later part of the same unit replaces an
 * earlier one, as in restic). Surrounding spaces are ignored. Negative parts are refused (restic ≥ 0.17
 * refuses them too: a negative duration would keep snapshots newer than the latest one).
 *
 * @throws UsageError with the reason, for anything else.
 */
export function parseRetentionDuration(text: string): RetentionDuration {
  const d = { years: 0, months: 0, days: 0, hours: 0 }
  let s = text.trim()
  if (s === '') throw new UsageError('empty duration: write it like 1y2m3d4h (years, months, days, hours)')
  while (s !== '') {
    const m = /^(-?)(\d+)(.?)/.exec(s)
    if (!m || m[2] === undefined) throw new UsageError(`invalid duration ${JSON.stringify(text)}: no number found at ${JSON.stringify(s)} (write it like 1y2m3d4h)`)
    if (m[1] === '-') throw new UsageError(`invalid duration ${JSON.stringify(text)}: negative values are not allowed`)
    const n = Number(m[2])
    if (!Number.isSafeInteger(n)) throw new UsageError(`invalid duration ${JSON.stringify(text)}: ${m[2]} is too large`)
    switch (m[3]) {
      case 'y': d.years = n; break
      case 'm': d.months = n; break
      case 'd': d.days = n; break
      case 'h': d.hours = n; break
      case '': throw new UsageError(`invalid duration ${JSON.stringify(text)}: no unit after ${n} (y, m, d or h)`)
      default: throw new UsageError(`invalid duration ${JSON.stringify(text)}: unknown unit ${JSON.stringify(m[3])} after ${n} (y, m, d or h)`)
    }
    s = s.slice(m[0].length)
  }
  return d
}

/** `1y2m3d4h`, leaving out zero parts (restic's spelling, used in keep reasons: "within 1y2m"). */
export function formatRetentionDuration(d: RetentionDuration): string {
  return `${d.years ? `${d.years}y` : ''}${d.months ? `${d.months}m` : ''}${d.days ? `${d.days}d` : ''}${d.hours ? `${d.hours}h` : ''}`
}

/** True when every part is zero. */
export function isZeroDuration(d: RetentionDuration | undefined): boolean {
  return !d || (d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0)
}
