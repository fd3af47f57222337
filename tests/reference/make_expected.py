"""Write tests/model/data/<model_type>/expected.safetensors from the reference forward.

    /usr/bin/python3 tests/reference/make_expected.py [--data tests/model/data]

Per case i (three fixed prompts; F32 / I64 only):
  case{i}.input_ids [T] I64          token ids of the prompt (our tokenizer.json)
  case{i}.logits_f32 [T, V]          fp32 model
  case{i}.logits_bf16 [T, V]         weights cast to bf16, bf16 compute; norms/RoPE/softmaxes in fp32
  case{i}.router_probs [Lm, T, E]    router softmax over all experts, every MoE layer and position
  case{i}.topk_idx [Lm, k] I64       experts chosen at the last position (torch.topk order)
  case{i}.topk_weight [Lm, k]        their final mixing weights (after renormalisation if any)
  case{i}.hidden_states [L+1, T, H]  embeddings, then each decoder layer's output (before final norm)
  case{i}.override_layers [m] I64    MoE-layer indices overridden (the last two)
  case{i}.override_omega [m, E]      Dirichlet-random distributions used there
  case{i}.logits_override [V]        last-position logits with the hard override (fp32)
  case{i}.soft_set [m, s] I64        s = 5 experts per overridden layer
  case{i}.logits_soft [V]            last-position logits with the soft override: experts soft_set[j]
                                     mixed with weights override_omega[j, soft_set[j]] (renormalised
                                     over the set iff the architecture renormalises)
  case{i}.letters [4] I64, case{i}.gold [] I64
  case{i}.loss_override []           cross-entropy of gold over softmax(logits[last, letters]) with
                                     the hard override (fp64 model, stored as F32)
  case{i}.grad_omega [m, E]          d loss_override / d override_omega (fp64 autograd)
  case{i}.greedy_ids [n] I64         greedy continuation of the prompt (fp32, KV-cached), up to 8
                                     tokens, stopping after eos; cut before any step whose top-2
                                     logit margin is < 1e-3 or whose router top-k gap is < 1e-4
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from byte_bpe import ByteBPE  # noqa: E402
from make_tiny_models import EXPECTED_PROMPTS as PROMPTS  # noqa: E402
from moe_reference import KVCache, MoEModel, write_safetensors  # noqa: E402

MODEL_TYPES = ["olmoe", "qwen2_moe", "qwen3_moe", "mixtral", "deepseek"]
SOFT_SET_SIZE = 5
GREEDY_TOKENS = 8
OVERRIDE_LAYERS = 2


def load_tokenizer(folder):
    with open(os.path.join(folder, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in tj["model"]["merges"]]
    tok = ByteBPE(merges)
    if tok.vocab != tj["model"]["vocab"]:
        raise ValueError("tokenizer.json vocabulary does not match its merges")
    return tok


TOKENIZER_TEXTS = [
    "The river runs past the old mill.",
    "Question: Which season comes after winter?\nA. summer\nB. spring\nAnswer:",
    "  leading spaces, trailing spaces   ",
    "it's they'll we've I'm you'd DON'T",
    "numbers 12345 and 3.14, symbols #@! ...",
    "tabs\tand\n\nnewlines \n  mixed",
    "caf\u00e9 na\u00efve \u00fcber \u65e5\u672c\u8a9e \U0001F600",
    "before<|endoftext|>after <|endoftext|>",
    "",
]


def dirichlet_with_clear_topk(rng, num_experts, k):
    """A Dirichlet(0.7) sample in fp32 whose k-th and (k+1)-th largest entries are well apart."""
    while True:
        w = rng.dirichlet(np.full(num_experts, 0.7)).astype(np.float32)
        s = np.sort(w)[::-1]
        if s[k - 1] - s[k] > 1e-3:
            return torch.from_numpy(w)


def min_router_gap(result, k):
    gaps = [(s[:, k - 1] - s[:, k]).min().item()
            for s in (torch.sort(p, dim=-1, descending=True).values for p in result.router_probs)]
    return min(gaps) if gaps else float("inf")


def greedy(model, ids):
    """Greedy tokens after ids, cut before the first step an engine could reasonably resolve
    differently (near-tied logits or near-tied router choices)."""
    eos = model.config.get("eos_token_id")
    eos = set(eos if isinstance(eos, list) else [eos])
    cache = KVCache(model.spec.num_layers)
    res = model.forward(ids, cache=cache)
    out = []
    while len(out) < GREEDY_TOKENS:
        top2 = torch.topk(res.logits[-1], 2).values
        if float(top2[0] - top2[1]) < 1e-3:
            break
        nxt = int(torch.argmax(res.logits[-1]))
        step = model.forward(torch.tensor([nxt]), cache=cache)
        if min_router_gap(step, model.spec.top_k) < 1e-4:
            break
        out.append(nxt)
        if nxt in eos:
            break
        res = step
    return torch.tensor(out, dtype=torch.int64)


def letter_loss(logits_last, letters, gold):
    return -torch.log_softmax(logits_last[letters], dim=-1)[gold]


def make_case(model, ids, seed):
    spec = model.spec
    rng = np.random.default_rng(seed)
    out = {"input_ids": ids}
    base = model.forward(ids)
    out["logits_f32"] = base.logits.float()
    out["logits_bf16"] = model.forward(ids, dtype=torch.bfloat16).logits.float()
    out["router_probs"] = torch.stack(base.router_probs).float()
    out["topk_idx"] = torch.stack([t[-1] for t in base.topk_idx]).to(torch.int64)
    out["topk_weight"] = torch.stack([w[-1] for w in base.topk_weight]).float()
    out["hidden_states"] = torch.stack(base.hidden_states).float()

    n_moe = len(spec.moe_layer_ids)
    layers = list(range(n_moe - OVERRIDE_LAYERS, n_moe))
    omega = torch.stack([dirichlet_with_clear_topk(rng, spec.num_experts, spec.top_k) for _ in layers])
    out["override_layers"] = torch.tensor(layers, dtype=torch.int64)
    out["override_omega"] = omega
    hard = model.forward(ids, overrides={l: omega[j] for j, l in enumerate(layers)})
    out["logits_override"] = hard.logits[-1].float()
    soft_set = torch.tensor(np.stack([rng.choice(spec.num_experts, SOFT_SET_SIZE, replace=False)
                                      for _ in layers]), dtype=torch.int64)
    out["soft_set"] = soft_set
    soft = model.forward(ids, soft={l: (soft_set[j], omega[j]) for j, l in enumerate(layers)})
    out["logits_soft"] = soft.logits[-1].float()

    letters = torch.tensor(rng.choice(spec.vocab_size, 4, replace=False), dtype=torch.int64)
    gold = int(rng.integers(4))
    out["letters"] = letters
    out["gold"] = torch.tensor(gold, dtype=torch.int64)
    omega64 = omega.double().requires_grad_(True)
    res = model.forward(ids, dtype=torch.float64, overrides={l: omega64[j] for j, l in enumerate(layers)})
    loss = letter_loss(res.logits[-1], letters, gold)
    loss.backward()
    out["loss_override"] = loss.detach().float()
    out["grad_omega"] = omega64.grad.float()
    out["greedy_ids"] = greedy(model, ids)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data", default=os.path.join(here, "..", "model", "data"))
    ap.add_argument("--only", nargs="*", default=MODEL_TYPES)
    args = ap.parse_args()
    torch.set_num_threads(1)     # deterministic summation order
    tok = load_tokenizer(os.path.join(args.data, MODEL_TYPES[0]))
    cases = [{"text": t, "ids": tok.encode(t)} for t in TOKENIZER_TEXTS]
    assert all(tok.decode(c["ids"]) == c["text"] for c in cases)
    with open(os.path.join(args.data, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n")
    for mi, model_type in enumerate(args.only):
        folder = os.path.join(args.data, model_type)
        model = MoEModel(folder)
        tok = load_tokenizer(folder)
        tensors = {}
        for ci, text in enumerate(PROMPTS):
            ids = torch.tensor(tok.encode(text), dtype=torch.int64)
            case = make_case(model, ids, seed=7000 + 100 * MODEL_TYPES.index(model_type) + ci)
            for k, v in case.items():
                tensors[f"case{ci}.{k}"] = v.detach().contiguous()
            distinct = len({tuple(sorted(r.tolist())) for r in torch.cat(
                [torch.topk(p, model.spec.top_k, dim=-1).indices for p in case["router_probs"]])})
            print(f"{model_type} case{ci}: T={len(ids)} distinct top-k sets={distinct} "
                  f"max router p={case['router_probs'].max():.3f} "
                  f"|logits_f32-logits_bf16|max={(case['logits_f32'] - case['logits_bf16']).abs().max():.3g} "
                  f"|logits_override-base|max={(case['logits_override'] - case['logits_f32'][-1]).abs().max():.3g} "
                  f"loss={case['loss_override']:.4f} |grad|max={case['grad_omega'].abs().max():.3g} "
                  f"greedy={case['greedy_ids'].tolist()}")
        path = os.path.join(folder, "expected.safetensors")
        write_safetensors(path, tensors, metadata={"generator": "tests/reference/make_expected.py"})
        print(f"{model_type}: wrote {path} ({os.path.getsize(path) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
