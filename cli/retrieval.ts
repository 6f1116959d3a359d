/**
 * The cold-storage step of restore and verify --read-data: before reading data packs that live in an
 * archive class (S3 Glacier Flexible Retrieval, Deep Archive), say how many objects and bytes must be
 * retrieved, the options with their typical wait and estimated cost, and with --request-retrieval ask for
 * them. Re-running the same command picks up where the retrieval is: nothing is requested twice.
 */
import {
  checkRetrieval, parsePrices, formatWait, mayNeedRetrieval, requestRetrieval, retrievalOptions,
  type PriceTable, type Repository, type RetrievalCheck, type RetrievalOption, type RetrievalTier,
} from '../engine/index.js'
import { CliError, EXIT, Progress, err, formatBytes, printJson, type GlobalArgs } from './common.js'
import { loadConfig } from './config-file.js'

/** The options restore and verify take for cold storage. */
export interface RetrievalArgs extends GlobalArgs {
  'request-retrieval'?: boolean
  tier?: string
  'retrieval-days'?: number
}

export const TIERS: readonly RetrievalTier[] = ['Expedited', 'Standard', 'Bulk']

/** yargs options for RetrievalArgs. */
export const retrievalOptionsSpec = {
  'request-retrieval': { type: 'boolean', describe: 'data in an archive class (Glacier, Deep Archive): request its retrieval, then run the command again when it is readable' },
  tier: { type: 'string', choices: TIERS as unknown as string[], describe: 'retrieval speed for --request-retrieval (default Standard)' },
  'retrieval-days': { type: 'number', describe: 'keep retrieved copies this many days (default 7)' },
} as const

/** What the caller should do next. */
export type RetrievalOutcome = { ready: true; check: RetrievalCheck | null } | { ready: false; check: RetrievalCheck; doc: Record<string, unknown> }

function tierOf(a: RetrievalArgs): RetrievalTier {
  const t = a.tier ?? 'Standard'
  const found = TIERS.find((x) => x.toLowerCase() === t.toLowerCase())
  if (!found) throw new CliError(`--tier must be one of ${TIERS.join(', ')}`, EXIT.usage)
  return found
}

function tally(t: { objects: number; bytes: number }): string {
  return `${t.objects} pack${t.objects === 1 ? '' : 's'} (${formatBytes(t.bytes)})`
}

/** Retrieval options for the archived packs of `check`, by class. */
function optionsOf(check: RetrievalCheck, days: number, prices: PriceTable): { storageClass: string; objects: number; bytes: number; options: RetrievalOption[] }[] {
  const out = []
  for (const [cls, t] of Object.entries(check.archivedByClass)) {
    out.push({ storageClass: cls, objects: t.objects, bytes: t.bytes, options: retrievalOptions({ provider: check.provider ?? 'aws-s3', storageClass: cls, objects: t.objects, bytes: t.bytes, days, prices }) })
  }
  return out
}

/**
 * Checks that the data packs `packs` (id → size) are readable; when some are archived, reports them (text
 * on stderr, or the JSON document on stdout) and, with --request-retrieval, requests them. Returns
 * `ready: false` when the operation must wait; the caller then exits with EXIT.archived.
 */
