#!/usr/bin/python3
"""Every item of every real data file rendered by make_golden.py's independent Python
re-implementation, one JSON line per item, for the full comparison in test_full_renderings.cpp:
  /usr/bin/python3 tests/data/golden/dump_all_renderings.py /tmp/renderings.jsonl
  C3PO_DATA_RENDERINGS=/tmp/renderings.jsonl <build>/tests/data/c3po_data_tests --gtest_filter=FullRenderings.*
(about 165k items; kept out of the default run because the Python side takes ~30 s.)
With --sample N before the output path, only N items per task, evenly spread over the task's
files and their lines (the stratified sample test_full_renderings.cpp runs in every test run)."""
import sys, json, os
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden as g
D = g.DATA
def nlines(p):
    with open(p, encoding="utf-8") as f: return sum(1 for _ in f)
def first_lines(path, n=None):
    with open(path, encoding="utf-8", newline="") as f:
        return [l.rstrip("\n").rstrip("\r") for l in f.readlines()[:n]]
g.first_lines = first_lines
jobs = []
for s in ("Challenge", "Easy"):
    for part in ("Train", "Dev", "Test"):
        jobs.append(("arc_" + s.lower(), "arc/ARC-%s/ARC-%s-%s.jsonl" % (s, s, part)))
jobs += [("commonsense_qa", "commonsenseqa/train_rand_split.jsonl"), ("commonsense_qa", "commonsenseqa/dev_rand_split.jsonl")]
for f in ("train", "dev", "test"):
    jobs += [("openbookqa", "openbookqa-jsonl/%s.jsonl" % f), ("openbookqa", "openbookqa/%s.tsv" % f)]
for split in ("test", "val", "dev"):
    for f in sorted(os.listdir(os.path.join(D, "mmlu", split))):
        jobs.append(("mmlu", "mmlu/%s/%s" % (split, f)))
jobs += [("hellaswag", "hellaswag/hellaswag_val_full.txt"), ("piqa", "piqa/valid.jsonl"), ("piqa", "piqa/train.jsonl"),
         ("social_iqa", "socialiqa/dev.jsonl"), ("social_iqa", "socialiqa/train.jsonl")]
for f in ("dev", "train_xs", "train_s", "train_m", "train_l", "train_debiased"):
    jobs.append(("winogrande", "winogrande/%s.jsonl" % f))
jobs += [("boolq", "boolq/val.jsonl")] + [("sciq", "sciq/%s.json" % f) for f in ("train", "valid", "test")]
jobs += [("knowref", "knowref/knowref_test.json"), ("knowref", "knowref/data/val.json"), ("knowref", "knowref/data/train.tsv"), ("knowref", "knowref/data/dev.tsv")]
args = sys.argv[1:]
sample = None
if args[0] == "--sample":
    sample = int(args[1])
    args = args[2:]
out = open(args[0], "w", encoding="utf-8")
by_task = {}
for task, rel in jobs:
    p = os.path.join(D, rel)
    if task in ("arc_challenge", "arc_easy", "commonsense_qa") or rel.endswith("openbookqa-jsonl/" + os.path.basename(rel)):
        items = g.stem_choices(p, task)
    elif rel.endswith(".tsv") and task == "openbookqa":
        import re
        items = []
        with open(p, encoding="utf-8", newline="") as f:
            rows = [r.rstrip("\n").split("\t") for r in f.readlines()[1:]]
        for r in rows:
            if any(r[2].count(m) > 1 for m in (" (B) ", " (C) ", " (D) ")):
                continue  # ambiguous row, skipped by c3po too
            m = re.fullmatch(r"\(A\) (.*) \(B\) (.*) \(C\) (.*) \(D\) (.*)", r[2])
            texts = list(m.groups()); gold = "ABCD".index(r[4].strip())
            items.append(g.entry(r[0], g.letter(r[1], texts), 4, gold, g.mc(r[1], texts, gold, True)))
    elif task == "mmlu": g.N = 10**9; items = g.mmlu(p)
    elif task == "hellaswag": g.N = nlines(p) // 6; items = g.hellaswag_text(p)
    elif task == "piqa": items = g.piqa(p)
    elif task == "social_iqa": items = g.social_iqa(p)
    elif task == "winogrande": items = g.winogrande(p)
    elif task == "boolq": items = g.boolq(p)
    elif task == "sciq": g.N = 10**9; items = g.sciq(p)
    elif rel.endswith(".json"): g.N = 10**9; items = g.knowref_json(p)
    else: g.N = (nlines(p) - 1) // 2; items = g.knowref_tsv(p)
    by_task.setdefault(task, []).extend((rel, it) for it in items)
for task, pairs in by_task.items():
    if sample is not None and len(pairs) > sample:
        pairs = [pairs[i * len(pairs) // sample] for i in range(sample)]
    for rel, it in pairs:
        out.write(json.dumps({"file": rel, "id": it["id"], "gold": it["gold"], "letter": it["letter_prompt"],
                              "req": it["loglik"]["requests"], "enc": it["loglik"]["encoded"], "lg": it["loglik"]["gold"],
                              "nl": it["loglik"]["norm_lengths"]}, ensure_ascii=False) + "\n")
