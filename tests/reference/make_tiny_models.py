"""Generate tiny random MoE checkpoints in Hugging Face layout, one per architecture.

    /usr/bin/python3 tests/reference/make_tiny_models.py [--out tests/model/data]

Writes <out>/<model_type>/{config.json, model.safetensors (F32), tokenizer.json}. Everything is
seeded, so a rerun reproduces the files byte for byte.
"""

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from byte_bpe import ByteBPE  # noqa: E402
from moe_reference import ArchSpec, MoEModel, write_safetensors  # noqa: E402

VOCAB_SIZE = 331            # 256 byte symbols + 74 learned merges + <|endoftext|>
EOS_ID = VOCAB_SIZE - 1

TRAINING_TEXT = """\
The river runs past the old mill and under the stone bridge before it reaches the sea. In the
morning the water is cold and clear, and you can see the small fish that hide between the rocks.
Children from the village come down to the bank after school. They throw sticks into the current
and race along the path to see which one will pass under the bridge first. Their parents tell them
not to lean over the edge, but they do it anyway, because the best view of the race is from the top
of the wall.

A question is only as good as the answer it makes possible. When a teacher asks the class which of
two animals is larger, a mouse or a horse, everyone knows the answer at once. When she asks which
of two metals is heavier for the same size, the room goes quiet, and then somebody asks whether the
answer depends on the shape of the block. That is the start of real thinking: the moment when the
easy answer does not work and you have to look at the problem again.

Answer: the horse is larger than the mouse. Answer: gold is heavier than iron for the same volume.
Answer: water boils at a lower temperature on a high mountain than it does at the sea, because the
air pressure is lower there. Answer: the moon does not make its own light; it reflects the light of
the sun. Answer: plants need light, water and air to grow, and most of them also need soil.

Question: Which season comes after winter?
A. summer
B. spring
C. autumn
D. night
Answer: B

Question: What do bees make?
A. milk
B. silk
C. honey
D. bread
Answer: C

Question: Where does the sun rise?
A. in the east
B. in the west
C. in the north
D. in the south
Answer: A

The market opens early on Saturday. Farmers bring eggs, cheese, apples and bread, and the baker
sells warm rolls from a cart at the corner. People stand in line, talk about the weather and the
price of potatoes, and then walk home with heavy bags. By noon the square is empty again except for
the pigeons, which search the stones for the last crumbs. In the evening the lights of the houses
come on one by one, and the smell of dinner drifts out into the street.

Learning a new skill takes time. At first every step feels slow and strange, and it is easy to
think that you will never get better. Then one day you notice that you did the hard part without
thinking about it. The work did not become easier; you became stronger. That is why good teachers
ask their students to practise a little every day instead of a lot once a week. Small steps, taken
often, go further than large steps taken rarely.

It was late when the train finally arrived. The station was almost empty, and the only sound was
the rain on the roof. She picked up her bag, stepped onto the platform and looked for the exit. A
man in a grey coat held the door open for her and said good night. Outside, the street lamps made
long yellow lines on the wet road, and she started the short walk home, thinking about the long day
and the warm room that was waiting for her.
"""

# Per-architecture tiny shapes: odd widths and vocab, GQA where the architecture has it.
ARCHS = {
    "olmoe": dict(seed=1001, hidden=64, heads=4, kv_heads=2, experts=12, top_k=3, expert_width=20),
    "qwen2_moe": dict(seed=1002, hidden=56, heads=4, kv_heads=2, experts=10, top_k=3, expert_width=20,
                      shared_width=36, dense_width=44),
    "qwen3_moe": dict(seed=1003, hidden=48, heads=4, kv_heads=2, head_dim=16, experts=12, top_k=3,
                      expert_width=20, dense_width=40),
    "mixtral": dict(seed=1004, hidden=48, heads=4, kv_heads=2, experts=8, top_k=2, expert_width=36),
    "deepseek": dict(seed=1005, hidden=48, heads=4, kv_heads=4, experts=10, top_k=3, expert_width=20,
                     n_shared=2, dense_width=52),
}
NUM_LAYERS = 4

# The prompts of tests/model/data/*/expected.safetensors (5, 11 and 17 tokens).
EXPECTED_PROMPTS = [
    "The river.",
    "The river runs past.",
    "What do bees make?\nA. milk",
]
# Seeds are searched until, on the expected prompts, every router's k-th and (k+1)-th largest
# probability differ by at least this much in both fp32 and bf16 runs, so an engine whose rounding
# differs slightly from ours still picks the same experts.
MIN_TOPK_GAP = 1e-3
MAX_SEED_TRIES = 400


