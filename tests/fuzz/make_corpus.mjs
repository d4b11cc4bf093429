// Writes the large seeds of the codec fuzzer into tests/fuzz/corpus/TARGET (run once; the output is committed):
// deep nesting (15,000 protobuf FilterNodes, the depth limit's boundary, a deep message behind a map
// entry, 5,000 JSON levels, embedded JSON past JSON_SPAN_MAX_DEPTH) and inputs of the real limits' size
// (64 KiB: a maximal publish, a field flood, repeated sub-messages, full /emulation bodies). The first
// byte selects the harness target (fuzz_codecs.c): 0 json_cmds, 1 pb_cmds, 2 json_emulation,
// 3 pb_emulation; a seed named TARGET_NAME goes to corpus/TARGET/NAME (run.sh fuzzes each target's directory).
// Usage: node tests/fuzz/make_corpus.mjs
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { delimited, emulationBody, fBytes, fVarint, msg, varint } from '../integration/lib/pb.js';

const MAX_INPUT = 65536; // run.sh's -max_len
const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'corpus');

/** LEVELS FilterNodes nested through `nodes` (field 6), built outside-in from precomputed lengths. */
function deepFilter(levels) {
  const inner = [0];
  for (let k = 1; k < levels; k++) inner.push(1 + varint(inner[k - 1]).length + inner[k - 1]);
  const parts = [];
  for (let k = levels - 1; k > 0; k--) parts.push(Buffer.from([0x32]), varint(inner[k - 1]));
  return Buffer.concat(parts);
}

const subscribeTf = (id, levels) => msg(fVarint(1, id), fBytes(5, msg(fBytes(1, 'x'), fBytes(13, deepFilter(levels)))));
const publish = (id, data) => msg(fVarint(1, id), fBytes(7, msg(fBytes(1, 'news'), fBytes(2, data))));
const json = (s) => Buffer.from(s);

const seeds = {
  pb_cmds_deep_15000: [1, delimited(subscribeTf(1, 15000))],
  pb_cmds_deep_boundary: [1, delimited(subscribeTf(1, 31)), delimited(subscribeTf(2, 32))],
  // ConnectRequest.subs (map<string, SubscribeRequest>, field 3): the depth runs through a map entry
  pb_cmds_deep_map: [1, delimited(msg(fVarint(1, 1), fBytes(4, fBytes(3, msg(fBytes(1, 'k'),
    fBytes(2, msg(fBytes(1, 'x'), fBytes(13, deepFilter(14000)))))))))],
  pb_cmds_max_publish: [1, delimited(publish(1, Buffer.alloc(65500, 0x61)))],
  pb_cmds_field_flood: [1, delimited(Buffer.alloc(2 * 16385, Buffer.from([0x08, 0x00])))],
  pb_cmds_repeated_subscribe: [1, delimited(Buffer.concat(Array(10000).fill(fBytes(5, fBytes(13, fBytes(6, ''))))))],
  pb_cmds_many_small: [1, Buffer.concat(Array(8000).fill(delimited(msg(fVarint(1, 3), fBytes(11, '')))))],
  pb_emulation_deep: [3, emulationBody('n', 's', delimited(subscribeTf(1, 15000)))],
  pb_emulation_max: [3, emulationBody('n', 's', Buffer.concat(Array(3250).fill(delimited(publish(2, '{"a":1}')))))],
  json_cmds_deep_tf: [0, json(`{"id":1,"subscribe":{"channel":"x","tf":${'{"nodes":['.repeat(5000)}{}${']}'.repeat(5000)}}}\n`)],
  json_cmds_deep_data: [0, json(`{"id":1,"publish":{"channel":"x","data":${'['.repeat(512)}${']'.repeat(512)}}}\n` +
    `{"id":2,"publish":{"channel":"x","data":${'['.repeat(30000)}${']'.repeat(30000)}}}\n`)],
  json_cmds_max_publish: [0, json(`{"id":1,"publish":{"channel":"news","data":"${'a'.repeat(65450)}"}}\n`)],
  json_emulation_deep: [2, json(JSON.stringify({ session: 's', node: 'n',
    data: `{"id":1,"subscribe":{"channel":"x","tf":${'{"nodes":['.repeat(2500)}{}${']}'.repeat(2500)}}}` }))],
  json_emulation_max: [2, json(JSON.stringify({ session: 's', node: 'n',
    data: Array(980).fill('{"id":2,"publish":{"channel":"news","data":{"a":1}}}').join('\n') }))],
};

for (const [name, [target, ...parts]] of Object.entries(seeds)) {
  const bytes = Buffer.concat([Buffer.from([target]), ...parts]);
  if (bytes.length > MAX_INPUT) throw new Error(`${name}: ${bytes.length} bytes, over ${MAX_INPUT}`);
  const target_name = ['json_cmds', 'pb_cmds', 'json_emulation', 'pb_emulation'][target];
  fs.mkdirSync(path.join(dir, target_name), { recursive: true });
  fs.writeFileSync(path.join(dir, target_name, name.slice(target_name.length + 1)), bytes);
  console.log(`${name}: ${bytes.length} bytes`);
}
