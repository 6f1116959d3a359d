/** Test helpers: searching what a run left behind for secrets (cli/secrets.test.ts, cli/homelab.test.ts). */
import { lstatSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

/** Every form a secret could be written in: raw, base64 (unpadded), hex, URL-encoded, UTF-16. */
export function secretForms(s: string): Buffer[] {
  return [Buffer.from(s), Buffer.from(Buffer.from(s).toString('base64').replace(/=+$/, '')), Buffer.from(Buffer.from(s).toString('hex')), Buffer.from(encodeURIComponent(s)), Buffer.from(s, 'utf16le')]
}

/** Every regular file below `dir` (not following links), except those under `skip`. */
export function allFiles(dir: string, skip: readonly string[]): string[] {
  const out: string[] = []
  const walk = (d: string): void => {
    if (skip.some((s) => d === s || d.startsWith(`${s}/`))) return
    for (const n of readdirSync(d)) {
      const p = join(d, n)
      const st = lstatSync(p)
      if (st.isDirectory()) walk(p)
      else if (st.isFile()) out.push(p)
    }
  }
  walk(dir)
  return out
}
