"""Self-checks of the reference models; prints max differences and fails loudly if one is too big.

    /usr/bin/python3 tests/reference/check_reference.py [--data tests/model/data]

1. Overriding with the model's own router distribution (hard: all MoE layers; soft: each layer's own
   top-k set with its own probabilities) reproduces the base logits.
2. KV-cached decoding (one token at a time, and a prefix chunk plus the rest) equals a full forward.
3. grad_omega of the hard override agrees with central finite differences (fp64).
4. expected.safetensors equals a fresh recomputation (the file was written and reads back right).
5. The hand-written GPT-2 pre-tokenizer equals the GPT-2 regex (ASCII classes) on the training text.
"""

import argparse
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from byte_bpe import pre_tokenize  # noqa: E402
from make_expected import MODEL_TYPES, PROMPTS, letter_loss, load_tokenizer, make_case  # noqa: E402
from make_tiny_models import TRAINING_TEXT  # noqa: E402
from moe_reference import KVCache, MoEModel, read_safetensors  # noqa: E402

FAILURES = []


def report(name, value, limit):
    ok = value <= limit
    print(f"  {name:<48} {value:.3e}  (limit {limit:.0e}) {'ok' if ok else 'FAIL'}")
    if not ok:
        FAILURES.append(name)


def stored_diff(stored, fresh):
    if stored.shape != fresh.shape or stored.dtype != fresh.dtype:
        return float("inf")
    return float((stored.double() - fresh.double()).abs().max()) if fresh.numel() else 0.0


def check_model(folder, model_type):
    model = MoEModel(folder)
    tok = load_tokenizer(folder)
    spec = model.spec
    n_moe = len(spec.moe_layer_ids)
    print(f"{model_type}:")
    worst = {}

    def note(key, v):
        worst[key] = max(worst.get(key, 0.0), float(v))

    for ci, text in enumerate(PROMPTS):
        ids = torch.tensor(tok.encode(text), dtype=torch.int64)
        base = model.forward(ids)
        # 1. own-distribution overrides
        own = {l: base.router_probs[l][-1] for l in range(n_moe)}
        hard = model.forward(ids, overrides=own)
        note("hard override with own p == base (fp32)", (hard.logits - base.logits).abs().max())
        soft = model.forward(ids, soft={l: (base.topk_idx[l][-1], base.router_probs[l][-1]) for l in range(n_moe)})
        note("soft override, own top-k set == base (fp32)", (soft.logits - base.logits).abs().max())
        b64 = model.forward(ids, dtype=torch.float64)
        h64 = model.forward(ids, dtype=torch.float64, overrides={l: b64.router_probs[l][-1] for l in range(n_moe)})
        note("hard override with own p == base (fp64)", (h64.logits - b64.logits).abs().max())
        # 2. KV cache
        cache = KVCache(spec.num_layers)
        step_logits = [model.forward(ids[t:t + 1], cache=cache).logits for t in range(len(ids))]
        note("KV cache, token by token == full (fp32)", (torch.cat(step_logits) - base.logits).abs().max())
        cache = KVCache(spec.num_layers)
        cut = len(ids) // 2
        first = model.forward(ids[:cut], cache=cache)
        rest = model.forward(ids[cut:], cache=cache)
        note("KV cache, two chunks == full (fp32)",
             (torch.cat((first.logits, rest.logits)) - base.logits).abs().max())
        note("KV cache, two chunks router probs == full",
             max((torch.cat((a, b)) - c).abs().max() for a, b, c in
                 zip(first.router_probs, rest.router_probs, base.router_probs)))
        # 3. finite differences of the letter loss w.r.t. omega, hard override, fp64
        case = make_case(model, ids, seed=7000 + 100 * MODEL_TYPES.index(model_type) + ci)
        layers = case["override_layers"].tolist()
        omega = case["override_omega"].double()
        eps = 1e-6

        def loss_at(om):
            r = model.forward(ids, dtype=torch.float64, overrides={l: om[j] for j, l in enumerate(layers)})
            return float(letter_loss(r.logits[-1], case["letters"], int(case["gold"])))

        fd = torch.zeros_like(omega)
        for j in range(len(layers)):
            for e in torch.topk(omega[j], spec.top_k).indices.tolist():   # unselected: gradient 0
                up, dn = omega.clone(), omega.clone()
                up[j, e] += eps
                dn[j, e] -= eps
                fd[j, e] = (loss_at(up) - loss_at(dn)) / (2 * eps)
        note("grad_omega vs central differences (fp64)", (fd - case["grad_omega"].double()).abs().max())
        # 4. the stored file
        stored = read_safetensors(os.path.join(folder, "expected.safetensors"))
        note("expected.safetensors == recomputation", max(stored_diff(stored[f"case{ci}.{k}"], v)
                                                          for k, v in case.items()))

    limits = {
        "hard override with own p == base (fp32)": 1e-5,
        "soft override, own top-k set == base (fp32)": 1e-5,
        "hard override with own p == base (fp64)": 1e-12,
        "KV cache, token by token == full (fp32)": 1e-4,
        "KV cache, two chunks == full (fp32)": 1e-4,
        "KV cache, two chunks router probs == full": 1e-5,
        "grad_omega vs central differences (fp64)": 1e-5,
        "expected.safetensors == recomputation": 0.0,
    }
    for k, v in worst.items():
        report(k, v, limits[k])


def check_pre_tokenizer():
    ascii_gpt2 = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")
    text = TRAINING_TEXT + "".join(PROMPTS) + "  it's 42,000 x\t\n  y'all  \n"
    mismatch = float(ascii_gpt2.findall(text) != pre_tokenize(text))
    print("tokenizer:")
    report("pre_tokenize != GPT-2 regex (ASCII) on training text", mismatch, 0.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data", default=os.path.join(here, "..", "model", "data"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    check_pre_tokenizer()
    for model_type in MODEL_TYPES:
        check_model(os.path.join(args.data, model_type), model_type)
    if FAILURES:
        print("FAILED:", ", ".join(FAILURES))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
