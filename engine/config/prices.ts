/**
 * The `prices:` section of coldstore.yaml: overrides of the built-in price table (engine/cost/prices.ts),
 * in the table's shapes with config-file spelling. Entries merge into the built-in ones field by field, so
 * `prices: { aws-s3: { classes: { DEEP_ARCHIVE: { storage_per_gb_month: 0.0018 } } } }` changes one number;
 * a provider or class the table lacks must be given whole.
 *
 * ```yaml
 * prices:
 *   aws-s3:                     # provider ids: aws-s3, s3-compatible, gcs, b2, local
 *     egress_per_gb: 0.09
 *     classes:
 *       DEEP_ARCHIVE:
 *         storage_per_gb_month: 0.0018      # eu-central-1
 *         tiers: { Bulk: { per_gb: 0.0025, per_1000_requests: 0.025, hours: [24, 48] } }
 *   local: { classes: { STANDARD: { storage_per_gb_month: 0.002 } } }   # what your own disks cost
 * ```
 */
import { DEFAULT_PRICES, type ClassPrice, type PriceTable, type PriceTier, type ProviderPrice, type TierPrice } from '../cost/index.js'
import { ConfigError } from '../errors.js'
import type { ColdstoreConfig } from './config.js'

const PROVIDER_KEYS = new Set(['label', 'egress_per_gb', 'restored_copy_class', 'classes'])
const CLASS_FIELDS: Record<string, keyof ClassPrice> = {
  storage_per_gb_month: 'storagePerGBMonth',
  per_1000_writes: 'per1000Writes',
  per_1000_reads: 'per1000Reads',
  read_per_gb: 'readPerGB',
  min_days: 'minDays',
}
const TIER_NAMES: readonly PriceTier[] = ['Expedited', 'Standard', 'Bulk']
const TIER_FIELDS: Record<string, 'perGB' | 'per1000Requests'> = { per_gb: 'perGB', per_1000_requests: 'per1000Requests' }

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * The price table to use: the built-in one with the file's `prices:` overrides merged in. Without a
 * `prices:` section, DEFAULT_PRICES itself.
 *
 * @throws ConfigError naming the file and key.
 */
