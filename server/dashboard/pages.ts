/**
 * The dashboard's pages, rendered on the server from plain data (no I/O here): the job list, a job's page
 * (status, Run now, history, snapshots with links into the file browser, retention, storage, cost, full
 * restore estimates), a run's page (its log, live while it runs), and the login page. Every value from a
 * job, a path, a log line or an error passes through `esc`.
 */
import type {
  JobCost, JobDefinition, JobStatus, JournalEvent, KeptSnapshot, RepositoryCost, RunSummary,
} from '../../engine/index.js'
import { formatJournalEvent } from '../../engine/index.js'
import { addedBytesSeries, renderChart } from './chart.js'
import type { DashboardCosts, RepositoryCostState } from './source.js'
import {
  ago, bytes, cut, duration, esc, healthPill, hours, jobHref, page, resultPill, runHref, table, usd, when, type PageContext,
} from './render.js'

/** A snapshot row of a job's page. */
export interface SnapshotRow {
  id: string
  time: string
  /** The snapshot's folder in the file browser. */
  href: string
  files: number | null
  bytes: number | null
  tags: string[]
  kind: 'snapshot' | 'freeze'
  /** Why the job's retention keeps it; null when it would be removed by the next forget; undefined without retention. */
  kept?: KeptSnapshot['reasons'] | null
}

function runNow(ctx: PageContext, s: JobStatus, kind: 'backup' | 'check' = 'backup'): string {
  const running = s.running !== null
  const label = kind === 'check' ? 'Check now' : 'Run now'
  return `<form method="post" action="${esc(jobHref(s.name))}/run" class="inline runnow"><input type="hidden" name="csrf" value="${esc(ctx.csrf)}"><input type="hidden" name="kind" value="${kind}"><button type="submit"${kind === 'check' ? ' class="secondary"' : ''}${running ? ' disabled title="a run is in progress"' : ''} data-job="${esc(s.name)}">${label}</button></form>`
}

function lastRunText(s: JobStatus, now: Date): string {
  if (s.running) return `${resultPill(null, true)} since ${when(s.running.started)} · <a href="${esc(runHref(s.running.id))}">live log</a>`
  const r = s.last_run
  if (!r) return '<span class="note">never</span>'
  return `${resultPill(r.result)} ${when(r.finished ?? r.started)} <span class="note">(${esc(ago(r.finished ?? r.started, now))})</span> · <a href="${esc(runHref(r.id))}">log</a>`
}

function reasons(s: JobStatus, max?: number): string {
  return s.reasons.length ? `<ul class="reasons">${s.reasons.map((r) => `<li>${esc(max ? cut(r, max) : r)}</li>`).join('')}</ul>` : ''
}

/** The cost of one job from the cached estimates. */
function jobCost(costs: DashboardCosts, job: string): { repo: RepositoryCostState; report: RepositoryCost | null; job: JobCost | null } | null {
  const repo = costs.repositories.find((r) => r.jobs.includes(job))
  if (!repo) return null
  return { repo, report: repo.report, job: repo.report?.jobs.find((j) => j.job === job) ?? null }
}

function fastestTier(j: JobCost): string {
  const t = j.restore.tiers
  if (t.length === 0) return '–'
  const best = [...t].sort((a, b) => a.hours[1] - b.hours[1])[0]
  const cheap = [...t].sort((a, b) => a.costUSD - b.costUSD)[0]
  const f = (x: (typeof t)[number]): string => `${esc(x.tier)}: ${esc(hours(x.hours))}, ~${esc(usd(x.costUSD))}`
  return best === cheap ? f(best) : `${f(best)}<br>${f(cheap)}`
}

function costsUpdated(costs: DashboardCosts): string {
  const errors = costs.repositories.filter((r) => r.error)
  const state = costs.computing ? ' <span class="note">(updating…)</span>' : ''
  const when_ = costs.updated ? `Estimated ${when(costs.updated)}${state}.` : costs.computing ? 'Computing the first estimate…' : 'No estimate yet.'
  const errs = errors.map((r) => `<p class="error">${esc(r.location)}: ${esc(r.error)}</p>`).join('')
  return `<p class="note" data-costs-updated="${esc(costs.updated ?? '')}">${when_} Estimates are made after runs and at most hourly otherwise; prices from the built-in table with the configuration's <code>prices:</code>.</p>${errs}`
}