def make_config(model_type, a):
    common = {
        "model_type": model_type,
        "vocab_size": VOCAB_SIZE,
        "hidden_size": a["hidden"],
        "num_hidden_layers": NUM_LAYERS,
        "num_attention_heads": a["heads"],
        "num_key_value_heads": a["kv_heads"],
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "max_position_embeddings": 256,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "bos_token_id": None,
        "eos_token_id": EOS_ID,
        "attention_dropout": 0.0,
        "rope_scaling": None,
        "transformers_version": "4.46.0",
    }
    if model_type == "olmoe":
        return {**common, "architectures": ["OlmoeForCausalLM"],
                "intermediate_size": a["expert_width"], "num_experts": a["experts"],
                "num_experts_per_tok": a["top_k"], "norm_topk_prob": False, "clip_qkv": 2.0,
                "attention_bias": False, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                "output_router_logits": False, "router_aux_loss_coef": 0.01, "pad_token_id": EOS_ID}
    if model_type == "qwen2_moe":
        return {**common, "architectures": ["Qwen2MoeForCausalLM"],
                "intermediate_size": a["dense_width"], "moe_intermediate_size": a["expert_width"],
                "shared_expert_intermediate_size": a["shared_width"], "num_experts": a["experts"],
                "num_experts_per_tok": a["top_k"], "norm_topk_prob": False, "decoder_sparse_step": 1,
                "mlp_only_layers": [1], "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
                "use_sliding_window": False, "sliding_window": None, "max_window_layers": NUM_LAYERS,
                "output_router_logits": False, "router_aux_loss_coef": 0.001}
    if model_type == "qwen3_moe":
        return {**common, "architectures": ["Qwen3MoeForCausalLM"],
                "head_dim": a["head_dim"], "intermediate_size": a["dense_width"],
                "moe_intermediate_size": a["expert_width"], "num_experts": a["experts"],
                "num_experts_per_tok": a["top_k"], "norm_topk_prob": True, "decoder_sparse_step": 1,
                "mlp_only_layers": [], "attention_bias": False, "rms_norm_eps": 1e-6,
                "rope_theta": 1000000.0, "use_sliding_window": False, "sliding_window": None,
                "max_window_layers": NUM_LAYERS, "output_router_logits": False,
                "router_aux_loss_coef": 0.001}
    if model_type == "mixtral":
        return {**common, "architectures": ["MixtralForCausalLM"],
                "intermediate_size": a["expert_width"], "num_local_experts": a["experts"],
                "num_experts_per_tok": a["top_k"], "rms_norm_eps": 1e-5, "rope_theta": 1000000.0,
                "sliding_window": None, "router_jitter_noise": 0.0, "output_router_logits": False,
                "router_aux_loss_coef": 0.02}
    if model_type == "deepseek":
        return {**common, "architectures": ["DeepseekForCausalLM"],
                "intermediate_size": a["dense_width"], "moe_intermediate_size": a["expert_width"],
                "n_routed_experts": a["experts"], "n_shared_experts": a["n_shared"],
                "num_experts_per_tok": a["top_k"], "first_k_dense_replace": 1, "moe_layer_freq": 1,
                "norm_topk_prob": False, "scoring_func": "softmax", "aux_loss_alpha": 0.001,
                "seq_aux": True, "attention_bias": False, "pretraining_tp": 1, "rms_norm_eps": 1e-6,
                "rope_theta": 10000.0,
                "auto_map": {"AutoConfig": "configuration_deepseek.DeepseekConfig",
                             "AutoModel": "modeling_deepseek.DeepseekModel",
                             "AutoModelForCausalLM": "modeling_deepseek.DeepseekForCausalLM"}}
    raise ValueError(model_type)


