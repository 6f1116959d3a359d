import { ConfigError } from '../errors.js'
import { DEFAULT_PRICES, GB, type ClassPrice, type PriceTable, type PriceTier, type ProviderPrice } from './prices.js'

/** One way to get archived objects back, with its typical wait and estimated cost. */
export interface RetrievalOption {
  /** The S3 tier, or `instant` for classes read at once (GCS archive classes, GLACIER_IR, hot classes). */
  tier: PriceTier | 'instant'
  /** Typical hours until readable: [fastest, slowest]; [0, 0] for instant. */
  hours: [number, number]
  /** Estimated dollars in all, and its parts. */
  costUSD: number
  breakdown: { retrieval: number; requests: number; reads: number; egress: number; restoredCopy: number }
}

/** The prices of `provider`, or a ConfigError naming the known ones. */
export function providerPrices(prices: PriceTable, provider: string): ProviderPrice {
  const p = prices[provider]
  if (!p) throw new ConfigError(`no prices for provider '${provider}' (known: ${Object.keys(prices).join(', ')}); add it under prices: in coldstore.yaml`)
  return p
}

/** The prices of one class, or a ConfigError. */
export function classPrices(p: ProviderPrice, storageClass: string, provider: string): ClassPrice {
  const c = p.classes[storageClass]
  if (!c) throw new ConfigError(`no prices for storage class ${storageClass} of '${provider}' (known: ${Object.keys(p.classes).join(', ')})`)
  return c
}

/**
 * The retrieval options for reading `bytes` in `objects` objects of `storageClass` back to this machine
 * (egress included), keeping restored copies `days` days. Archive classes give one option per tier the
 * class has; other classes a single `instant` option.
 */
export function retrievalOptions(o: {
  provider: string
  storageClass: string
  objects: number
  bytes: number
  days: number
  prices?: PriceTable
}): RetrievalOption[] {
  const p = providerPrices(o.prices ?? DEFAULT_PRICES, o.provider)
  const c = classPrices(p, o.storageClass, o.provider)
  const gb = o.bytes / GB
  const reads = (o.objects / 1000) * c.per1000Reads
  const egress = gb * p.egressPerGB
  const round = (x: number): number => Math.round(x * 100) / 100
  const make = (tier: RetrievalOption['tier'], hours: [number, number], retrieval: number, requests: number, restoredCopy: number): RetrievalOption => {
    const breakdown = { retrieval: round(retrieval), requests: round(requests), reads: round(reads), egress: round(egress), restoredCopy: round(restoredCopy) }
    return { tier, hours, costUSD: round(retrieval + requests + reads + egress + restoredCopy), breakdown }
  }
  if (!c.tiers) return [make('instant', [0, 0], gb * c.readPerGB, 0, 0)]
  const copy = p.restoredCopyClass ? p.classes[p.restoredCopyClass] : undefined
  const restoredCopy = copy ? gb * copy.storagePerGBMonth * (o.days / 30) : 0
  const out: RetrievalOption[] = []
  for (const tier of ['Expedited', 'Standard', 'Bulk'] as const) {
    const t = c.tiers[tier]
    if (t) out.push(make(tier, t.hours, gb * t.perGB, (o.objects / 1000) * t.per1000Requests, restoredCopy))
  }
  return out
}

/** Formats typical hours for people: "1–5 minutes", "3–5 hours", "within 48 hours". */
export function formatWait(hours: [number, number]): string {
  const [a, b] = hours
  if (b === 0) return 'at once'
  if (b < 1) return `${Math.round(a * 60)}–${Math.round(b * 60)} minutes`
  return `${a}–${b} hours`
}

/**
 * Dollars for people: cents, or two significant digits written out below a cent (so a small repository's
 * growth shows, and never in exponent form): 12.345 → "$12.35", 0.0099 → "$0.0099", 2.7e-8 → "$0.000000027".
 */
export function formatUSD(x: number): string {
  if (x === 0) return '$0.00'
  if (Math.abs(x) < 0.01) return `$${x.toFixed(Math.min(12, 1 - Math.floor(Math.log10(Math.abs(x)))))}`
  return `$${x.toFixed(2)}`
}