function storageByClass(costs: DashboardCosts): string {
  const by = new Map<string, { objects: number; bytes: number; monthly: number; price: number | null }>()
  for (const r of costs.repositories) {
    for (const c of r.report?.stored.byClass ?? []) {
      const e = by.get(c.storageClass) ?? { objects: 0, bytes: 0, monthly: 0, price: c.pricePerGBMonth }
      e.objects += c.objects
      e.bytes += c.bytes
      e.monthly += c.monthlyUSD
      by.set(c.storageClass, e)
    }
  }
  const rows = [...by.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([cls, e]) => [
    `<span data-class="${esc(cls)}">${esc(cls)}</span>`, `<span class="num">${esc(bytes(e.bytes))}</span>`, String(e.objects),
    e.price === null ? 'no price' : `$${esc(e.price)}/GB-month`, `<span data-class-usd="${esc(e.monthly)}">${esc(usd(e.monthly))}</span>`,
  ])
  return table(['Storage class', 'Stored', 'Objects', 'Price', 'Per month'], rows, { empty: 'Nothing stored yet (or no estimate yet).' })
}

/** The job list. */
export function overviewPage(ctx: PageContext, o: { statuses: JobStatus[]; runs: RunSummary[]; costs: DashboardCosts; jobs: ReadonlyMap<string, JobDefinition>; notice?: string }): string {
  const counts = { green: 0, yellow: 0, red: 0 }
  for (const s of o.statuses) counts[s.health]++
  const stored = o.costs.repositories.reduce((n, r) => n + (r.report?.stored.bytes ?? 0), 0)
  const summary = `<p class="summary">${o.statuses.length} job${o.statuses.length === 1 ? '' : 's'}: ${counts.green} green, ${counts.yellow} yellow, ${counts.red} red · `
    + `estimated <strong data-total-usd="${esc(o.costs.totalMonthlyUSD ?? '')}">${esc(usd(o.costs.totalMonthlyUSD))}</strong>/month`
    + `${o.costs.thresholdUSD !== null ? ` <span class="note">(alert above ${esc(usd(o.costs.thresholdUSD))})</span>` : ''} · <span data-stored-bytes="${stored}">${esc(bytes(stored))}</span> stored</p>`
  const cards = o.statuses.map((s) => {
    const def = o.jobs.get(s.name)
    const size = s.last_snapshot ? `${esc(bytes(s.last_snapshot.bytes))} in ${s.last_snapshot.files} files` : '–'
    return `<li class="card h-${s.health}" data-job="${esc(s.name)}">
<h2><a href="${esc(jobHref(s.name))}">${esc(s.name)}</a> ${healthPill(s.health)}</h2>
<dl class="facts">
<dt>Type</dt><dd>${esc(s.type)}${def?.repo ? ` → <span class="wrap">${esc(def.repo)}</span>` : ''}</dd>
<dt>Schedule</dt><dd>${s.schedule ? `${esc(s.schedule)} <span class="note">(${esc(s.timezone)})</span>` : '<span class="note">manual only</span>'}</dd>
<dt>Last run</dt><dd class="last-run">${lastRunText(s, ctx.now)}</dd>
<dt>Last success</dt><dd>${s.last_success ? `${when(s.last_success.finished ?? s.last_success.started)} <span class="note">(${esc(ago(s.last_success.finished ?? s.last_success.started, ctx.now))})</span>` : '<span class="note">none</span>'}</dd>
<dt>Next run</dt><dd>${s.next_run ? `${when(s.next_run)} <span class="note">(${esc(ago(s.next_run, ctx.now))})</span>` : '–'}</dd>
<dt>Last snapshot</dt><dd>${size}</dd>
</dl>${reasons(s, 160)}
<div class="actions">${runNow(ctx, s)}<a href="${esc(jobHref(s.name))}">History, snapshots, cost</a></div>
</li>`
  })

  const costRows = o.statuses.map((s) => {
    const c = jobCost(o.costs, s.name)
    const j = c?.job
    return [
      `<a href="${esc(jobHref(s.name))}">${esc(s.name)}</a>`,
      j ? String(j.snapshots) : '0',
      j ? esc(bytes(j.referenced.bytes)) : '–',
      j ? j.referenced.byClass.map((x) => `${esc(x.storageClass)} ${esc(bytes(x.bytes))}`).join('<br>') : '–',
      j ? `<span data-job-usd="${esc(j.referenced.monthlyUSD)}">${esc(usd(j.referenced.monthlyUSD))}</span>` : '–',
      j ? fastestTier(j) : s.type === 'restic' ? '<span class="note">restic repository: not estimated</span>' : '–',
    ]
  })
  const series = o.statuses.map((s) => addedBytesSeries(s.name, o.runs))
  const recent = o.runs.slice(0, 12).map((r) => runRow(r, true))
  return page({
    title: 'Jobs', ctx,
    body: `<h1>Jobs</h1>${o.notice ? `<p class="banner">${esc(o.notice)}</p>` : ''}${summary}
<ul class="cards">${cards.join('\n')}</ul>
<h2>Storage and cost</h2>
${costsUpdated(o.costs)}
${table(['Job', 'Snapshots', 'Stored', 'By class', 'Per month', 'Full restore'], costRows, { cls: 'costs' })}
<h3>By storage class</h3>
${storageByClass(o.costs)}
<h3>Stored bytes over time</h3>
${renderChart({ title: 'Bytes the runs added to the repositories (cumulative, before prune)', series, storedNow: o.costs.updated ? o.costs.repositories.reduce((n, r) => n + (r.report?.stored.bytes ?? 0), 0) : null })}
<h2>Recent runs</h2>
${table(['Started', 'Job', 'Result', 'Duration', 'Files', 'Size', 'Added', ''], recent, { cls: 'runs', empty: 'No runs yet.' })}`,
  })
}

