// What the soak measures of a running streamd node from outside: resident memory and open file
// descriptors (Linux /proc), its C heap in use and kept free (its /metrics), whether it runs under
// AddressSanitizer, and the server API's view of
// sessions, channels, presence and history. Each returns plain numbers for the report table.
//
// Threads: none of its own; every function reads /proc or makes one API call per node and channel.
import { readFileSync, readdirSync } from 'node:fs';
import { api, request } from '../integration/lib/http.js';
import { API_KEY } from '../integration/lib/server.js';

/** { rssKiB, fds } of process PID. */
export function footprint(pid) {
  let status;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return { rssKiB: -1, fds: -1, gone: true };
  }
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return { rssKiB: m ? Number(m[1]) : 0, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** True when PID has the AddressSanitizer runtime mapped (its quarantine keeps freed memory resident). */
export function underAsan(pid) {
  try {
    const maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
    return /libasan|libclang_rt\.asan/.test(maps) || /__asan/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return false;
  }
}

/** The `info` answer's node entry of the node at BASE: { num_clients, num_users, num_channels, num_subs }. */
export async function nodeInfo(base) {
  const r = await api(base, 'info', {}, { key: API_KEY });
  const nodes = (r.json && r.json.result && r.json.result.nodes) || [];
  return nodes;
}

/** Number of channels with subscribers anywhere in the cluster (`channels`). */
export async function channelCount(base) {
  const r = await api(base, 'channels', {}, { key: API_KEY }).catch(() => ({}));
  return Object.keys((r.json && r.json.result && r.json.result.channels) || {}).length;
}

/** presence_stats of CHANNEL: { num_clients, num_users }. */
export async function presenceStats(base, channel) {
  const r = await api(base, 'presence_stats', { channel }, { key: API_KEY }).catch(() => ({}));
  return (r.json && r.json.result) || { num_clients: -1, num_users: -1 };
}

/** The number of publications the history of CHANNEL holds (limit -1: all, capped by the server at 300). */
export async function historyLength(base, channel) {
  const r = await api(base, 'history', { channel, limit: -1 }, { key: API_KEY }).catch(() => ({}));
  const res = r.json && r.json.result;
  return res ? (res.publications || []).length : -1;
}

/** The C heap of the node at BASE in bytes, from its /metrics: { inUse, free } (-1 each when unknown). */
export async function heap(base) {
  try {
    const res = await request(`${base}/metrics`);
    const gauge = (name) => {
      const m = new RegExp(`^streamd_${name} (\\d+)$`, 'm').exec(res.body);
      return m ? Number(m[1]) : -1;
    };
    return { inUse: gauge('heap_in_use_bytes'), free: gauge('heap_free_bytes') };
  } catch {
    return { inUse: -1, free: -1 };
  }
}
