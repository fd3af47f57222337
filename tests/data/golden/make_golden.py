#!/usr/bin/python3
"""Independent expected renderings for the data golden test.

Re-implements, in plain Python and without looking at c3po's C++:
  - reading the first 2 items of each real file in ../shared/data (json / csv modules),
  - the lm-evaluation-harness 0-shot requests of each task (templates of the task YAMLs at
    lm-evaluation-harness commit 4e7e0d47f, plus boolq, commonsense_qa, openbookqa,
    sciq and social_iqa from their YAMLs), _encode_pair's whitespace move and acc_norm lengths,
  - c3po's letter protocol "c3po-letter-v1" as specified in src/data/prompt.h.
Writes one JSON file per data file into this folder.
Run from the repository root: /usr/bin/python3 tests/data/golden/make_golden.py
"""
import csv
import json
import os
import re
import sys

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "shared", "data")
DATA = os.path.normpath(DATA)
OUT = os.path.dirname(os.path.abspath(__file__))
N = 2


# ---- lm-eval pieces ------------------------------------------------------------------------
def hs_preprocess(text):  # lm_eval/tasks/hellaswag/utils.py
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def encode_pair(context, continuation):  # lm_eval/api/model.py _encode_pair (string part)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    return context, continuation


def mc(ctx, choices, gold, acc_norm):
    reqs = [[ctx, " " + c] for c in choices]
    return {"requests": reqs, "encoded": [list(encode_pair(a, b)) for a, b in reqs], "gold": gold,
            "norm_lengths": [len(c) for c in choices], "acc_norm": acc_norm}