function runRow(r: RunSummary, withJob: boolean): string[] {
  const running = r.state === 'running'
  const cells = [
    `${when(r.started)}<br><span class="note">${esc(r.trigger)}</span>`,
    ...(withJob ? [`<a href="${esc(jobHref(r.job))}">${esc(r.job)}</a>${r.kind === 'check' ? ' <span class="note">(check)</span>' : ''}`] : [r.kind === 'check' ? 'check' : 'backup']),
    `${resultPill(r.result, running)}${r.error ? `<div class="wrap note">${esc(cut(r.error, 160))}</div>` : ''}`,
    running ? '–' : esc(duration(r.duration_ms)),
    r.stats ? String(r.stats.files) : '–',
    r.stats ? esc(bytes(r.stats.bytes)) : '–',
    r.stats ? esc(bytes(r.stats.added_bytes)) : '–',
    `<a href="${esc(runHref(r.id))}">${running ? 'live log' : 'log'}</a> · <a href="/api/runs/${esc(encodeURIComponent(r.id))}/log?download=1" download="${esc(`${r.job}-${r.id}.log`)}">download</a>`,
  ]
  return cells
}

function retentionText(def: JobDefinition): string {
  const r = def.retention
  if (!r) return 'none: every snapshot is kept'
  const parts: string[] = []
  for (const k of ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) {
    const v = r[`keep_${k}`]
    if (v !== undefined) parts.push(`${v === -1 ? 'all' : v} ${k === 'last' ? 'latest' : k}`)
  }
  if (r.keep_within) parts.push(`all within ${r.keep_within} of the newest`)
  if (r.keep_tag?.length) parts.push(`all tagged ${r.keep_tag.join(' or ')}`)
  return `keep ${parts.join(', ')}`
}