def make_weights(cfg, seed):
    """Random weights scaled so activations stay O(1) and the routers are far from uniform."""
    spec = ArchSpec(cfg)
    g = torch.Generator().manual_seed(seed)
    H, V = spec.hidden_size, spec.vocab_size

    def randn(*shape, std):
        return torch.randn(*shape, generator=g) * std

    def norm_weight(n):
        return 0.6 + 0.8 * torch.rand(n, generator=g)

    def proj(out_f, in_f, gain=1.0):
        return randn(out_f, in_f, std=gain / math.sqrt(in_f))

    w = {"model.embed_tokens.weight": randn(V, H, std=1.0)}
    qd, kvd = spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
    for i in range(spec.num_layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm_weight(H)
        w[p + "post_attention_layernorm.weight"] = norm_weight(H)
        a = p + "self_attn."
        w[a + "q_proj.weight"] = proj(qd, H)
        w[a + "k_proj.weight"] = proj(kvd, H)
        w[a + "v_proj.weight"] = proj(kvd, H)
        w[a + "o_proj.weight"] = proj(H, qd, 0.7)
        if spec.qkv_bias:
            w[a + "q_proj.bias"] = randn(qd, std=0.2)
            w[a + "k_proj.bias"] = randn(kvd, std=0.2)
            w[a + "v_proj.bias"] = randn(kvd, std=0.2)
        if spec.qk_norm == "full":
            w[a + "q_norm.weight"] = norm_weight(qd)
            w[a + "k_norm.weight"] = norm_weight(kvd)
        elif spec.qk_norm == "head":
            w[a + "q_norm.weight"] = norm_weight(spec.head_dim)
            w[a + "k_norm.weight"] = norm_weight(spec.head_dim)
        if spec.moe_layers[i]:
            m = p + spec.mlp_prefix + "."
            w[m + "gate.weight"] = proj(spec.num_experts, H, 2.0)
            gname, uname, dname = spec.expert_proj
            for e in range(spec.num_experts):
                ep = f"{m}experts.{e}."
                w[ep + gname + ".weight"] = proj(spec.expert_width, H)
                w[ep + uname + ".weight"] = proj(spec.expert_width, H)
                w[ep + dname + ".weight"] = proj(H, spec.expert_width, 0.8)
            if spec.shared_width:
                sp = p + spec.shared_prefix + "."
                w[sp + "gate_proj.weight"] = proj(spec.shared_width, H)
                w[sp + "up_proj.weight"] = proj(spec.shared_width, H)
                w[sp + "down_proj.weight"] = proj(H, spec.shared_width, 0.6)
                if spec.shared_gated:
                    w[p + "mlp.shared_expert_gate.weight"] = proj(1, H)
        else:
            m = p + "mlp."
            w[m + "gate_proj.weight"] = proj(spec.dense_width, H)
            w[m + "up_proj.weight"] = proj(spec.dense_width, H)
            w[m + "down_proj.weight"] = proj(H, spec.dense_width, 0.8)
    w["model.norm.weight"] = norm_weight(H)
    w["lm_head.weight"] = proj(V, H, 1.5)
    return w


def min_topk_gap(model, prompts_ids):
    k = model.spec.top_k
    gap = float("inf")
    for dtype in (torch.float32, torch.bfloat16):
        for ids in prompts_ids:
            for p in model.forward(ids, dtype=dtype).router_probs:
                s = torch.sort(p, dim=-1, descending=True).values
                gap = min(gap, (s[:, k - 1] - s[:, k]).min().item())
    return gap


def build_tokenizer():
    merges = ByteBPE.train(TRAINING_TEXT, VOCAB_SIZE - 256 - 1)
    tok = ByteBPE(merges)
    assert len(tok.vocab) == VOCAB_SIZE and tok.special_ids["<|endoftext|>"] == EOS_ID
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "model", "data"))
    args = ap.parse_args()
    tok = build_tokenizer()
    tok_json = json.dumps(tok.tokenizer_json(), ensure_ascii=False, indent=2) + "\n"
    prompts_ids = [torch.tensor(tok.encode(t), dtype=torch.int64) for t in EXPECTED_PROMPTS]
    torch.set_num_threads(1)
    for model_type, a in ARCHS.items():
        folder = os.path.join(args.out, model_type)
        os.makedirs(folder, exist_ok=True)
        cfg = make_config(model_type, a)
        for attempt in range(MAX_SEED_TRIES):
            seed = a["seed"] + 10000 * attempt
            weights = make_weights(cfg, seed)
            gap = min_topk_gap(MoEModel(config=cfg, weights=weights), prompts_ids)
            if gap >= MIN_TOPK_GAP:
                break
        else:
            raise RuntimeError(f"{model_type}: no seed with top-k gap >= {MIN_TOPK_GAP}")
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        write_safetensors(os.path.join(folder, "model.safetensors"), weights, metadata={"format": "pt"})
        with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(tok_json)
        size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
        print(f"{model_type}: seed {seed}, min top-k gap {gap:.2e}, {size / 1e6:.2f} MB in {folder}")


if __name__ == "__main__":
    main()
