/**
 * The dashboard's stylesheet and its one small script, served as files (`/-/static/...`) so the pages'
 * Content-Security-Policy can forbid inline scripts and styles. No build step: plain CSS and ES2017.
 *
 * The script only (1) shows times in the browser's zone and (2) streams a running run's log over
 * Server-Sent Events from the JSON API into the page (as text, never markup). Everything else works
 * without it.
 */

export const DASHBOARD_CSS = `
:root{--bg:#f5f6f8;--fg:#1d2329;--muted:#57606a;--card:#fff;--line:#dfe3e8;--accent:#0b5cad}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}
header.top{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:.4em 1.2em;background:#22303c;color:#fff;padding:.6em 1em}
header.top a{color:#cfe3ff;text-decoration:none}
header.top .brand{font-weight:700;color:#fff;font-size:1.05em}
header.top nav{display:flex;gap:1.1em;align-items:center;flex-wrap:wrap}
main{padding:1em;max-width:72em;margin:0 auto}
h1{font-size:1.5em;margin:.2em 0 .4em;overflow-wrap:anywhere}
h2{font-size:1.15em;margin:1.5em 0 .5em}
h3{font-size:1em;margin:1em 0 .3em}
.summary{margin:.2em 0 1em}
.cards{list-style:none;padding:0;margin:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,21em),1fr));gap:.8em}
.card{background:var(--card);border:1px solid var(--line);border-left:6px solid #999;border-radius:6px;padding:.7em .9em}
.card.h-green{border-left-color:#2e7d32}.card.h-yellow{border-left-color:#e0a400}.card.h-red{border-left-color:#c62828}
.card h2{margin:0 0 .3em;font-size:1.15em;display:flex;gap:.5em;align-items:center;flex-wrap:wrap}
.card h2 a{text-decoration:none}
.pill{display:inline-block;padding:.05em .6em;border-radius:1em;font-size:.8em;font-weight:600;color:#fff;background:#6b7280;vertical-align:.1em}
.h-green.pill,.r-success{background:#2e7d32}.h-yellow.pill,.r-warning{background:#b78100}.h-red.pill,.r-failed{background:#c62828}
.r-interrupted{background:#8e24aa}.r-skipped{background:#6b7280}.r-running{background:#1565c0}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15em .9em;margin:.4em 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
ul.reasons{margin:.3em 0;padding-left:1.2em;color:#7a2e0e}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;background:var(--card);border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%}
th,td{padding:.38em .65em;text-align:left;border-bottom:1px solid #eef0f2;white-space:nowrap;vertical-align:top}
th{background:#f3f5f7;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td .wrap,.wrap{white-space:normal;overflow-wrap:anywhere}
pre.log{background:#0f1720;color:#d8e1ea;padding:.7em .8em;border-radius:6px;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere;font-size:.82em;line-height:1.4;max-height:70vh;margin:.4em 0}
button{font:inherit;padding:.45em 1.1em;border-radius:5px;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer}
button:disabled{background:#9aa5b1;border-color:#9aa5b1;cursor:default}
button.secondary{background:#fff;color:var(--accent)}
button.link{background:none;border:none;color:#cfe3ff;padding:0;font-size:1em}
form.inline{display:inline}
.actions{display:flex;gap:.6em;flex-wrap:wrap;align-items:center;margin:.6em 0}
.chart{margin:.4em 0}
.chart svg{width:100%;height:auto;max-width:46em;display:block;background:#fff;border:1px solid var(--line);border-radius:6px}
.chart figcaption{color:var(--muted);font-size:.85em}
.grid{stroke:#e6e9ed;stroke-width:1}.axis{font-size:11px;fill:#57606a}.line{fill:none;stroke-width:2}.dot{stroke:none}
.now{stroke:#888;stroke-width:1.5;stroke-dasharray:5 4}
.s0{stroke:#1565c0;fill:#1565c0;background:#1565c0}.s1{stroke:#2e7d32;fill:#2e7d32;background:#2e7d32}.s2{stroke:#c62828;fill:#c62828;background:#c62828}
.s3{stroke:#6a1b9a;fill:#6a1b9a;background:#6a1b9a}.s4{stroke:#ef6c00;fill:#ef6c00;background:#ef6c00}.s5{stroke:#00838f;fill:#00838f;background:#00838f}
.s6{stroke:#5d4037;fill:#5d4037;background:#5d4037}.s7{stroke:#455a64;fill:#455a64;background:#455a64}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:.2em 1em;padding:0;margin:.3em 0}
.sw{display:inline-block;width:.9em;height:.9em;border-radius:2px;margin-right:.35em;vertical-align:-.1em}
.sw.now{background:repeating-linear-gradient(90deg,#888 0 4px,transparent 4px 7px)}
.note{color:var(--muted)}.error{color:#b3261e}.ok{color:#2e7d32}
.banner{background:#fff3cd;border:1px solid #e8d18a;padding:.5em .8em;border-radius:6px;margin:.5em 0}
form.login{max-width:24em;background:#fff;padding:1em 1.2em;border:1px solid var(--line);border-radius:6px}
form.login label{display:block;margin:.7em 0 .2em;font-weight:600}
input[type=text],input[type=password]{width:100%;font:inherit;padding:.5em;border:1px solid #c9ced4;border-radius:4px}
form.login button{margin-top:1em;width:100%}
footer{color:var(--muted);font-size:.8em;padding:1.5em 1em;text-align:center}
@media (max-width:600px){
main{padding:.7em .5em}th,td{padding:.32em .45em}.hide-narrow{display:none}h1{font-size:1.3em}
header.top{padding:.5em .7em}dl.facts{grid-template-columns:1fr}dl.facts dt{margin-top:.3em}
}
`