/** A job's page. */
export function jobPage(ctx: PageContext, o: {
  status: JobStatus
  def: JobDefinition
  runs: RunSummary[]
  snapshots: SnapshotRow[] | null
  /** Where the job's latest snapshot is browsed, when it has one. */
  latestHref: string | null
  costs: DashboardCosts
  notice?: string
}): string {
  const s = o.status
  const def = o.def
  const hasCheck = def.verify !== null || def.restic?.checkSchedule != null
  const c = jobCost(o.costs, s.name)
  const status = `<dl class="facts">
<dt>Health</dt><dd>${healthPill(s.health)}</dd>
<dt>Type</dt><dd>${esc(s.type)}</dd>
<dt>Repository</dt><dd class="wrap">${esc(def.repo ?? def.restic?.repository ?? '–')}</dd>
<dt>Sources</dt><dd class="wrap">${def.sources.map((x) => esc(x)).join('<br>')}</dd>
<dt>Schedule</dt><dd>${s.schedule ? `${esc(s.schedule)} <span class="note">(${esc(s.timezone)}; missed runs: ${esc(s.missed_policy)})</span>` : '<span class="note">manual only</span>'}</dd>
<dt>Next run</dt><dd>${s.next_run ? `${when(s.next_run)} <span class="note">(${esc(ago(s.next_run, ctx.now))})</span>` : '–'}</dd>
<dt>Last run</dt><dd class="last-run">${lastRunText(s, ctx.now)}</dd>
<dt>Last success</dt><dd>${s.last_success ? `${when(s.last_success.finished ?? s.last_success.started)}` : '<span class="note">none</span>'}</dd>
${s.check ? `<dt>Check</dt><dd>${esc(s.check.schedule)}; last: ${s.check.last ? `${resultPill(s.check.last.result)} ${when(s.check.last.finished ?? s.check.last.started)}` : 'never'}; next ${when(s.check.next_run)}</dd>` : ''}
</dl>${reasons(s)}`

  // Storage, cost and restore.
  let storage = '<p class="note">Not estimated: a restic repository (its format is not read).</p>'
  if (def.type !== 'restic') {
    const j = c?.job
    const repo = c?.report
    const tiers = j ? j.restore.tiers.map((x) => [
      esc(x.tier), esc(hours(x.hours)), `<span data-tier="${esc(x.tier)}" data-tier-usd="${esc(x.costUSD)}">~${esc(usd(x.costUSD))}</span>`,
      `<span class="note wrap">retrieval ${esc(usd(x.breakdown.retrieval + x.breakdown.requests))}, reads ${esc(usd(x.breakdown.reads))}, download ${esc(usd(x.breakdown.egress))}${x.breakdown.restoredCopy ? `, retrieved copies ${esc(usd(x.breakdown.restoredCopy))}` : ''}</span>`,
    ]) : []
    // A retrieval is needed when no tier reads at once (archive classes: Glacier Flexible Retrieval, Deep Archive).
    const archived = j && j.restore.tiers.length > 0 && !j.restore.tiers.some((x) => x.tier === 'instant') ? Object.keys(j.restore.byClass) : []
    storage = `${costsUpdated(o.costs)}
${c?.repo.error ? '' : !j ? '<p class="note">No snapshot of this job in the estimate yet.</p>' : `<dl class="facts">
<dt>Stored</dt><dd><span data-job-bytes="${j.referenced.bytes}">${esc(bytes(j.referenced.bytes))}</span> in ${j.referenced.objects} packs${j.referenced.byClass.length ? ` (${j.referenced.byClass.map((x) => `${esc(x.storageClass)} ${esc(bytes(x.bytes))}`).join(', ')})` : ''}</dd>
<dt>Per month</dt><dd><strong data-job-usd="${esc(j.referenced.monthlyUSD)}">${esc(usd(j.referenced.monthlyUSD))}</strong>${repo && repo.jobs.length > 1 ? ' <span class="note">(packs shared with other jobs count for each)</span>' : ''}</dd>
<dt>Repository</dt><dd>${repo ? `${esc(bytes(repo.stored.bytes))} stored, ${esc(usd(repo.stored.monthlyUSD))}/month <span class="note">(${esc(repo.priceLabel)})</span>` : '–'}</dd>
<dt>Full restore</dt><dd>${esc(bytes(j.restore.bytes))} in ${j.restore.files} files of the latest snapshot, reading ${esc(bytes(j.restore.packs.bytes))} in ${j.restore.packs.objects} data packs</dd>
</dl>
${table(['Tier', 'Typical wait', 'Estimated cost', 'Of which'], tiers, { cls: 'tiers', empty: 'No retrieval tiers (no price for these classes).' })}
${archived.length ? `<p class="note">Data in ${esc(archived.join(', '))} must be retrieved before files can be downloaded (browsing the folders works at once): <code>coldstore restore &lt;snapshot&gt;:&lt;path&gt; --repo ${esc(def.repo ?? '')} --target DIR --request-retrieval --tier Bulk</code>, then again without <code>--request-retrieval</code> once it is readable.</p>` : ''}`}`
  }

  const snapRows = (o.snapshots ?? []).map((x) => [
    `<a href="${esc(x.href)}">${when(x.time)}</a>`,
    `<a href="${esc(x.href)}"><code>${esc(x.id.slice(0, 8))}</code></a>${x.kind === 'freeze' ? ' <span class="note">freeze</span>' : ''}`,
    x.files === null ? '–' : String(x.files),
    x.bytes === null ? '–' : esc(bytes(x.bytes)),
    x.kept === undefined ? '' : x.kept === null ? '<span class="note">removed by the next forget</span>' : `<span class="wrap">${esc(x.kept.join(', '))}</span>`,
    `<span class="wrap">${esc(x.tags.join(', '))}</span>`,
  ])
  const lastForget = o.runs.find((r) => r.retention !== null)
  const forgetText = !def.retention ? '' : !lastForget ? '<p class="note">Retention has not run yet (it runs after each successful backup).</p>'
    : lastForget.retention!.ok
      ? `<p>Last forget ${when(lastForget.finished ?? lastForget.started)} (<a href="${esc(runHref(lastForget.id))}">run</a>): kept ${lastForget.retention!.kept}, removed ${lastForget.retention!.removed} snapshot${lastForget.retention!.removed === 1 ? '' : 's'}${lastForget.retention!.removed_ids.length ? ` <span class="note">(${lastForget.retention!.removed_ids.map((id) => esc(id.slice(0, 8))).join(', ')})</span>` : ''}.</p>`
      : `<p class="error">Last forget ${when(lastForget.finished ?? lastForget.started)} failed: ${esc(lastForget.retention!.error)}</p>`
  const series = [addedBytesSeries(s.name, o.runs)]
  const history = o.runs.slice(0, 50).map((r) => runRow(r, false))
  return page({
    title: s.name, ctx,
    body: `<h1>${esc(s.name)} ${healthPill(s.health)}</h1>${o.notice ? `<p class="banner">${esc(o.notice)}</p>` : ''}
<div class="actions">${runNow(ctx, s)}${hasCheck ? runNow(ctx, s, 'check') : ''}${o.latestHref ? `<a href="${esc(o.latestHref)}">Browse the latest snapshot</a>` : ''}</div>
${status}
<h2>Run history</h2>
${table(['Started', 'Kind', 'Result', 'Duration', 'Files', 'Size', 'Added', 'Log'], history, { cls: 'runs', empty: 'No runs yet.' })}
<h2>Stored bytes over time</h2>
${renderChart({ title: `Bytes the runs of ${s.name} added to its repository (cumulative, before prune)`, series, storedNow: c?.job?.referenced.bytes ?? null })}
<h2>Storage, cost and restore</h2>
${storage}
<h2>Snapshots</h2>
${o.snapshots === null ? `<p class="note">${def.type === 'restic' ? 'A restic repository: its snapshots are listed by <code>restic snapshots</code>; runs and checks are in the history above.' : 'The repository cannot be browsed (see the daemon\'s log).'}</p>` : table(['Time', 'Snapshot', 'Files', 'Size', 'Retention', 'Tags'], snapRows, { cls: 'snapshots', empty: 'No snapshots yet.' })}
<h2>Retention</h2>
<p>Policy: ${esc(retentionText(def))}. Freezes are never forgotten.</p>
${forgetText}`,
  })
}