export function parsePrices(config: ColdstoreConfig | null): PriceTable {
  const raw = config?.sections.prices
  if (!config || raw === undefined || raw === null) return DEFAULT_PRICES
  const at = (k?: string): string => `${config.path}: prices${k ? `.${k}` : ''}`
  if (!isMapping(raw)) throw new ConfigError(`${at()}: expected a mapping of provider ids (${Object.keys(DEFAULT_PRICES).join(', ')}, or your own)`)
  const money = (v: unknown, key: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConfigError(`${at(key)}: expected an amount in US dollars (0 or more)`)
    return v
  }
  const table: PriceTable = { ...DEFAULT_PRICES }
  for (const [provider, def] of Object.entries(raw)) {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(provider)) throw new ConfigError(`${at(provider)}: a provider id is lower-case letters, digits and '-'`)
    if (!isMapping(def)) throw new ConfigError(`${at(provider)}: expected a mapping (egress_per_gb:, classes:...)`)
    for (const k of Object.keys(def)) if (!PROVIDER_KEYS.has(k)) throw new ConfigError(`${at(`${provider}.${k}`)}: unknown key (known: ${[...PROVIDER_KEYS].join(', ')})`)
    const known = DEFAULT_PRICES[provider]
    if (!known) {
      if (def.egress_per_gb === undefined) throw new ConfigError(`${at(`${provider}.egress_per_gb`)}: required for a provider the built-in table lacks`)
      if (!isMapping(def.classes) || Object.keys(def.classes).length === 0) throw new ConfigError(`${at(`${provider}.classes`)}: required for a provider the built-in table lacks`)
    }
    const out: ProviderPrice = {
      label: known?.label ?? `${provider} (prices from coldstore.yaml)`,
      egressPerGB: known?.egressPerGB ?? 0,
      classes: { ...(known?.classes ?? {}) },
      ...(known?.restoredCopyClass ? { restoredCopyClass: known.restoredCopyClass } : {}),
    }
    if (def.label !== undefined) {
      if (typeof def.label !== 'string' || def.label === '') throw new ConfigError(`${at(`${provider}.label`)}: expected a text`)
      out.label = def.label
    } else if (known) {
      out.label = `${known.label}, with overrides from coldstore.yaml`
    }
    if (def.egress_per_gb !== undefined) out.egressPerGB = money(def.egress_per_gb, `${provider}.egress_per_gb`)
    if (def.classes !== undefined) {
      if (!isMapping(def.classes)) throw new ConfigError(`${at(`${provider}.classes`)}: expected a mapping of storage class names`)
      for (const [cls, cdef] of Object.entries(def.classes)) {
        const ck = `${provider}.classes.${cls}`
        if (!/^[A-Z][A-Z0-9_]*$/.test(cls)) throw new ConfigError(`${at(ck)}: a storage class is written as the provider names it, in capitals (DEEP_ARCHIVE, COLDLINE...)`)
        if (!isMapping(cdef)) throw new ConfigError(`${at(ck)}: expected a mapping (storage_per_gb_month:...)`)
        const base = out.classes[cls]
        const c: Partial<ClassPrice> = base ? { ...base, ...(base.tiers ? { tiers: { ...base.tiers } } : {}) } : {}
        for (const [k, v] of Object.entries(cdef)) {
          if (k === 'tiers') continue
          const field = CLASS_FIELDS[k]
          if (!field) throw new ConfigError(`${at(`${ck}.${k}`)}: unknown key (known: ${[...Object.keys(CLASS_FIELDS), 'tiers'].join(', ')})`)
          if (field === 'minDays') {
            if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ConfigError(`${at(`${ck}.${k}`)}: expected a whole number of days`)
            c.minDays = v
          } else {
            c[field] = money(v, `${ck}.${k}`)
          }
        }
        if (!base) {
          const missing = Object.entries(CLASS_FIELDS).filter(([, f]) => c[f] === undefined).map(([k]) => k)
          if (missing.length) throw new ConfigError(`${at(ck)}: a class the built-in table lacks needs every price: missing ${missing.join(', ')}`)
        }
        if (cdef.tiers !== undefined) {
          if (!isMapping(cdef.tiers)) throw new ConfigError(`${at(`${ck}.tiers`)}: expected a mapping of tiers (${TIER_NAMES.join(', ')})`)
          const tiers: Partial<Record<PriceTier, TierPrice>> = { ...(c.tiers ?? {}) }
          for (const [tier, tdef] of Object.entries(cdef.tiers)) {
            const tk = `${ck}.tiers.${tier}`
            if (!(TIER_NAMES as readonly string[]).includes(tier)) throw new ConfigError(`${at(tk)}: unknown tier (known: ${TIER_NAMES.join(', ')})`)
            if (!isMapping(tdef)) throw new ConfigError(`${at(tk)}: expected { per_gb:, per_1000_requests:, hours: [fastest, slowest] }`)
            const prev = tiers[tier as PriceTier]
            const t: Partial<TierPrice> = prev ? { ...prev } : {}
            for (const [k, v] of Object.entries(tdef)) {
              if (k === 'hours') {
                if (!Array.isArray(v) || v.length !== 2 || !v.every((h) => typeof h === 'number' && Number.isFinite(h) && h >= 0) || v[0] > v[1]) {
                  throw new ConfigError(`${at(`${tk}.hours`)}: expected [fastest, slowest] in hours, like [3, 5]`)
                }
                t.hours = [v[0], v[1]]
                continue
              }
              const field = TIER_FIELDS[k]
              if (!field) throw new ConfigError(`${at(`${tk}.${k}`)}: unknown key (known: per_gb, per_1000_requests, hours)`)
              t[field] = money(v, `${tk}.${k}`)
            }
            if (t.perGB === undefined || t.per1000Requests === undefined || t.hours === undefined) {
              throw new ConfigError(`${at(tk)}: a tier the built-in table lacks needs per_gb, per_1000_requests and hours`)
            }
            tiers[tier as PriceTier] = t as TierPrice
          }
          c.tiers = tiers
        }
        out.classes[cls] = c as ClassPrice
      }
    }
    if (def.restored_copy_class !== undefined) {
      if (typeof def.restored_copy_class !== 'string' || !out.classes[def.restored_copy_class]) {
        throw new ConfigError(`${at(`${provider}.restored_copy_class`)}: expected one of this provider's classes (${Object.keys(out.classes).join(', ')})`)
      }
      out.restoredCopyClass = def.restored_copy_class
    }
    table[provider] = out
  }
  return table
}