def options(choices):
    return "".join("%s. %s\n" % ("ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i], c) for i, c in enumerate(choices)) + "Answer:"


def letter(question, choices):
    return "Question: %s\n%s" % (question, options(choices))


def entry(item_id, letter_prompt, n_choices, gold, loglik):
    return {"id": item_id, "gold": gold, "letter_prompt": letter_prompt,
            "letters": [" " + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i] for i in range(n_choices)], "loglik": loglik}


def first_lines(path, n=N):
    with open(path, encoding="utf-8", newline="") as f:
        return [f.readline().rstrip("\n").rstrip("\r") for _ in range(n)]


# ---- per benchmark ---------------------------------------------------------------------------
def stem_choices(path, task):
    out = []
    for line in first_lines(path):
        d = json.loads(line)
        q = d["question"]["stem"]
        texts = [c["text"] for c in d["question"]["choices"]]
        labels = [c["label"] for c in d["question"]["choices"]]
        gold = labels.index(d["answerKey"].lstrip())
        if task in ("arc_challenge", "arc_easy"):
            ll = mc("Question: %s\nAnswer:" % q, texts, gold, True)
        elif task == "openbookqa":
            ll = mc(q, texts, gold, True)
        else:  # commonsense_qa
            ctx = "Question: %s\n%s" % (q.strip(), options(texts))
            ll = mc(ctx, ["A", "B", "C", "D", "E"], gold, False)
        out.append(entry(d["id"], letter(q, texts), len(texts), gold, ll))
    return out


def obqa_tsv(path):
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        rows = [r.rstrip("\n").split("\t") for r in f.readlines()[1:1 + N]]
    for r in rows:
        m = re.fullmatch(r"\(A\) (.*) \(B\) (.*) \(C\) (.*) \(D\) (.*)", r[2])
        texts = list(m.groups())
        gold = "ABCD".index(r[4].strip())
        out.append(entry(r[0], letter(r[1], texts), 4, gold, mc(r[1], texts, gold, True)))
    return out


def mmlu(path):
    subject = os.path.basename(path).rsplit("_", 1)[0]
    stem = os.path.splitext(os.path.basename(path))[0]
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[:N]
    out = []
    for i, r in enumerate(rows):
        desc = "The following are multiple choice questions (with answers) about %s.\n\n" % subject.replace("_", " ")
        ctx = desc + "%s\nA. %s\nB. %s\nC. %s\nD. %s\nAnswer:" % (r[0].strip(), r[1], r[2], r[3], r[4])
        gold = "ABCD".index(r[5])
        out.append(entry("%s-%d" % (stem, i), ctx, 4, gold, mc(ctx, ["A", "B", "C", "D"], gold, False)))
    return out


def hellaswag_text(path):
    lines = first_lines(path, 6 * N)
    stem = os.path.splitext(os.path.basename(path))[0]
    out = []
    for k in range(N):
        block = lines[6 * k:6 * k + 6]
        query = hs_preprocess(block[0])
        endings = [hs_preprocess(e) for e in block[2:6]]
        gold = int(block[1])
        out.append(entry("%s-%d" % (stem, k), letter(query, endings), 4, gold, mc(query, endings, gold, True)))
    return out


def piqa(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    labels = first_lines(path.replace(".jsonl", "-labels.lst"))
    out = []
    for i, line in enumerate(first_lines(path)):
        d = json.loads(line)
        gold = int(labels[i])
        sols = [d["sol1"], d["sol2"]]
        out.append(entry("%s-%d" % (stem, i), letter(d["goal"], sols), 2, gold,
                         mc("Question: %s\nAnswer:" % d["goal"], sols, gold, True)))
    return out


def social_iqa(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    labels = first_lines(path.replace(".jsonl", "-labels.lst"))
    out = []
    for i, line in enumerate(first_lines(path)):
        d = json.loads(line)
        gold = int(labels[i]) - 1
        ans = [d["answerA"], d["answerB"], d["answerC"]]
        out.append(entry("%s-%d" % (stem, i), letter(d["context"] + " " + d["question"], ans), 3, gold,
                         mc("Q: %s %s\nA:" % (d["context"], d["question"]), ans, gold, False)))
    return out


def partial(sentence, options_, gold, blank):
    target = sentence[blank + 1:].strip()
    ctxs = [sentence[:blank] + o for o in options_]
    reqs = [[c, " " + target] for c in ctxs]
    return {"requests": reqs, "encoded": [list(encode_pair(a, b)) for a, b in reqs], "gold": gold,
            "norm_lengths": [len(c) for c in ctxs], "acc_norm": False}


def winogrande(path):
    out = []
    for line in first_lines(path):
        d = json.loads(line)
        s = d["sentence"]
        opts = [d["option1"], d["option2"]]
        gold = {"1": 0, "2": 1}[d["answer"]]
        out.append(entry(d["qID"], letter(s, opts), 2, gold, partial(s, opts, gold, s.index("_"))))
    return out


def boolq(path):
    out = []
    for line in first_lines(path):
        d = json.loads(line)
        yes = d["label"] in (True, "true", 1)
        prompt = "%s\nQuestion: %s?\nA. yes\nB. no\nAnswer:" % (d["passage"], d["question"])
        ll = mc("%s\nQuestion: %s?\nAnswer:" % (d["passage"], d["question"]), ["no", "yes"], 1 if yes else 0, False)
        out.append(entry(str(d["idx"]), prompt, 2, 0 if yes else 1, ll))
    return out


def fnv1a64(s):
    h = 1469598103934665603
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * 1099511628211) % (1 << 64)
    return h


def sciq(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    with open(path, encoding="utf-8") as f:
        items = json.load(f)[:N]
    out = []
    for i, d in enumerate(items):
        pos = fnv1a64(d["question"]) % 4
        shown = [d["distractor1"], d["distractor2"], d["distractor3"]]
        shown.insert(pos, d["correct_answer"])
        ll = mc("%s\nQuestion: %s\nAnswer:" % (d["support"].lstrip(), d["question"]),
                [d["distractor1"], d["distractor2"], d["distractor3"], d["correct_answer"]], 3, True)
        out.append(entry("%s-%d" % (stem, i), letter(d["question"], shown), 4, pos, ll))
    return out


def one(v):
    return v[0] if isinstance(v, list) else v


def knowref_json(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    with open(path, encoding="utf-8") as f:
        items = json.load(f)[:N]
    out = []
    for i, d in enumerate(items):
        s = d["sentence_with_pronoun"]
        m = re.search(r"\[[^\]]*\]", s)
        sentence = s[:m.start()] + "_" + s[m.end():]
        opts = [one(d["candidate0"]), one(d["candidate1"])]
        gold = opts.index(one(d["correct_candidate"]))
        out.append(entry("%s-%d" % (stem, i), letter(sentence, opts), 2, gold, partial(sentence, opts, gold, m.start())))
    return out


def knowref_tsv(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    with open(path, encoding="utf-8", newline="") as f:
        rows = [r.rstrip("\n").split("\t") for r in f.readlines()[1:1 + 2 * N]]
    out = []
    for k in range(N):
        r0, r1 = rows[2 * k], rows[2 * k + 1]
        c0, c1 = r0[4], r0[5]
        w0 = (r0[1] + " " + r0[2]).split()
        w1 = (r1[1] + " " + r1[2]).split()
        # longest common word prefix and suffix, then give back words until the middles are the
        # two candidates (in either row order)
        p = 0
        while p < min(len(w0), len(w1)) and w0[p] == w1[p]:
            p += 1
        sfx = 0
        while sfx < min(len(w0), len(w1)) - p and w0[-1 - sfx] == w1[-1 - sfx]:
            sfx += 1
        found = None
        for pp in range(p, -1, -1):
            for ss in range(sfx, -1, -1):
                m0 = " ".join(w0[pp:len(w0) - ss])
                m1 = " ".join(w1[pp:len(w1) - ss])
                if (m0, m1) in ((c0, c1), (c1, c0)):
                    found = (pp, ss, m0 == c0)
                    break
            if found:
                break
        pp, ss, row0_is_c0 = found
        prefix = " ".join(w0[:pp])
        suffix = " ".join(w0[len(w0) - ss:]) if ss else ""
        sentence = (prefix + " " if prefix else "") + "_" + (" " + suffix if suffix else "")
        row0_correct = r0[3] == "1"
        gold = 0 if row0_correct == row0_is_c0 else 1
        blank = len(prefix) + (1 if prefix else 0)
        out.append(entry("%s-%s" % (stem, r0[0]), letter(sentence, [c0, c1]), 2, gold,
                         partial(sentence, [c0, c1], gold, blank)))
    return out


# ---- few-shot contexts (lm-eval fewshot_context + sampler.get_context) -----------------------
def shot_text(task, path, index):
    """doc_to_text + target_delimiter + target text of one solved example."""
    if task == "mmlu":
        with open(path, encoding="utf-8", newline="") as f:
            r = list(csv.reader(f))[index]
        return "%s\nA. %s\nB. %s\nC. %s\nD. %s\nAnswer:" % (r[0].strip(), r[1], r[2], r[3], r[4]) + " " + r[5]
    with open(path, encoding="utf-8") as f:
        d = json.loads(f.readlines()[index])
    if task == "winogrande":
        s = d["sentence"]
        i = s.index("_")
        opt = d["option" + d["answer"]]
        return s[:i] + opt + " " + s[i + 1:].strip()
    if task == "arc_easy":
        texts = [c["text"] for c in d["question"]["choices"]]
        labels = [c["label"] for c in d["question"]["choices"]]
        return "Question: %s\nAnswer:" % d["question"]["stem"] + " " + texts[labels.index(d["answerKey"])]
    raise ValueError(task)


def fewshot(out_path):
    cases = [
        ("mmlu", "mmlu/test/abstract_algebra_test.csv", 0, "mmlu/dev/abstract_algebra_dev.csv", [0, 1, 2, 3, 4]),
        ("mmlu", "mmlu/test/abstract_algebra_test.csv", 1, "mmlu/dev/abstract_algebra_dev.csv", [0, 1, 2, 3, 4]),
        ("winogrande", "winogrande/dev.jsonl", 0, "winogrande/train_xs.jsonl", [0, 1]),
        ("arc_easy", "arc/ARC-Easy/ARC-Easy-Test.jsonl", 0, "arc/ARC-Easy/ARC-Easy-Train.jsonl", [0, 1, 2]),
    ]
    entries = []
    for task, rel, index, shot_rel, shots in cases:
        prefix = "".join(shot_text(task, os.path.join(DATA, shot_rel), k) + "\n\n" for k in shots)
        if task == "mmlu":
            base = mmlu(os.path.join(DATA, rel))[index]["loglik"]
            desc_end = base["requests"][0][0].index("\n\n") + 2
            reqs = [[c[:desc_end] + prefix + c[desc_end:], k] for c, k in base["requests"]]
        elif task == "winogrande":
            base = winogrande(os.path.join(DATA, rel))[index]["loglik"]
            reqs = [[prefix + c, k] for c, k in base["requests"]]
        else:
            base = stem_choices(os.path.join(DATA, rel), task)[index]["loglik"]
            reqs = [[prefix + c, k] for c, k in base["requests"]]
        entries.append({"task": task, "file": rel, "index": index, "shot_file": shot_rel, "shots": shots,
                        "requests": reqs})
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(entries, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    jobs = []
    for s in ("Challenge", "Easy"):
        for part in ("Train", "Dev", "Test"):
            jobs.append(("arc_" + s.lower(), "arc/ARC-%s/ARC-%s-%s.jsonl" % (s, s, part),
                         lambda p, t="arc_" + s.lower(): stem_choices(p, t)))
    for f in ("train_rand_split.jsonl", "dev_rand_split.jsonl"):
        jobs.append(("commonsense_qa", "commonsenseqa/" + f, lambda p: stem_choices(p, "commonsense_qa")))
    for f in ("train", "dev", "test"):
        jobs.append(("openbookqa", "openbookqa-jsonl/%s.jsonl" % f, lambda p: stem_choices(p, "openbookqa")))
        jobs.append(("openbookqa", "openbookqa/%s.tsv" % f, obqa_tsv))
    for split in ("test", "val", "dev"):
        subjects = sorted(os.listdir(os.path.join(DATA, "mmlu", split)))
        if split != "test":
            subjects = subjects[:2]
        for f in subjects:
            jobs.append(("mmlu", "mmlu/%s/%s" % (split, f), mmlu))
    jobs.append(("hellaswag", "hellaswag/hellaswag_val_full.txt", hellaswag_text))
    for f in ("valid", "train"):
        jobs.append(("piqa", "piqa/%s.jsonl" % f, piqa))
    for f in ("dev", "train"):
        jobs.append(("social_iqa", "socialiqa/%s.jsonl" % f, social_iqa))
    for f in ("dev", "train_xs", "train_s", "train_m", "train_l", "train_debiased"):
        jobs.append(("winogrande", "winogrande/%s.jsonl" % f, winogrande))
    jobs.append(("boolq", "boolq/val.jsonl", boolq))
    for f in ("train", "valid", "test"):
        jobs.append(("sciq", "sciq/%s.json" % f, sciq))
    jobs.append(("knowref", "knowref/knowref_test.json", knowref_json))
    jobs.append(("knowref", "knowref/data/val.json", knowref_json))
    for f in ("train", "dev"):
        jobs.append(("knowref", "knowref/data/%s.tsv" % f, knowref_tsv))

    fewshot(os.path.join(OUT, "fewshot.golden.json"))

    manifest = []
    for task, rel, fn in jobs:
        items = fn(os.path.join(DATA, rel))
        name = rel.replace("/", "__") + ".golden.json"
        with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
            json.dump({"task": task, "file": rel, "items": items}, f, ensure_ascii=False, indent=1)
            f.write("\n")
        manifest.append(name)
    with open(os.path.join(OUT, "MANIFEST"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    print("wrote %d golden files" % len(manifest), file=sys.stderr)


if __name__ == "__main__":
    main()
