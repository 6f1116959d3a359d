import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import ignore, { type Ignore } from 'ignore'
import picomatch from 'picomatch'
import { UsageError } from '../errors.js'

/**
 * Decides which paths a backup leaves out.
 *
 * Glob patterns (picomatch, dotfiles included): a pattern without '/' matches
 * any single path component (`*.o`, `node_modules`); a pattern with '/' is
 * matched against the path relative to the source root (`build/**`, `src/gen`);
 * a leading '/' anchors it there (`/build`; `/proj/build`, with the source's
 * own name as stored in the snapshot, works too). A matched directory is skipped entirely.
 * With `gitignore`, every `.gitignore` met on the way down applies to its
 * directory and below, as git does.
 */
export class ExcludeMatcher {
  private readonly base: ((s: string) => boolean)[] = []
  private readonly anchored: ((s: string) => boolean)[] = []
  readonly gitignore: boolean

  constructor(patterns: readonly string[], gitignore: boolean) {
    this.gitignore = gitignore
    for (const raw of patterns) {
      const p = raw.trim()
      if (!p || p.startsWith('#')) continue
      try {
        if (p.includes('/')) {
          const anchoredPattern = p.replace(/^\/+/, '').replace(/\/+$/, '')
          this.anchored.push(picomatch(anchoredPattern, { dot: true }))
          if (!p.startsWith('/') && !p.startsWith('**/')) this.anchored.push(picomatch(`**/${anchoredPattern}`, { dot: true }))
        } else {
          this.base.push(picomatch(p, { dot: true }))
        }
      } catch (err) {
        throw new UsageError(`bad exclude pattern ${JSON.stringify(raw)}: ${(err as Error).message}`, { cause: err })
      }
    }
  }

  /** Reads patterns from exclude files (one per line, '#' comments). */
  static async readPatternFiles(files: readonly string[]): Promise<string[]> {
    const out: string[] = []
    for (const f of files) {
      let text: string
      try {
        text = await readFile(f, 'utf8')
      } catch (err) {
        throw new UsageError(`cannot read exclude file ${f}: ${(err as Error).message}`, { cause: err })
      }
      out.push(...text.split(/\r?\n/))
    }
    return out
  }

  /**
   * True when the entry at `rel` ('/'-separated, as stored: starting with the
   * source's name) is excluded by the glob patterns; `inSource` is the same
   * path without the source's name, which path patterns are also tried on.
   */
  matches(rel: string, name: string, inSource?: string): boolean {
    for (const m of this.base) if (m(name)) return true
    for (const m of this.anchored) if (m(rel) || (inSource !== undefined && m(inSource))) return true
    return false
  }
}

/** The .gitignore rules in force in one directory: its own plus its ancestors'. */
export class GitignoreScope {
  private readonly rules: { dir: string; ig: Ignore }[]
  private constructor(rules: { dir: string; ig: Ignore }[]) {
    this.rules = rules
  }
  static root(): GitignoreScope {
    return new GitignoreScope([])
  }
  /** The scope for a directory at `rel` (relative to the source root), adding its .gitignore if it has one. */
  async child(absDir: string, rel: string): Promise<GitignoreScope> {
    let text: string
    try {
      text = await readFile(join(absDir, '.gitignore'), 'utf8')
    } catch {
      return this
    }
    return new GitignoreScope([...this.rules, { dir: rel, ig: ignore().add(text) }])
  }
  /** True when git would ignore `rel` (a directory when `isDir`). */
  ignores(rel: string, isDir: boolean): boolean {
    for (const r of this.rules) {
      const sub = r.dir === '' ? rel : rel.startsWith(r.dir + '/') ? rel.slice(r.dir.length + 1) : null
      if (sub === null || sub === '') continue
      if (r.ig.ignores(isDir ? sub + '/' : sub)) return true
    }
    return false
  }
}
