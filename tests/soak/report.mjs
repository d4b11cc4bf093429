// The soak's one table: deliveries per channel and publisher (expected, received, lost, duplicated,
// reordered), what subscribers were told, the traffic that ran, bounds, footprint and exits, then the
// verdict. Plain text (Markdown table rows), so that RESULTS.md can quote it as printed.
//
// Threads: none; writes to stdout once at the end of the run.

const line = (cells) => `| ${cells.join(' | ')} |`;

export function printReport(r) {
  const out = [];
  const t = r.verdict.totals;
  out.push(`## streamd soak: ${r.smoke ? 'smoke (60 s)' : `${r.minutes} min`}, ran ${(r.elapsedMs / 1000).toFixed(0)} s, ` +
    `${r.plan.clients} clients (peak ${r.stats.peakClients}), ${r.channels.length} channels`);
  out.push('');
  out.push(line(['channel', 'publisher', 'published ok/failed/unknown', 'windows', 'expected', 'received', 'lost', 'dup', 'reordered']));
  out.push(line(Array(9).fill('---')));
  for (const row of r.verdict.rows) {
    const list = r.ledger.pubs.get(`${row.channel}\n${row.publisher}`) || [];
    const c = { ok: 0, failed: 0, unknown: 0, pending: 0 };
    for (let i = 1; i < list.length; i++) c[list[i].status]++;
    out.push(line([row.channel, row.publisher, `${c.ok}/${c.failed}/${c.unknown + c.pending}`, row.windows, row.expected,
      row.received, row.lost, row.duplicated, row.reordered]));
  }
  out.push(line(['**all**', '', `${r.ledger.counts.ok}/${r.ledger.counts.failed}/${r.ledger.counts.unknown}`, t.windows, t.expected,
    t.received, `**${t.lost}**`, `**${t.duplicated}**`, `**${t.reordered}**`]));
  out.push('');
  const told = r.ledger.told;
  const s = r.stats;
  out.push(line(['check', 'value', 'bound', 'ok']));
  out.push(line(Array(4).fill('---')));
  out.push(line(['told: recovered:false (window re-baselined)', told.recovered_false, 'counted, not a failure', '-']));
  out.push(line(['told: unsubscribe 2500 / disconnect 3010', `${told.unsub_2500} / ${told.disconnect_3010}`, 'counted, not a failure', '-']));
  out.push(line(['connection attempts / refused (non-200)', `${s.connects} / ${s.refused}`, '-', '-']));
  out.push(line(['kills', Object.entries(s.kills).map(([k, v]) => `${k} ${v}`).join(', '), '-', '-']));
  out.push(line(['API disconnects', s.apiDisconnects, '-', '-']));
  out.push(line(['emulation POSTs (routed via the other node)', `${s.posts} (${s.routedPosts})`, '-', '-']));
  out.push(line(['emulation POSTs not 204', JSON.stringify(s.postStatus), '-', '-']));
  out.push(line(['subscribe not answered (error code, or none: connection ended or 10 s)', JSON.stringify(s.subscribeFailures), '-', '-']));
  out.push(line(['disconnect pushes (code: n)', JSON.stringify(s.disconnectPushes), '-', '-']));
  out.push(line(['unparsable frames', s.badFrames, '0', s.badFrames === 0 ? 'yes' : 'no']));
  for (const b of r.bounds) out.push(line([b.what, b.value, b.bound, b.ok ? 'yes' : '**no**']));
  for (const f of r.footprints) {
    const pct = (a, b) => `${(((a - b) / b) * 100).toFixed(1)} %`;
    out.push(line([`RSS ${f.node}`, `${f.now.rssKiB} KiB (baseline ${f.baseline.rssKiB}, ${pct(f.now.rssKiB, f.baseline.rssKiB)})`,
      f.asan ? 'not judged under ASan' : '+5 %', f.ok ? 'yes' : '**no**']));
    out.push(line([`open fds ${f.node}`, `${f.now.fds} (baseline ${f.baseline.fds})`, '+5 %', f.ok ? 'yes' : '**no**']));
    const kib = (b) => (b < 0 ? '?' : `${Math.round(b / 1024)} KiB`);
    if (f.now.heap && f.baseline.heap) {
      out.push(line([`heap in use / kept free ${f.node}`, `${kib(f.now.heap.inUse)} / ${kib(f.now.heap.free)} ` +
        `(baseline ${kib(f.baseline.heap.inUse)} / ${kib(f.baseline.heap.free)})`, 'shown, not judged', '-']));
    }
  }
  for (const e of r.exits) {
    out.push(line([`exit of ${e.node}`, `code ${e.code}${e.signal ? ' ' + e.signal : ''}${e.timedOut ? ' (timed out)' : ''}` +
      `${e.sanitizer ? ', sanitizer report' : ''}`, 'code 0, no report', e.ok ? 'yes' : '**no**']));
  }
  out.push('');
  if (r.verdict.examples.length) out.push('First problems: ' + r.verdict.examples.join('; '));
  out.push(r.failures.length ? `**FAIL**: ${r.failures.join('; ')}` : '**PASS**: nothing lost, duplicated or reordered; nothing crashed; nothing grew.');
  process.stdout.write(out.join('\n') + '\n');
}
