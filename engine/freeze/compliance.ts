import { parse as parseYaml } from 'yaml'
import { UsageError } from '../errors.js'

/** Freeze fields a compliance template may require. */
export const FREEZE_FIELDS = ['contact', 'description', 'milestone', 'handoff', 'deliverable', 'retention_years', 'legal_hold'] as const
export type FreezeField = (typeof FREEZE_FIELDS)[number]

/** One compliance template (compliance/templates.yaml, or the user's compliance.yaml). */
export interface ComplianceTemplate {
  name: string
  title: string
  retentionYears: number
  legalHold: boolean
  requires: FreezeField[]
  /** Where it was defined (file path), for messages. */
  source: string
}

/**
 * Parses template files in order (shipped first, then the user's): a later
 * template replaces an earlier one of the same name (case-insensitive).
 * Throws UsageError naming the file and template for a malformed entry.
 */
export function parseComplianceTemplates(files: readonly { path: string; text: string }[]): Map<string, ComplianceTemplate> {
  const out = new Map<string, ComplianceTemplate>()
  for (const f of files) {
    let doc: unknown
    try {
      doc = parseYaml(f.text)
    } catch (err) {
      throw new UsageError(`${f.path}: not valid YAML: ${(err as Error).message}`, { cause: err })
    }
    if (doc === null || doc === undefined) continue
    const templates = (doc as { templates?: unknown }).templates
    if (typeof templates !== 'object' || templates === null || Array.isArray(templates)) throw new UsageError(`${f.path}: expected a "templates:" mapping`)
    for (const [name, raw] of Object.entries(templates as Record<string, unknown>)) {
      const where = `${f.path}: template ${name}`
      if (typeof raw !== 'object' || raw === null) throw new UsageError(`${where}: expected a mapping`)
      const t = raw as Record<string, unknown>
      const years = t.retention_years ?? 0
      if (typeof years !== 'number' || !Number.isInteger(years) || years < 0 || years > 100) throw new UsageError(`${where}: retention_years must be a whole number of years (0–100)`)
      const requires = t.requires ?? []
      if (!Array.isArray(requires) || requires.some((r) => !FREEZE_FIELDS.includes(r as FreezeField))) {
        throw new UsageError(`${where}: requires must list fields among ${FREEZE_FIELDS.join(', ')}`)
      }
      if (t.legal_hold !== undefined && typeof t.legal_hold !== 'boolean') throw new UsageError(`${where}: legal_hold must be true or false`)
      out.set(name.toLowerCase(), {
        name, title: typeof t.title === 'string' ? t.title : name, retentionYears: years, legalHold: t.legal_hold === true,
        requires: requires as FreezeField[], source: f.path,
      })
    }
  }
  return out
}

/** Finds a template by name (case-insensitive); UsageError listing the known ones when missing. */
export function findComplianceTemplate(templates: Map<string, ComplianceTemplate>, name: string): ComplianceTemplate {
  const t = templates.get(name.toLowerCase())
  if (!t) throw new UsageError(`unknown compliance template ${JSON.stringify(name)} (known: ${[...templates.values()].map((x) => x.name).join(', ') || 'none'})`)
  return t
}