/** A run's page: summary and log (followed live while it runs). */
export function runPage(ctx: PageContext, o: { run: RunSummary; events: JournalEvent[]; snapshotHref: string | null }): string {
  const r = o.run
  const running = r.state === 'running'
  const lines = o.events.map((e) => esc(formatJournalEvent(e))).join('\n')
  const id = encodeURIComponent(r.id)
  return page({
    title: `${r.job} ${r.id}`, ctx,
    head: running ? '\n<noscript><meta http-equiv="refresh" content="5"></noscript>' : '',
    body: `<h1><a href="${esc(jobHref(r.job))}">${esc(r.job)}</a> · run <code>${esc(r.id)}</code></h1>
<dl class="facts">
<dt>Result</dt><dd>${resultPill(r.result, running)} <span id="live-status" class="note" data-state="${running ? 'running' : 'ended'}"${r.result ? ` data-result="${esc(r.result)}"` : ''}></span></dd>
<dt>Kind</dt><dd>${esc(r.kind)} <span class="note">(${esc(r.trigger)}${r.scheduled_for ? `, due ${when(r.scheduled_for)}` : ''})</span></dd>
<dt>Started</dt><dd>${when(r.started)}</dd>
<dt>Finished</dt><dd>${when(r.finished)}${r.duration_ms !== null ? ` <span class="note">after ${esc(duration(r.duration_ms))}${r.attempt > 1 ? `, ${r.attempt} attempts` : ''}</span>` : ''}</dd>
${r.error ? `<dt>Error</dt><dd class="error wrap">${esc(r.error)}</dd>` : ''}
${r.snapshot ? `<dt>Snapshot</dt><dd>${o.snapshotHref ? `<a href="${esc(o.snapshotHref)}"><code>${esc(r.snapshot.slice(0, 8))}</code></a>` : `<code>${esc(r.snapshot.slice(0, 8))}</code>`}</dd>` : ''}
${r.stats ? `<dt>Files</dt><dd>${r.stats.files} (${r.stats.new_files} new, ${r.stats.changed_files} changed), ${esc(bytes(r.stats.bytes))}; added ${esc(bytes(r.stats.added_bytes))}</dd>` : ''}
${r.retention ? `<dt>Retention</dt><dd>${r.retention.ok ? `kept ${r.retention.kept}, removed ${r.retention.removed}` : `<span class="error">${esc(r.retention.error)}</span>`}</dd>` : ''}
</dl>
<h2>Log</h2>
<div class="actions"><a href="/api/runs/${esc(id)}/log?download=1" download="${esc(`${r.job}-${r.id}.log`)}">Download the log</a><a href="/api/runs/${esc(id)}/log?format=jsonl&amp;download=1" download="${esc(`${r.job}-${r.id}.jsonl`)}">as JSON Lines</a><a href="/api/runs/${esc(id)}/log">view as text</a></div>
<pre class="log" id="log" data-run="${esc(r.id)}" data-live="${running ? '1' : '0'}">${lines}</pre>`,
  })
}

