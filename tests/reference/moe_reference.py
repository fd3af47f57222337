"""Independent plain-PyTorch reference forward passes for five MoE architectures.

Written from the Hugging Face modeling code (transformers' modeling_olmoe.py, modeling_qwen2_moe.py,
modeling_qwen3_moe.py, modeling_mixtral.py and DeepSeek's remote-code modeling_deepseek.py for
DeepSeekMoE-16B); see tests/model/data/README.md for the exact files. It reads config.json and
safetensors in HF layout and names, and never looks at the C++ engine.

Precision follows HF: weights and activations in the compute dtype; RMSNorm, RoPE tables, attention
softmax and router softmax in float32 (float64 when the compute dtype is float64, for gradients).

Routing hooks (see method.md section 2):
  * every forward records, per MoE layer, the router softmax over all experts at every position and
    the experts/weights actually used;
  * `overrides` {moe_layer: omega[E]}: at the LAST position of that layer, omega replaces the router
    distribution: top-k of omega, its entries as weights, renormalised exactly as the architecture
    does (omega may require grad);
  * `soft` {moe_layer: (expert_set[s], omega[E])}: at the LAST position mix all experts of the set
    with weights omega[set], renormalised over the set iff the architecture renormalises.
"""

import json
import math
import os
import struct

import torch

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def read_safetensors(path):
    """All tensors of one .safetensors file, as a {name: tensor} dict (copies, writable)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = _ST_DTYPES[info["dtype"]]
        raw = bytearray(data[base + begin:base + end])
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(info["shape"])
    return out


def write_safetensors(path, tensors, metadata=None):
    """Write {name: tensor} in the safetensors format (names sorted, data packed, no gaps)."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = dict(metadata)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_checkpoint(folder):
    """model.safetensors, or the shards named by model.safetensors.index.json."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        out = {}
        for s in shards:
            out.update(read_safetensors(os.path.join(folder, s)))
        return out
    return read_safetensors(os.path.join(folder, "model.safetensors"))


class ArchSpec:
    """What the forward needs to know, decoded from an HF config.json per model_type."""

    def __init__(self, cfg):
        mt = cfg["model_type"]
        self.model_type = mt
        self.vocab_size = cfg["vocab_size"]
        self.hidden_size = H = cfg["hidden_size"]
        self.num_layers = L = cfg["num_hidden_layers"]
        self.num_heads = cfg["num_attention_heads"]
        self.num_kv_heads = cfg.get("num_key_value_heads") or self.num_heads
        self.rms_eps = cfg["rms_norm_eps"]
        self.rope_theta = float(cfg.get("rope_theta", 10000.0))
        if cfg.get("rope_scaling") is not None:
            raise ValueError(f"{mt}: rope_scaling is not supported by this reference")
        if cfg.get("hidden_act", "silu") != "silu":
            raise ValueError(f"{mt}: hidden_act must be silu")
        if cfg.get("tie_word_embeddings", False):
            raise ValueError(f"{mt}: tied embeddings are not supported by this reference")
        self.qk_norm = None          # None | "full" (OLMoE) | "head" (Qwen3-MoE)
        self.clip_qkv = None
        self.qkv_bias = False        # bias on q/k/v projections
        self.o_bias = False          # bias on o_proj
        self.shared_width = 0
        self.shared_gated = False
        self.renorm_eps = 0.0
        self.mlp_prefix = "mlp"
        self.expert_proj = ("gate_proj", "up_proj", "down_proj")
        self.shared_prefix = None
        self.dense_width = cfg.get("intermediate_size")
        self.head_dim = cfg.get("head_dim") or H // self.num_heads
        if mt == "olmoe":
            self.head_dim = H // self.num_heads       # OlmoeAttention ignores any head_dim field
            self.num_experts = cfg["num_experts"]
            self.top_k = cfg["num_experts_per_tok"]
            self.renormalize = bool(cfg.get("norm_topk_prob", False))
            self.expert_width = cfg["intermediate_size"]
            self.qk_norm = "full"
            self.clip_qkv = cfg.get("clip_qkv")
            self.qkv_bias = self.o_bias = bool(cfg.get("attention_bias", False))
            self.moe_layers = [True] * L
        elif mt in ("qwen2_moe", "qwen3_moe"):
            self.num_experts = cfg["num_experts"]
            self.top_k = cfg["num_experts_per_tok"]
            self.renormalize = bool(cfg.get("norm_topk_prob", False))
            self.expert_width = cfg["moe_intermediate_size"]
            step = cfg.get("decoder_sparse_step", 1)
            only = set(cfg.get("mlp_only_layers") or [])
            self.moe_layers = [(i not in only) and self.num_experts > 0 and (i + 1) % step == 0
                               for i in range(L)]
            if mt == "qwen2_moe":
                self.qkv_bias = bool(cfg.get("qkv_bias", True))
                self.shared_width = cfg["shared_expert_intermediate_size"]
                self.shared_gated = True
                self.shared_prefix = "mlp.shared_expert"
            else:
                self.qk_norm = "head"
                self.qkv_bias = self.o_bias = bool(cfg.get("attention_bias", False))
        elif mt == "mixtral":
            self.num_experts = cfg["num_local_experts"]
            self.top_k = cfg["num_experts_per_tok"]
            self.renormalize = True
            self.expert_width = cfg["intermediate_size"]
            self.mlp_prefix = "block_sparse_moe"
            self.expert_proj = ("w1", "w3", "w2")
            self.moe_layers = [True] * L
        elif mt == "deepseek":
            if cfg.get("scoring_func", "softmax") != "softmax":
                raise ValueError("deepseek: only scoring_func softmax exists in the remote code")
            self.num_experts = cfg["n_routed_experts"]
            self.top_k = cfg["num_experts_per_tok"]
            self.renormalize = bool(cfg.get("norm_topk_prob", False)) and self.top_k > 1
            self.renorm_eps = 1e-20
            self.expert_width = cfg["moe_intermediate_size"]
            self.head_dim = H // self.num_heads
            self.qkv_bias = self.o_bias = bool(cfg.get("attention_bias", False))
            k_dense = cfg.get("first_k_dense_replace", 0)
            freq = cfg.get("moe_layer_freq", 1)
            self.moe_layers = [self.num_experts is not None and i >= k_dense and i % freq == 0
                               for i in range(L)]
            n_shared = cfg.get("n_shared_experts") or 0
            self.shared_width = self.expert_width * n_shared
            self.shared_prefix = "mlp.shared_experts"
        else:
            raise ValueError(f"unsupported model_type {mt!r}")
        self.moe_layer_ids = [i for i, m in enumerate(self.moe_layers) if m]


class KVCache:
    """Per-layer keys/values after RoPE, before the GQA repeat: [kv_heads, positions, head_dim]."""

    def __init__(self, num_layers):
        self.k = [None] * num_layers
        self.v = [None] * num_layers

    @property
    def length(self):
        return 0 if self.k[0] is None else self.k[0].shape[1]


class ForwardResult:
    def __init__(self):
        self.logits = None           # [T, V], compute dtype
        self.hidden_states = []      # num_layers+1 tensors [T, H]: embeddings, then each layer's output
        self.router_probs = []       # per MoE layer [T, E]: router softmax (fp32/fp64), before overrides
        self.topk_idx = []           # per MoE layer [T, k]: experts used (last row: overridden ones)
        self.topk_weight = []        # per MoE layer [T, k]: mixing weights after renormalisation


def rms_norm(x, weight, eps, acc):
    xf = x.to(acc)
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def linear(x, w, b=None):
    y = x @ w.t()
    return y if b is None else y + b


def swiglu(x, gate_w, up_w, down_w):
    return linear(torch.nn.functional.silu(linear(x, gate_w)) * linear(x, up_w), down_w)


class MoEModel:
    def __init__(self, folder=None, config=None, weights=None):
        """From an HF folder, or from an in-memory config dict and {name: tensor} weights."""
        if folder is not None:
            with open(os.path.join(folder, "config.json")) as f:
                config = json.load(f)
            weights = read_checkpoint(folder)
        self.config = config
        self.spec = ArchSpec(config)
        self.weights = weights
        self._cast = {}

    def weights_in(self, dtype):
        if dtype not in self._cast:
            self._cast[dtype] = {k: v.to(dtype) for k, v in self.weights.items()}
        return self._cast[dtype]

    def rope_tables(self, positions, dtype, acc):
        d = self.spec.head_dim
        inv_freq = 1.0 / (self.spec.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).to(acc) / d))
        freqs = positions.to(acc)[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def attention(self, h, layer, W, cos, sin, cache, start, acc):
        s = self.spec
        p = f"model.layers.{layer}.self_attn."
        T = h.shape[0]
        bias = (lambda n: W.get(p + n + ".bias")) if s.qkv_bias else (lambda n: None)
        q = linear(h, W[p + "q_proj.weight"], bias("q_proj"))
        k = linear(h, W[p + "k_proj.weight"], bias("k_proj"))
        v = linear(h, W[p + "v_proj.weight"], bias("v_proj"))
        if s.qk_norm == "full":
            q = rms_norm(q, W[p + "q_norm.weight"], s.rms_eps, acc)
            k = rms_norm(k, W[p + "k_norm.weight"], s.rms_eps, acc)
        if s.clip_qkv is not None:
            c = float(s.clip_qkv)
            q, k, v = q.clamp(-c, c), k.clamp(-c, c), v.clamp(-c, c)
        q = q.view(T, s.num_heads, s.head_dim)
        k = k.view(T, s.num_kv_heads, s.head_dim)
        v = v.view(T, s.num_kv_heads, s.head_dim)
        if s.qk_norm == "head":
            q = rms_norm(q, W[p + "q_norm.weight"], s.rms_eps, acc)
            k = rms_norm(k, W[p + "k_norm.weight"], s.rms_eps, acc)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)   # [heads, T, d]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            if cache.k[layer] is not None:
                k = torch.cat((cache.k[layer], k), dim=1)
                v = torch.cat((cache.v[layer], v), dim=1)
            cache.k[layer], cache.v[layer] = k, v
        rep = s.num_heads // s.num_kv_heads
        k = k.repeat_interleave(rep, dim=0)     # query head j reads kv head j // rep
        v = v.repeat_interleave(rep, dim=0)
        scores = (q @ k.transpose(1, 2)) * (s.head_dim ** -0.5)
        qpos = torch.arange(start, start + T)[:, None]
        kpos = torch.arange(k.shape[1])[None, :]
        scores = scores.to(acc).masked_fill(kpos > qpos, float("-inf"))
        probs = torch.softmax(scores, dim=-1).to(q.dtype)
        out = (probs @ v).transpose(0, 1).reshape(T, s.num_heads * s.head_dim)
        return linear(out, W[p + "o_proj.weight"], W.get(p + "o_proj.bias") if s.o_bias else None)

    def expert(self, W, e, prefix, x):
        g, u, d = self.spec.expert_proj
        ep = f"{prefix}.experts.{e}."
        return swiglu(x, W[ep + g + ".weight"], W[ep + u + ".weight"], W[ep + d + ".weight"])

    def select(self, weights):
        """Renormalise selected weights exactly as the architecture does (no-op if it does not)."""
        if self.spec.renormalize:
            return weights / (weights.sum(-1, keepdim=True) + self.spec.renorm_eps)
        return weights

    def moe(self, h, layer, W, acc, override, soft, res):
        s = self.spec
        prefix = f"model.layers.{layer}.{s.mlp_prefix}"
        T = h.shape[0]
        logits = linear(h, W[prefix + ".gate.weight"])          # router matmul in the compute dtype
        probs = torch.softmax(logits.to(acc), dim=-1)          # over all experts, fp32
        top_w, top_i = torch.topk(probs, s.top_k, dim=-1)
        top_w = self.select(top_w)
        if override is not None:
            om = override.to(acc)
            ow, oi = torch.topk(om, s.top_k)
            top_w = torch.cat((top_w[:-1], self.select(ow)[None]), dim=0)
            top_i = torch.cat((top_i[:-1], oi[None]), dim=0)
        res.router_probs.append(probs)
        res.topk_idx.append(top_i)
        res.topk_weight.append(top_w)
        w = top_w.to(h.dtype)
        routed_rows = T - 1 if soft is not None else T
        out = torch.zeros_like(h)
        for e in range(s.num_experts):   # expert order, like HF's index_add_ loop
            tok, slot = torch.where(top_i[:routed_rows] == e)
            if tok.numel() == 0:
                continue
            y = self.expert(W, e, prefix, h[tok]) * w[tok, slot, None]
            out = out.index_add(0, tok, y)
        if soft is not None:
            expert_set, om = soft
            expert_set = [int(i) for i in expert_set]
            sw = self.select(om.to(acc)[expert_set]).to(h.dtype)
            last = torch.zeros_like(h[-1])
            for j, e in enumerate(sorted(range(len(expert_set)), key=lambda j: expert_set[j])):
                last = last + self.expert(W, expert_set[e], prefix, h[-1:])[0] * sw[e]
            out = torch.cat((out[:-1], last[None]), dim=0)
        if s.shared_width:
            sp = f"model.layers.{layer}.{s.shared_prefix}."
            shared = swiglu(h, W[sp + "gate_proj.weight"], W[sp + "up_proj.weight"], W[sp + "down_proj.weight"])
            if s.shared_gated:
                gate = torch.sigmoid(linear(h, W[f"model.layers.{layer}.mlp.shared_expert_gate.weight"]))
                shared = gate * shared
            out = out + shared
        return out

    def forward(self, input_ids, dtype=torch.float32, cache=None, overrides=None, soft=None):
        """input_ids: 1-D LongTensor. overrides / soft are keyed by MoE-layer index (0..L_moe-1)."""
        s = self.spec
        overrides = overrides or {}
        soft = soft or {}
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        W = self.weights_in(dtype)
        ids = torch.as_tensor(input_ids, dtype=torch.int64)
        T = ids.shape[0]
        start = cache.length if cache is not None else 0
        cos, sin = self.rope_tables(torch.arange(start, start + T), dtype, acc)
        res = ForwardResult()
        x = W["model.embed_tokens.weight"][ids]
        res.hidden_states.append(x)
        moe_index = 0
        for layer in range(s.num_layers):
            p = f"model.layers.{layer}."
            h = rms_norm(x, W[p + "input_layernorm.weight"], s.rms_eps, acc)
            x = x + self.attention(h, layer, W, cos, sin, cache, start, acc)
            h = rms_norm(x, W[p + "post_attention_layernorm.weight"], s.rms_eps, acc)
            if s.moe_layers[layer]:
                out = self.moe(h, layer, W, acc, overrides.get(moe_index), soft.get(moe_index), res)
                moe_index += 1
            else:
                mp = p + "mlp."
                out = swiglu(h, W[mp + "gate_proj.weight"], W[mp + "up_proj.weight"], W[mp + "down_proj.weight"])
            x = x + out
            res.hidden_states.append(x)
        x = rms_norm(x, W["model.norm.weight"], s.rms_eps, acc)
        res.logits = x @ W["lm_head.weight"].t()
        return res