export async function ensureReadable(
  repo: Repository,
  a: RetrievalArgs,
  packs: ReadonlyMap<string, number>,
  o: { command: string; prices?: PriceTable; printJson?: boolean },
): Promise<RetrievalOutcome> {
  const days = a['retrieval-days'] ?? 7
  if (!Number.isInteger(days) || days < 1 || days > 365) throw new CliError('--retrieval-days must be a whole number of days from 1 to 365', EXIT.usage)
  const tier = tierOf(a)
  if (!(await mayNeedRetrieval(repo))) return { ready: true, check: null }
  // The built-in table with the configuration file's prices: overrides, as `coldstore cost` uses.
  const prices = o.prices ?? parsePrices(loadConfig(a.config))
  const progress = new Progress(a)
  let check: RetrievalCheck
  try {
    check = await checkRetrieval(repo, packs, { onProgress: (d, t) => progress.line(`checking storage classes: ${d}/${t} packs`, d === t) })
  } finally {
    progress.done()
  }
  const waiting = check.archived.objects + check.pending.objects
  const costs = optionsOf(check, days, prices)
  let requested = 0
  if (waiting > 0 && a['request-retrieval'] && check.archivedNames.length > 0) {
    const p = new Progress(a)
    try {
      requested = (await requestRetrieval(repo, check.archivedNames, { tier, days, onProgress: (d, t) => p.line(`requesting retrieval: ${d}/${t} packs`, d === t) })).requested
    } finally {
      p.done()
    }
  }
  if (waiting === 0) {
    // Instant-access cold classes (GCS Archive, Glacier Instant Retrieval) read at once but bill the read: say what it costs.
    if (!a.json && !a.quiet) {
      for (const [cls, t] of Object.entries(check.byClass)) {
        if (cls === repo.remote.archive?.hotClass) continue
        const opt = retrievalOptions({ provider: check.provider ?? 'aws-s3', storageClass: cls, objects: t.objects, bytes: t.bytes, days, prices })[0]
        if (opt && opt.costUSD > 0) err(`note: reading ${tally(t)} from ${cls} costs about $${opt.costUSD.toFixed(2)} (retrieval and download, list prices)`)
      }
      if (check.restoredUntil && Date.parse(check.restoredUntil) - Date.now() < 86_400_000) err(`note: retrieved copies expire at ${check.restoredUntil}`)
    }
    return { ready: true, check }
  }
  const status = requested > 0 ? 'requested' : check.archived.objects > 0 ? 'retrieval-needed' : 'pending'
  const doc = {
      retrieval: {
        status, command: o.command, storage_class: check.dataClass, provider: check.provider,
        total: check.total, ready: check.ready, pending: { objects: check.pending.objects + requested, bytes: check.pending.bytes + (requested ? check.archived.bytes : 0) },
        archived: requested ? { objects: 0, bytes: 0 } : check.archived, requested, tier: requested ? tier : null, days,
        options: costs.map((c) => ({ storage_class: c.storageClass, objects: c.objects, bytes: c.bytes, options: c.options.map((x) => ({ tier: x.tier, hours: x.hours, cost_usd: x.costUSD, breakdown: x.breakdown })) })),
        prices: check.provider ? (prices[check.provider]?.label ?? null) : null,
      },
    }
  if (a.json) {
    if (o.printJson !== false) printJson(doc)
    return { ready: false, check, doc }
  }
  err(`${o.command} reads ${tally(check.total)} of data; ${tally(check.ready)} readable now, ${tally(check.pending)} being retrieved, ${tally(check.archived)} in archive storage${check.archived.objects ? ' not yet requested' : ''}.`)
  if (requested > 0) {
    const t = costs.flatMap((c) => c.options).find((x) => x.tier === tier)
    err(`requested retrieval of ${requested} packs (${formatBytes(check.archived.bytes)}), tier ${tier}${t ? `, typically readable ${formatWait(t.hours)} from now` : ''}; copies are kept ${days} days.`)
    err(`run the same command again to continue; it restores once every pack is readable and requests nothing twice.`)
  } else if (check.archived.objects > 0) {
    const label = check.provider ? (prices[check.provider]?.label ?? check.provider) : ''
    err(`retrieval options (estimates from ${label}; download to this machine included):`)
    for (const c of costs) {
      for (const x of c.options) {
        const b = x.breakdown
        err(`  ${c.storageClass} ${x.tier.padEnd(9)} ${formatWait(x.hours).padEnd(15)} ~$${x.costUSD.toFixed(2)}  (retrieval $${(b.retrieval + b.requests).toFixed(2)}, download $${b.egress.toFixed(2)}, retrieved copies $${b.restoredCopy.toFixed(2)} for ${days} days)`)
      }
    }
    err(`request them with: coldstore ${o.command} ... --request-retrieval [--tier ${TIERS.filter((x) => costs.some((c) => c.options.some((y) => y.tier === x))).join('|')}]`)
  } else {
    err(`waiting for the retrieval requested earlier; run the same command again later.`)
  }
  return { ready: false, check, doc }
}