export const DASHBOARD_JS = `'use strict';
(function () {
  function bytes(n) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0, v = n;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return i === 0 ? v + ' B' : v.toFixed(v < 10 ? 2 : 1) + ' ' + u[i];
  }
  // The same lines as the API's text log (engine formatJournalEvent).
  function line(e) {
    var t = String(e.t).replace('T', ' ').replace(/\\.\\d+Z$/, 'Z');
    switch (e.type) {
      case 'started': return t + '  ' + e.job + ': ' + e.kind + ' run ' + e.run + ' started (' + e.trigger + (e.scheduled_for ? ', due ' + e.scheduled_for : '') + '; pid ' + e.pid + ' on ' + e.host + ')';
      case 'phase': return e.phase === 'retry_wait' ? t + '  [retry] waiting until ' + e.until + ' for attempt ' + (e.attempt + 1) : t + '  [' + String(e.phase).replace('_', '-') + ']' + (e.attempt > 1 ? ' attempt ' + e.attempt : '');
      case 'progress': return t + '  [progress] ' + e.files + (e.total_files !== null ? '/' + e.total_files : '') + ' files, ' + bytes(e.bytes) + (e.total_bytes !== null ? ' of ' + bytes(e.total_bytes) : '');
      case 'log': return t + '  ' + (e.level === 'info' ? '' : String(e.level).toUpperCase() + ' ') + '[' + e.source + '] ' + e.message;
      case 'attempt_failed': return t + '  attempt ' + e.attempt + ' failed: ' + e.error + (e.retry_at ? ' (retry at ' + e.retry_at + ')' : '');
      case 'finished': return t + '  ' + e.job + ': run ' + e.run + ' ' + e.result + ' after ' + (e.duration_ms / 1000).toFixed(1) + ' s' + (e.snapshot ? ', snapshot ' + String(e.snapshot).slice(0, 8) : '') + (e.stats ? ': ' + e.stats.files + ' files, ' + bytes(e.stats.bytes) + ', added ' + bytes(e.stats.added_bytes) : '') + (e.error ? ' (' + e.error + ')' : '');
      case 'skipped': return t + '  ' + e.job + ': ' + e.kind + ' run ' + e.run + ' skipped: already running';
      default: return t + '  ' + e.type;
    }
  }
  function follow(log) {
    var status = document.getElementById('live-status');
    var es = new EventSource('/api/runs/' + encodeURIComponent(log.getAttribute('data-run')) + '/log?follow=1');
    var first = true;
    if (status) { status.textContent = 'live: following the run'; status.setAttribute('data-state', 'live'); }
    es.addEventListener('journal', function (m) {
      var e = JSON.parse(m.data);
      if (first) { log.textContent = ''; first = false; }
      log.appendChild(document.createTextNode(line(e) + '\\n'));
      log.scrollTop = log.scrollHeight;
      if ((e.type === 'finished' || e.type === 'skipped') && status) {
        status.textContent = 'finished: ' + (e.result || 'skipped') + ' (reload for the summary)';
        status.setAttribute('data-state', 'ended');
        status.setAttribute('data-result', e.result || 'skipped');
      }
    });
    es.addEventListener('end', function () { es.close(); });
    es.onerror = function () {
      if (es.readyState === 2 && status && status.getAttribute('data-state') !== 'ended') status.textContent = 'the live log was disconnected: reload the page';
    };
  }
  document.addEventListener('DOMContentLoaded', function () {
    var times = document.querySelectorAll('time[datetime]');
    for (var i = 0; i < times.length; i++) {
      var d = new Date(times[i].getAttribute('datetime'));
      if (isNaN(d.getTime())) continue;
      times[i].title = times[i].textContent;
      times[i].textContent = d.toLocaleString([], { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
    }
    var log = document.getElementById('log');
    if (log && log.getAttribute('data-live') === '1' && window.EventSource) follow(log);
  });
})();
`