/** The login page. */
export function loginPage(o: { csrf: string; next: string; error?: string; basic: boolean; token: boolean; plainHttp: boolean; now: Date }): string {
  const ctx: PageContext = { csrf: o.csrf, user: null, now: o.now }
  const what = o.token && o.basic ? 'the access token (any user name, or none), or the user name and password' : o.token ? 'the access token' : 'the user name and password'
  return page({
    title: 'Log in', ctx, bare: true,
    body: `<h1>Log in</h1>
<form method="post" action="/-/login" class="login">
<p class="note">Enter ${what} from the daemon's <code>server:</code> configuration.</p>
${o.error ? `<p class="error" role="alert">${esc(o.error)}</p>` : ''}
<input type="hidden" name="csrf" value="${esc(o.csrf)}"><input type="hidden" name="next" value="${esc(o.next)}">
<label for="user">User name${o.basic ? '' : ' <span class="note">(not needed)</span>'}</label><input type="text" id="user" name="user" autocomplete="username" autocapitalize="none">
<label for="password">${o.token ? 'Token or password' : 'Password'}</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
${o.plainHttp ? '<p class="note">This connection is plain HTTP (server.allow_plain_http): the token crosses the network unencrypted.</p>' : ''}
</form>`,
  })
}

/** A short page with a message (errors, refusals). */
export function messagePage(ctx: PageContext, title: string, html: string): string {
  return page({ title, ctx, body: `<h1>${esc(title)}</h1><p>${html}</p><p><a href="/-/">Back to the jobs</a></p>` })
}
