/**
 * Freeze defaults from files: the global `freeze:` section of
 * $XDG_CONFIG_HOME/coldstore/coldstore.yaml, overridden by the project's
 * `.coldstore.yaml` at the source root (its `freeze:` section, or its top
 * level); command-line flags override both. And the compliance templates:
 * compliance/templates.yaml shipped with coldstore plus the user's
 * $XDG_CONFIG_HOME/coldstore/compliance.yaml.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { parseComplianceTemplates, type ComplianceTemplate } from '../engine/index.js'
import { CliError, EXIT } from './common.js'
import { configDir } from './config-file.js'

/** Freeze settings a configuration file may hold (snake_case, as in the file). */
export interface FreezeDefaults {
  exclude?: string[]
  contact?: string
  description?: string
  compliance?: string
  retention_years?: number
  legal_hold?: boolean
  gitignore?: boolean
  include_git_metadata?: boolean
  include_environment?: boolean
  include_setup_docs?: boolean
  include_reports?: boolean
}

const STRINGS = ['contact', 'description', 'compliance'] as const
const BOOLEANS = ['legal_hold', 'gitignore', 'include_git_metadata', 'include_environment', 'include_setup_docs', 'include_reports'] as const
const KEYS = new Set<string>(['exclude', 'retention_years', ...STRINGS, ...BOOLEANS])


function readYaml(path: string): unknown {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`, EXIT.usage)
  }
  try {
    return parseYaml(text)
  } catch (err) {
    throw new CliError(`${path}: not valid YAML: ${(err as Error).message}`, EXIT.usage)
  }
}

/** Checks and returns the freeze settings of one file's section. */
function checkDefaults(path: string, section: unknown): FreezeDefaults {
  if (section === null || section === undefined) return {}
  if (typeof section !== 'object' || Array.isArray(section)) throw new CliError(`${path}: the freeze settings must be a mapping`, EXIT.usage)
  const s = section as Record<string, unknown>
  for (const k of Object.keys(s)) {
    if (!KEYS.has(k)) throw new CliError(`${path}: unknown freeze setting "${k}" (known: ${[...KEYS].join(', ')})`, EXIT.usage)
  }
  for (const k of STRINGS) if (s[k] !== undefined && typeof s[k] !== 'string') throw new CliError(`${path}: ${k} must be a string`, EXIT.usage)
  for (const k of BOOLEANS) if (s[k] !== undefined && typeof s[k] !== 'boolean') throw new CliError(`${path}: ${k} must be true or false`, EXIT.usage)
  if (s.retention_years !== undefined && (typeof s.retention_years !== 'number' || !Number.isInteger(s.retention_years) || s.retention_years < 0)) {
    throw new CliError(`${path}: retention_years must be a whole number of years`, EXIT.usage)
  }
  if (s.exclude !== undefined && (!Array.isArray(s.exclude) || s.exclude.some((e) => typeof e !== 'string'))) {
    throw new CliError(`${path}: exclude must be a list of patterns`, EXIT.usage)
  }
  return s as FreezeDefaults
}

/**
 * The merged defaults for a freeze of `sourceDir`, and the files they came
 * from. Scalars of the project file override the global ones; exclude lists add up.
 */
export function loadFreezeDefaults(sourceDir: string): { defaults: FreezeDefaults; files: string[] } {
  const files: string[] = []
  const merged: FreezeDefaults = {}
  const global = join(configDir(), 'coldstore.yaml')
  const layers: FreezeDefaults[] = []
  if (existsSync(global)) {
    const doc = readYaml(global) as Record<string, unknown> | null
    layers.push(checkDefaults(`${global} (freeze:)`, doc && typeof doc === 'object' ? doc.freeze : undefined))
    files.push(global)
  }
  const project = join(sourceDir, '.coldstore.yaml')
  if (existsSync(project)) {
    const doc = readYaml(project) as Record<string, unknown> | null
    const section = doc && typeof doc === 'object' && 'freeze' in doc ? doc.freeze : doc
    layers.push(checkDefaults(project, section))
    files.push(project)
  }
  for (const l of layers) {
    const { exclude, ...rest } = l
    Object.assign(merged, rest)
    if (exclude) merged.exclude = [...(merged.exclude ?? []), ...exclude]
  }
  return { defaults: merged, files }
}

/** compliance/templates.yaml of this installation (found from the running file: dist/bundle/, dist/cli/ or cli/). */
function shippedTemplates(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 4; i++) {
    const p = join(dir, 'compliance', 'templates.yaml')
    if (existsSync(p)) return p
    dir = dirname(dir)
  }
  throw new CliError('compliance/templates.yaml is missing from this installation', EXIT.failure)
}

/** The shipped compliance templates plus the user's compliance.yaml, which may add or replace templates. */
export function loadComplianceTemplates(): Map<string, ComplianceTemplate> {
  const files = [shippedTemplates(), join(configDir(), 'compliance.yaml')].filter((p) => existsSync(p))
  return parseComplianceTemplates(files.map((path) => ({ path, text: readFileSync(path, 'utf8') })))
}
