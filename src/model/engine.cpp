#include "model/engine.h"

#include <cstring>
#include <filesystem>
#include <fmt/core.h>

#include "io/error.h"
#include "io/safetensors.h"
#include "model/arch/spec.h"
#include "model/blocks.h"

namespace c3po::model {
namespace {

torch::ScalarType scalar_type(Dtype d) { return d == Dtype::F32 ? torch::kFloat32 : torch::kBFloat16; }

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// FNV-1a, 64 bit: a stable hash independent of the platform's std::hash.
struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void add(const void* data, std::size_t n) {
    auto p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size()), add("\0", 1); }
};

}  // namespace

Dtype parse_dtype(const std::string& name) {
  if (name == "f32" || name == "float32") return Dtype::F32;
  if (name == "bf16" || name == "bfloat16") return Dtype::BF16;
  throw Error("", "dtype", "expected f32 or bf16, got '" + name + "'");
}

const char* dtype_name(Dtype d) { return d == Dtype::F32 ? "f32" : "bf16"; }

int RouteOverride::min_moe_layer() const {
  int m = -1;
  for (const auto& l : layers) m = (m < 0 || l.moe_layer < m) ? l.moe_layer : m;
  return m;
}

std::size_t PrefixState::bytes() const {
  std::size_t n = hidden.defined() ? hidden.nbytes() : 0;
  for (const auto& t : keys) n += t.nbytes();
  for (const auto& t : values) n += t.nbytes();
  return n;
}

struct LayerWeights {
  torch::Tensor attn_norm, mlp_norm;
  torch::Tensor wq, wk, wv, wo, bq, bk, bv, bo, q_norm, k_norm;
  int moe_index = -1;  // -1: dense layer
  torch::Tensor router;
  std::vector<SwiGlu> experts;
  SwiGlu shared;
  torch::Tensor shared_gate;
  SwiGlu dense;
};

// Rows of the packed batch that belong to one sequence, and the keys/values cached before them.
struct Segment {
  int64_t offset = 0, length = 0, past = 0;
  const std::vector<torch::Tensor>* past_keys = nullptr;  // indexed by layer - past_base
  const std::vector<torch::Tensor>* past_values = nullptr;
  int past_base = 0;
  int prompt = 0;
};

using KvSink = std::function<void(int layer, int segment, const torch::Tensor& k, const torch::Tensor& v)>;
using LayerObserver = std::function<void(int layer, const torch::Tensor& x)>;

// Tensors by name, from a checkpoint (memory-mapped) or from memory; checks shape and dtype.
class WeightLoader {
 public:
  WeightLoader(const io::Checkpoint* ck, std::map<std::string, torch::Tensor>* mem, torch::ScalarType st)
      : ck_(ck), mem_(mem), st_(st) {}

  bool has(const std::string& name) const { return ck_ ? ck_->has(name) : mem_->count(name) != 0; }

  torch::Tensor get(const std::string& name, const std::vector<int64_t>& shape) {
    torch::Tensor t;
    if (ck_) {
      const io::TensorView& view = ck_->get(name);
      if (view.shape != shape)
        throw Error(view.file, name, "expected shape " + shape_str(shape) + ", got " + shape_str(view.shape));
      torch::ScalarType src;
      switch (view.dtype) {
        case io::DType::F32: src = torch::kFloat32; break;
        case io::DType::BF16: src = torch::kBFloat16; break;
        case io::DType::F16: src = torch::kFloat16; break;
        default:
          throw Error(view.file, name,
                      std::string("expected a floating-point dtype (F32, BF16, F16), got ") + io::dtype_name(view.dtype));
      }
      auto data = const_cast<std::byte*>(view.data);
      bool aligned = reinterpret_cast<uintptr_t>(data) % io::dtype_size(view.dtype) == 0;
      if (aligned) {
        // Zero-copy view of the mapping; never written to.
        t = torch::from_blob(data, shape, torch::TensorOptions().dtype(src));
        if (src != st_) t = t.to(st_);
      } else {
        t = torch::empty(shape, torch::TensorOptions().dtype(src));
        std::memcpy(t.data_ptr(), data, view.nbytes);
        t = t.to(st_);
      }
    } else {
      auto it = mem_->find(name);
      if (it == mem_->end()) throw Error("<memory>", name, "missing tensor");
      if (it->second.sizes().vec() != shape)
        throw Error("<memory>", name,
                    "expected shape " + shape_str(shape) + ", got " + shape_str(it->second.sizes().vec()));
      if (!it->second.is_floating_point()) throw Error("<memory>", name, "expected a floating-point dtype");
      t = it->second.to(st_).contiguous();
      it->second = torch::Tensor();  // release the caller's copy if it was converted
    }
    loaded_.emplace_back(name, t);
    return t;
  }

  const std::vector<std::pair<std::string, torch::Tensor>>& loaded() const { return loaded_; }

 private:
  const io::Checkpoint* ck_;
  std::map<std::string, torch::Tensor>* mem_;
  torch::ScalarType st_;
  std::vector<std::pair<std::string, torch::Tensor>> loaded_;
};

class ModelImpl {
 public:
  ModelConfig cfg;
  ArchSpec spec;
  Dtype dtype = Dtype::BF16;
  torch::ScalarType st = torch::kBFloat16;
  std::unique_ptr<io::Checkpoint> checkpoint;  // keeps the mapped views alive
  torch::Tensor embed, final_norm, lm_head;
  std::vector<LayerWeights> layers;
  Rope rope;
  double attn_scale = 1.0;
  std::string fingerprint;
  std::size_t weight_bytes = 0;
  int64_t params = 0, active_params = 0;

  void load(WeightLoader& w);

  torch::Tensor run(torch::Tensor x, const torch::Tensor& positions, int first_layer,
                    const std::vector<Segment>& segs, RoutingHook& hook, const KvSink& on_kv,
                    const LayerObserver& on_input) const;
  torch::Tensor attention(const LayerWeights& w, int layer, const torch::Tensor& h, const torch::Tensor& cos,
                          const torch::Tensor& sin, const std::vector<Segment>& segs, const KvSink& on_kv) const;
  torch::Tensor moe(const LayerWeights& w, const torch::Tensor& h, const std::vector<Segment>& segs,
                    RoutingHook& hook) const;
  torch::Tensor head(const torch::Tensor& x, const std::vector<int64_t>& vocab_rows) const;
  void check_route(const RouteOverride& r, const std::string& where) const;
  void check_ids(const std::vector<int64_t>& ids, const std::string& where) const;
};

void ModelImpl::load(WeightLoader& w) {
  const auto& c = cfg;
  const int64_t H = c.hidden_size, d = c.head_dim, nh = c.num_heads, nkv = c.num_kv_heads;
  embed = w.get(spec.embed, {c.vocab_size, H});
  final_norm = w.get(spec.final_norm, {H});
  lm_head = c.tie_word_embeddings ? embed : w.get(spec.lm_head, {c.vocab_size, H});
  auto mlp = [&](const std::string& prefix, int64_t width) {
    return SwiGlu{w.get(prefix + "gate_proj.weight", {width, H}), w.get(prefix + "up_proj.weight", {width, H}),
                  w.get(prefix + "down_proj.weight", {H, width})};
  };
  int moe_index = 0;
  layers.resize(c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    auto n = [&](const std::string& t) { return tensor_name(t, i); };
    LayerWeights& L = layers[i];
    L.attn_norm = w.get(n(spec.attn_norm), {H});
    L.mlp_norm = w.get(n(spec.mlp_norm), {H});
    L.wq = w.get(n(spec.q_proj) + ".weight", {nh * d, H});
    L.wk = w.get(n(spec.k_proj) + ".weight", {nkv * d, H});
    L.wv = w.get(n(spec.v_proj) + ".weight", {nkv * d, H});
    L.wo = w.get(n(spec.o_proj) + ".weight", {H, nh * d});
    if (c.o_bias) L.bo = w.get(n(spec.o_proj) + ".bias", {H});
    if (c.qkv_bias) {
      L.bq = w.get(n(spec.q_proj) + ".bias", {nh * d});
      L.bk = w.get(n(spec.k_proj) + ".bias", {nkv * d});
      L.bv = w.get(n(spec.v_proj) + ".bias", {nkv * d});
    }
    if (c.qk_norm == QkNorm::Full) {
      L.q_norm = w.get(n(spec.q_norm), {nh * d});
      L.k_norm = w.get(n(spec.k_norm), {nkv * d});
    } else if (c.qk_norm == QkNorm::PerHead) {
      L.q_norm = w.get(n(spec.q_norm), {d});
      L.k_norm = w.get(n(spec.k_norm), {d});
    }
    if (c.layer_is_moe[i]) {
      L.moe_index = moe_index++;
      L.router = w.get(n(spec.router), {c.num_experts, H});
      const int64_t F = c.moe_intermediate_size;
      for (int64_t e = 0; e < c.num_experts; ++e) {
        L.experts.push_back(SwiGlu{w.get(tensor_name(spec.expert_gate, i, e), {F, H}),
                                   w.get(tensor_name(spec.expert_up, i, e), {F, H}),
                                   w.get(tensor_name(spec.expert_down, i, e), {H, F})});
      }
      if (!spec.shared_prefix.empty()) L.shared = mlp(n(spec.shared_prefix), c.shared_expert_intermediate_size);
      if (!spec.shared_gate.empty()) L.shared_gate = w.get(n(spec.shared_gate), {1, H});
    } else {
      L.dense = mlp(n(spec.dense_prefix), c.intermediate_size);
    }
  }
  rope = Rope{c.rope_theta, d, c.rope_interleaved};
  attn_scale = 1.0 / std::sqrt(static_cast<double>(d));

  Fnv f;
  f.add(c.model_type);
  for (int64_t v : {c.vocab_size, H, c.num_layers, nh, nkv, d, c.intermediate_size, c.moe_intermediate_size,
                    c.num_experts, c.top_k, c.shared_expert_intermediate_size})
    f.add(&v, sizeof v);
  for (bool b : c.layer_is_moe) f.add(&b, 1);
  for (double v : {c.rms_norm_eps, c.rope_theta, c.routed_scaling_factor, c.clip_qkv.value_or(0.0)}) f.add(&v, sizeof v);
  unsigned char flags[] = {c.norm_topk_prob, c.shared_expert_gated, c.rope_interleaved, c.qkv_bias, c.o_bias,
                           static_cast<unsigned char>(c.qk_norm), c.tie_word_embeddings};
  f.add(flags, sizeof flags);
  for (const auto& [name, t] : w.loaded()) {
    f.add(name);
    f.add(t.sizes().data(), t.dim() * sizeof(int64_t));
    f.add(std::string(c10::toString(t.scalar_type())));
    // Tensors up to 1 MiB are hashed whole; larger ones in 64 windows of 64 bytes spread evenly
    // from the first byte to the last (a full read would page in every weight of a 13 GB model at
    // load; the windows touch at most 64 pages per tensor).
    const auto* bytes = static_cast<const unsigned char*>(t.data_ptr());
    const std::size_t nb = t.nbytes();
    if (nb <= (std::size_t{1} << 20)) {
      f.add(bytes, nb);
    } else {
      constexpr std::size_t kWindows = 64, kWindow = 64;
      for (std::size_t i = 0; i < kWindows; ++i) f.add(bytes + (nb - kWindow) * i / (kWindows - 1), kWindow);
    }
    if (!(c.tie_word_embeddings && name == spec.embed)) weight_bytes += nb;
    params += t.numel();
  }
  fingerprint = fmt::format("{:016x}", f.h);
  const int64_t per_expert = 3 * c.moe_intermediate_size * H;
  active_params = params - c.num_moe_layers() * (c.num_experts - c.top_k) * per_expert;
}

void ModelImpl::check_ids(const std::vector<int64_t>& ids, const std::string& where) const {
  if (ids.empty()) throw Error(where, "input_ids", "empty prompt");
  for (int64_t id : ids)
    if (id < 0 || id >= cfg.vocab_size)
      throw Error(where, "input_ids",
                  "token id " + std::to_string(id) + " out of range [0, " + std::to_string(cfg.vocab_size) + ")");
}

void ModelImpl::check_route(const RouteOverride& r, const std::string& where) const {
  const int64_t E = cfg.num_experts, L = cfg.num_moe_layers();
  for (const auto& lo : r.layers) {
    if (lo.moe_layer < 0 || lo.moe_layer >= L)
      throw Error(where, "moe_layer", fmt::format("{} out of range [0, {})", lo.moe_layer, L));
    if (!lo.omega.defined() || lo.omega.dim() < 1 || lo.omega.dim() > 2 || lo.omega.size(-1) != E ||
        lo.omega.numel() == 0 || !lo.omega.is_floating_point())
      throw Error(where, "omega",
                  fmt::format("expected a float tensor [{}] or [n, {}] for MoE layer {}", E, E, lo.moe_layer));
    if (lo.tokens < 0)
      throw Error(where, "tokens",
                  fmt::format("expected a count of last positions >= 1 or {} (all), got {} for MoE layer {}",
                              kAllTokens, lo.tokens, lo.moe_layer));
    if (lo.soft_set.defined()) {
      if (lo.soft_set.dim() != 1 || lo.soft_set.scalar_type() != torch::kInt64 || lo.soft_set.numel() == 0)
        throw Error(where, "soft_set", "expected a non-empty int64 tensor [s]");
      auto s = lo.soft_set.contiguous();
      const int64_t* p = s.data_ptr<int64_t>();
      std::vector<bool> seen(E, false);
      for (int64_t i = 0; i < s.numel(); ++i) {
        if (p[i] < 0 || p[i] >= E) throw Error(where, "soft_set", fmt::format("expert {} out of range", p[i]));
        if (seen[p[i]]) throw Error(where, "soft_set", fmt::format("expert {} listed twice", p[i]));
        seen[p[i]] = true;
      }
    }
    for (const auto& other : r.layers)
      if (&other != &lo && other.moe_layer == lo.moe_layer)
        throw Error(where, "moe_layer", fmt::format("MoE layer {} overridden twice", lo.moe_layer));
  }
}

torch::Tensor ModelImpl::attention(const LayerWeights& w, int layer, const torch::Tensor& h, const torch::Tensor& cos,
                                   const torch::Tensor& sin, const std::vector<Segment>& segs,
                                   const KvSink& on_kv) const {
  const int64_t N = h.size(0), d = cfg.head_dim;
  auto q = project(h, w.wq, w.bq), k = project(h, w.wk, w.bk), v = project(h, w.wv, w.bv);
  if (cfg.qk_norm == QkNorm::Full) {
    q = rms_norm(q, w.q_norm, cfg.rms_norm_eps);
    k = rms_norm(k, w.k_norm, cfg.rms_norm_eps);
  }
  if (cfg.clip_qkv) {
    const double c = *cfg.clip_qkv;
    q = q.clamp(-c, c), k = k.clamp(-c, c), v = v.clamp(-c, c);
  }
  q = q.view({N, cfg.num_heads, d});
  k = k.view({N, cfg.num_kv_heads, d});
  v = v.view({N, cfg.num_kv_heads, d});
  if (cfg.qk_norm == QkNorm::PerHead) {
    q = rms_norm(q, w.q_norm, cfg.rms_norm_eps);
    k = rms_norm(k, w.k_norm, cfg.rms_norm_eps);
  }
  q = rope.apply(q, cos, sin);
  k = rope.apply(k, cos, sin);
  std::vector<torch::Tensor> outs;
  outs.reserve(segs.size());
  for (std::size_t s = 0; s < segs.size(); ++s) {
    const Segment& g = segs[s];
    auto qs = q.narrow(0, g.offset, g.length).transpose(0, 1);
    auto ks = k.narrow(0, g.offset, g.length).transpose(0, 1);
    auto vs = v.narrow(0, g.offset, g.length).transpose(0, 1);
    if (g.past > 0) {
      ks = torch::cat({(*g.past_keys)[layer - g.past_base], ks}, 1);
      vs = torch::cat({(*g.past_values)[layer - g.past_base], vs}, 1);
    }
    outs.push_back(causal_attention(qs, ks, vs, attn_scale, cfg.sliding_window));
    if (on_kv) on_kv(layer, static_cast<int>(s), ks, vs);
  }
  return project(outs.size() == 1 ? outs[0] : torch::cat(outs, 0), w.wo, w.bo);
}

torch::Tensor ModelImpl::moe(const LayerWeights& w, const torch::Tensor& h, const std::vector<Segment>& segs,
                             RoutingHook& hook) const {
  const int64_t N = h.size(0), k = cfg.top_k;
  const int m = w.moe_index;
  auto probs = torch::softmax(project(h, w.router).to(torch::kFloat32), -1);  // [N, E]

  // Overridden rows: the last `tokens` positions of each prompt that has an override. A segment
  // continues a prompt after `past` cached positions; the positions it does not hold cannot be
  // overridden here (tail() checks that they are not asked for).
  struct Over {
    int64_t first = 0, n = 0;  // rows first .. first+n-1
    const LayerOverride* o = nullptr;
    torch::Tensor omega;       // [n, E] float32
  };
  std::vector<Over> over;
  for (const auto& g : segs) {
    const LayerOverride* o = hook.override_last(g.prompt, m);
    if (!o) continue;
    const int64_t length = g.past + g.length;
    const int64_t from = o->tokens == kAllTokens ? 0 : std::max<int64_t>(0, length - o->tokens);
    const int64_t covered = length - from;
    const int64_t n = std::min(covered, g.length);
    torch::Tensor om = o->omega.to(torch::kFloat32);
    if (om.dim() == 1) {
      om = n == 1 ? om.unsqueeze(0) : om.unsqueeze(0).expand({n, om.size(0)});
    } else {
      if (om.size(0) != covered)
        throw Error(fmt::format("prompt {}", g.prompt), "omega",
                    fmt::format("{} rows for MoE layer {}, but the override covers {} positions", om.size(0), m,
                                covered));
      om = om.narrow(0, covered - n, n);
    }
    over.push_back({g.offset + g.length - n, n, o, om});
  }
  torch::Tensor sel = probs;
  if (!over.empty()) {
    std::vector<torch::Tensor> rows, omegas;
    for (const auto& v : over) {
      rows.push_back(v.n == 1 ? torch::full({1}, v.first, torch::kInt64) : torch::arange(v.first, v.first + v.n, torch::kInt64));
      omegas.push_back(v.omega);
    }
    sel = probs.index_put({rows.size() == 1 ? rows[0] : torch::cat(rows)},
                          omegas.size() == 1 ? omegas[0] : torch::cat(omegas));
  }
  auto [topk_w, topk_i] = torch::topk(sel, k, -1);
  if (cfg.norm_topk_prob) topk_w = topk_w / (topk_w.sum(-1, true) + cfg.topk_norm_eps);
  if (cfg.routed_scaling_factor != 1.0) topk_w = topk_w * cfg.routed_scaling_factor;

  Assignments a{torch::arange(N, torch::kInt64).repeat_interleave(k), topk_i.flatten(), topk_w.flatten()};
  bool any_soft = false;
  for (const auto& v : over) any_soft = any_soft || v.o->soft_set.defined();
  if (any_soft) {
    std::vector<torch::Tensor> rows{}, experts{}, weights{};
    auto keep = torch::ones({N}, torch::kBool);
    for (const auto& v : over)
      if (v.o->soft_set.defined()) keep.narrow(0, v.first, v.n).fill_(false);
    auto kept = keep.repeat_interleave(k).nonzero().flatten();
    rows.push_back(a.rows.index_select(0, kept));
    experts.push_back(a.experts.index_select(0, kept));
    weights.push_back(a.weights.index_select(0, kept));
    for (const auto& v : over) {
      if (!v.o->soft_set.defined()) continue;
      const int64_t s = v.o->soft_set.numel();
      auto ws = v.omega.index_select(1, v.o->soft_set);  // [n, s]
      if (cfg.norm_topk_prob) ws = ws / (ws.sum(-1, true) + cfg.topk_norm_eps);
      if (cfg.routed_scaling_factor != 1.0) ws = ws * cfg.routed_scaling_factor;
      rows.push_back(torch::arange(v.first, v.first + v.n, torch::kInt64).repeat_interleave(s));
      experts.push_back(v.o->soft_set.repeat({v.n}));
      weights.push_back(ws.flatten());
    }
    a = Assignments{torch::cat(rows), torch::cat(experts), torch::cat(weights)};
  }
  auto out = run_experts(h, w.experts, a);
  if (w.shared.defined()) {
    auto sh = w.shared(h);
    if (w.shared_gate.defined()) sh = torch::sigmoid(project(h, w.shared_gate)) * sh;
    out = out + sh;
  }
  for (const auto& g : segs) {
    RouterEvent e;
    e.moe_layer = m;
    e.prompt = g.prompt;
    e.probs = probs.narrow(0, g.offset, g.length);
    e.topk_idx = topk_i.narrow(0, g.offset, g.length);
    e.topk_weight = topk_w.narrow(0, g.offset, g.length);
    hook.on_router(e);
  }
  return out;
}

torch::Tensor ModelImpl::run(torch::Tensor x, const torch::Tensor& positions, int first_layer,
                             const std::vector<Segment>& segs, RoutingHook& hook, const KvSink& on_kv,
                             const LayerObserver& on_input) const {
  auto [cos, sin] = rope.tables(positions, st);
  for (int l = first_layer; l < cfg.num_layers; ++l) {
    const LayerWeights& w = layers[l];
    if (on_input) on_input(l, x);
    x = x + attention(w, l, rms_norm(x, w.attn_norm, cfg.rms_norm_eps), cos, sin, segs, on_kv);
    auto h = rms_norm(x, w.mlp_norm, cfg.rms_norm_eps);
    x = x + (w.moe_index >= 0 ? moe(w, h, segs, hook) : w.dense(h));
  }
  if (on_input) on_input(static_cast<int>(cfg.num_layers), x);
  return x;
}

torch::Tensor ModelImpl::head(const torch::Tensor& x, const std::vector<int64_t>& vocab_rows) const {
  auto h = rms_norm(x, final_norm, cfg.rms_norm_eps);
  torch::Tensor w = lm_head;
  if (!vocab_rows.empty()) {
    for (int64_t r : vocab_rows)
      if (r < 0 || r >= cfg.vocab_size)
        throw Error("", "vocab_rows", fmt::format("row {} out of range [0, {})", r, cfg.vocab_size));
    w = lm_head.index_select(0, torch::tensor(vocab_rows, torch::kInt64));
  }
  return project(h, w).to(torch::kFloat32);
}

namespace {

// The built-in capture and per-prompt overrides of forward(), chained to the caller's hook.
struct BatchHook : RoutingHook {
  const std::vector<RouteOverride>* overrides = nullptr;
  RoutingHook* user = nullptr;
  torch::Tensor pathway, topk_idx, topk_weight;  // defined when capturing

  void on_router(const RouterEvent& e) override {
    if (pathway.defined()) {
      const int64_t last = e.probs.size(0) - 1;
      pathway[e.prompt][e.moe_layer].copy_(e.probs[last].detach());
      topk_idx[e.prompt][e.moe_layer].copy_(e.topk_idx[last]);
      topk_weight[e.prompt][e.moe_layer].copy_(e.topk_weight[last].detach());
    }
    if (user) user->on_router(e);
  }
  const LayerOverride* override_last(int prompt, int moe_layer) override {
    if (overrides && prompt < static_cast<int>(overrides->size()))
      for (const auto& lo : (*overrides)[prompt].layers)
        if (lo.moe_layer == moe_layer) return &lo;
    return user ? user->override_last(prompt, moe_layer) : nullptr;
  }
};

// The same override for every sequence of a tail batch.
struct SharedRouteHook : RoutingHook {
  const RouteOverride* route = nullptr;
  const LayerOverride* override_last(int, int moe_layer) override {
    for (const auto& lo : route->layers)
      if (lo.moe_layer == moe_layer) return &lo;
    return nullptr;
  }
};

bool needs_grad(const RouteOverride& r) {
  for (const auto& l : r.layers)
    if (l.omega.requires_grad()) return true;
  return false;
}

}  // namespace

MoeModel::MoeModel(std::unique_ptr<ModelImpl> impl) : impl_(std::move(impl)) {}
MoeModel::~MoeModel() = default;

std::unique_ptr<MoeModel> MoeModel::load(const std::string& folder, Dtype dtype) {
  auto impl = std::make_unique<ModelImpl>();
  impl->cfg = load_config(folder);
  impl->spec = arch_spec(impl->cfg);
  impl->dtype = dtype;
  impl->st = scalar_type(dtype);
  impl->checkpoint = std::make_unique<io::Checkpoint>(io::Checkpoint::open(folder));
  // A checkpoint with more decoder layers than the config would be run without them: refuse.
  for (const auto& name : impl->checkpoint->names()) {
    const auto at = name.find("layers.");
    if (at == std::string::npos || (at > 0 && name[at - 1] != '.')) continue;
    std::size_t end = at + 7;
    int64_t layer = 0;
    while (end < name.size() && name[end] >= '0' && name[end] <= '9') layer = layer * 10 + (name[end++] - '0');
    if (end > at + 7 && end < name.size() && name[end] == '.' && layer >= impl->cfg.num_layers)
      throw Error(folder, name,
                  fmt::format("belongs to decoder layer {}, but config.json says num_hidden_layers = {}", layer,
                              impl->cfg.num_layers));
  }
  torch::NoGradGuard no_grad;
  WeightLoader loader(impl->checkpoint.get(), nullptr, impl->st);
  impl->load(loader);
  return std::unique_ptr<MoeModel>(new MoeModel(std::move(impl)));
}

std::unique_ptr<MoeModel> MoeModel::from_tensors(const ModelConfig& config,
                                                 std::map<std::string, torch::Tensor> tensors, Dtype dtype) {
  auto impl = std::make_unique<ModelImpl>();
  impl->cfg = config;
  impl->spec = arch_spec(config);
  impl->dtype = dtype;
  impl->st = scalar_type(dtype);
  torch::NoGradGuard no_grad;
  WeightLoader loader(nullptr, &tensors, impl->st);
  impl->load(loader);
  return std::unique_ptr<MoeModel>(new MoeModel(std::move(impl)));
}

const ModelConfig& MoeModel::config() const { return impl_->cfg; }
Dtype MoeModel::dtype() const { return impl_->dtype; }
int MoeModel::num_moe_layers() const { return static_cast<int>(impl_->cfg.num_moe_layers()); }
int MoeModel::num_experts() const { return static_cast<int>(impl_->cfg.num_experts); }
int MoeModel::top_k() const { return static_cast<int>(impl_->cfg.top_k); }
std::string MoeModel::fingerprint() const { return impl_->fingerprint; }
std::size_t MoeModel::weight_bytes() const { return impl_->weight_bytes; }
int64_t MoeModel::parameter_count() const { return impl_->params; }
int64_t MoeModel::active_parameter_count() const { return impl_->active_params; }

ForwardResult MoeModel::forward(const std::vector<std::vector<int64_t>>& prompts,
                                const ForwardOptions& opt) const {
  const ModelImpl& M = *impl_;
  const ModelConfig& c = M.cfg;
  const int B = static_cast<int>(prompts.size());
  if (B == 0) throw Error("", "prompts", "no prompt given");
  if (!opt.overrides.empty() && static_cast<int>(opt.overrides.size()) != B)
    throw Error("", "overrides", fmt::format("expected one per prompt ({}), got {}", B, opt.overrides.size()));
  if (opt.embed_layer < -1 || opt.embed_layer > c.num_layers)
    throw Error("", "embed_layer", fmt::format("{} out of range [-1, {}]", opt.embed_layer, c.num_layers));
  const int L = num_moe_layers();
  if (opt.keep_prefix_from < -1 || opt.keep_prefix_from >= L)
    throw Error("", "keep_prefix_from", fmt::format("{} out of range [-1, {})", opt.keep_prefix_from, L));
  if (opt.prefix_tokens < 0)
    throw Error("", "prefix_tokens",
                fmt::format("expected a count of last tokens >= 1 or {} (all), got {}", kAllTokens, opt.prefix_tokens));
  bool grad = false;
  for (int b = 0; b < static_cast<int>(opt.overrides.size()); ++b) {
    M.check_route(opt.overrides[b], fmt::format("override of prompt {}", b));
    grad = grad || needs_grad(opt.overrides[b]);
  }
  torch::AutoGradMode grad_mode(grad);

  ForwardResult res;
  std::vector<Segment> segs(B);
  std::vector<int64_t> ids, pos;
  for (int b = 0; b < B; ++b) {
    M.check_ids(prompts[b], fmt::format("prompt {}", b));
    if (c.max_position_embeddings > 0 && static_cast<int64_t>(prompts[b].size()) > c.max_position_embeddings)
      throw Error(fmt::format("prompt {}", b), "input_ids",
                  fmt::format("{} tokens exceed max_position_embeddings {}", prompts[b].size(),
                              c.max_position_embeddings));
    segs[b].offset = static_cast<int64_t>(ids.size());
    segs[b].length = static_cast<int64_t>(prompts[b].size());
    segs[b].prompt = b;
    res.lengths.push_back(segs[b].length);
    for (std::size_t t = 0; t < prompts[b].size(); ++t) {
      ids.push_back(prompts[b][t]);
      pos.push_back(static_cast<int64_t>(t));
    }
  }
  auto x = M.embed.index_select(0, torch::tensor(ids, torch::kInt64));
  auto positions = torch::tensor(pos, torch::kInt64);

  BatchHook hook;
  hook.overrides = &opt.overrides;
  hook.user = opt.hook;
  if (opt.capture) {
    hook.pathway = torch::zeros({B, L, c.num_experts}, torch::kFloat32);
    hook.topk_idx = torch::zeros({B, L, c.top_k}, torch::kInt64);
    hook.topk_weight = torch::zeros({B, L, c.top_k}, torch::kFloat32);
  }

  int prefix_layer = -1;
  if (opt.keep_prefix_from >= 0) {
    prefix_layer = static_cast<int>(c.decoder_layer_of_moe(opt.keep_prefix_from));
    res.prefixes.resize(B);
    for (int b = 0; b < B; ++b) {
      auto& p = res.prefixes[b];
      p.moe_layer = opt.keep_prefix_from;
      p.decoder_layer = prefix_layer;
      const int64_t T = segs[b].length;
      p.tokens = opt.prefix_tokens == kAllTokens ? T : std::min(opt.prefix_tokens, T);
      p.position = T - p.tokens;
      p.fingerprint = M.fingerprint;
    }
  }
  KvSink on_kv;
  if (prefix_layer >= 0)
    on_kv = [&](int layer, int s, const torch::Tensor& k, const torch::Tensor& v) {
      if (layer < prefix_layer) return;
      auto& p = res.prefixes[s];
      p.keys.push_back(k.narrow(1, 0, p.position).detach().clone());
      p.values.push_back(v.narrow(1, 0, p.position).detach().clone());
    };
  std::vector<std::vector<torch::Tensor>> hidden(opt.hidden_states ? B : 0);
  if (opt.embed_layer >= 0) res.embedding = torch::zeros({B, c.hidden_size}, torch::kFloat32);
  LayerObserver on_input = [&](int layer, const torch::Tensor& xs) {
    if (layer == prefix_layer)
      for (int b = 0; b < B; ++b)
        res.prefixes[b].hidden =
            xs.narrow(0, segs[b].offset + res.prefixes[b].position, res.prefixes[b].tokens).detach().clone();
    const bool want_embed = opt.embed_layer == layer;
    if (!opt.hidden_states && !want_embed) return;
    auto xf = xs.detach().to(torch::kFloat32);
    for (int b = 0; b < B; ++b) {
      auto rows = xf.narrow(0, segs[b].offset, segs[b].length);
      if (want_embed) res.embedding[b].copy_(rows.mean(0));
      if (opt.hidden_states) hidden[b].push_back(rows.clone());
    }
  };
  x = M.run(x, positions, 0, segs, hook, on_kv, on_input);
  for (auto& h : hidden) res.hidden_states.push_back(torch::stack(h));

  if (opt.all_positions) {
    auto logits = M.head(x, opt.vocab_rows);
    int64_t tmax = 0;
    for (const auto& g : segs) tmax = std::max(tmax, g.length);
    std::vector<torch::Tensor> rows;
    for (const auto& g : segs)
      rows.push_back(torch::constant_pad_nd(logits.narrow(0, g.offset, g.length), {0, 0, 0, tmax - g.length}, 0.0));
    res.logits = torch::stack(rows);
  } else {
    std::vector<int64_t> last;
    for (const auto& g : segs) last.push_back(g.offset + g.length - 1);
    res.logits = M.head(x.index_select(0, torch::tensor(last, torch::kInt64)), opt.vocab_rows);
  }
  if (opt.capture) {
    res.pathway = hook.pathway;
    res.topk_idx = hook.topk_idx;
    res.topk_weight = hook.topk_weight;
  }
  return res;
}

torch::Tensor MoeModel::tail(const PrefixState& state, const RouteOverride& route,
                             const std::vector<int64_t>& vocab_rows) const {
  return tail(std::vector<const PrefixState*>{&state}, route, vocab_rows)[0];
}

torch::Tensor MoeModel::tail(const std::vector<const PrefixState*>& states, const RouteOverride& route,
                             const std::vector<int64_t>& vocab_rows) const {
  const ModelImpl& M = *impl_;
  if (states.empty()) throw Error("", "states", "no prefix state given");
  M.check_route(route, "tail override");
  const int first = states[0]->decoder_layer;
  const int64_t layers_kept = M.cfg.num_layers - first;
  std::vector<Segment> segs(states.size());
  std::vector<torch::Tensor> hs;
  std::vector<int64_t> pos, last;
  int64_t rows = 0;
  for (std::size_t i = 0; i < states.size(); ++i) {
    const PrefixState& s = *states[i];
    if (s.fingerprint != M.fingerprint)
      throw Error("", "prefix_state", "comes from a different model (fingerprint " + s.fingerprint + ")");
    if (s.decoder_layer != first || static_cast<int64_t>(s.keys.size()) != layers_kept ||
        s.values.size() != s.keys.size() || !s.hidden.defined())
      throw Error("", "prefix_state", "states of one tail batch must all start at the same MoE layer");
    if (s.tokens < 1 || s.hidden.dim() != 2 || s.hidden.size(0) != s.tokens)
      throw Error("", "prefix_state", fmt::format("state {} holds no hidden state per re-run token", i));
    if (M.cfg.max_position_embeddings > 0 && s.position + s.tokens > M.cfg.max_position_embeddings)
      throw Error("", "prefix_state",
                  fmt::format("state {} reaches position {}, past max_position_embeddings {}", i, s.position + s.tokens,
                              M.cfg.max_position_embeddings));
    for (const auto& lo : route.layers) {
      const int64_t length = s.position + s.tokens;
      const int64_t from = lo.tokens == kAllTokens ? 0 : std::max<int64_t>(0, length - lo.tokens);
      if (from < s.position)
        throw Error("", "override",
                    fmt::format("re-mixes {} of MoE layer {} but prefix state {} re-runs only its last {} of {} tokens",
                                lo.tokens == kAllTokens ? std::string("every position")
                                                        : fmt::format("the last {} positions", lo.tokens),
                                lo.moe_layer, i, s.tokens, length));
    }
    segs[i] = Segment{rows, s.tokens, s.position, &s.keys, &s.values, first, static_cast<int>(i)};
    hs.push_back(s.hidden);
    for (int64_t t = 0; t < s.tokens; ++t) pos.push_back(s.position + t);
    rows += s.tokens;
    last.push_back(rows - 1);
  }
  const int min_layer = route.min_moe_layer();
  if (min_layer >= 0 && min_layer < states[0]->moe_layer)
    throw Error("", "override",
                fmt::format("overrides MoE layer {} but the prefix state starts at MoE layer {}", min_layer,
                            states[0]->moe_layer));
  torch::AutoGradMode grad_mode(needs_grad(route));
  SharedRouteHook hook;
  hook.route = &route;
  auto x = M.run(hs.size() == 1 ? hs[0] : torch::cat(hs, 0), torch::tensor(pos, torch::kInt64), first, segs, hook,
                 {}, {});
  if (rows != static_cast<int64_t>(states.size())) x = x.index_select(0, torch::tensor(last, torch::kInt64));
  return M.head(x, vocab_rows);
}

int64_t shared_prefix_length(const std::vector<ScoreRequest>& group) {
  if (group.size() < 2) return 0;
  std::size_t shortest = group[0].input.size();
  for (const auto& r : group) shortest = std::min(shortest, r.input.size());
  if (shortest == 0) return 0;
  std::size_t n = 0;
  while (n + 1 < shortest) {
    const int64_t t = group[0].input[n];
    bool same = true;
    for (const auto& r : group) same = same && r.input[n] == t;
    if (!same) break;
    ++n;
  }
  return static_cast<int64_t>(n);
}

std::vector<SequenceScore> MoeModel::score_continuations(const std::vector<ScoreRequest>& group) const {
  return score_continuations(std::vector<std::vector<ScoreRequest>>{group})[0];
}

std::vector<std::vector<SequenceScore>> MoeModel::score_continuations(
    const std::vector<std::vector<ScoreRequest>>& groups) const {
  const ModelImpl& M = *impl_;
  const ModelConfig& c = M.cfg;
  torch::NoGradGuard no_grad;
  const int64_t G = static_cast<int64_t>(groups.size());
  std::vector<std::vector<SequenceScore>> out(groups.size());
  std::vector<int64_t> shared(groups.size(), 0);
  std::size_t n_requests = 0;
  for (int64_t g = 0; g < G; ++g) {
    for (std::size_t r = 0; r < groups[g].size(); ++r) {
      const ScoreRequest& q = groups[g][r];
      const std::string where = fmt::format("group {} request {}", g, r);
      M.check_ids(q.input, where);
      if (c.max_position_embeddings > 0 && static_cast<int64_t>(q.input.size()) > c.max_position_embeddings)
        throw Error(where, "input_ids",
                    fmt::format("{} tokens exceed max_position_embeddings {}", q.input.size(), c.max_position_embeddings));
      if (q.targets.empty() || q.targets.size() > q.input.size())
        throw Error(where, "targets",
                    fmt::format("expected 1 to {} scored tokens (the input's length), got {}", q.input.size(),
                                q.targets.size()));
      for (int64_t t : q.targets)
        if (t < 0 || t >= c.vocab_size)
          throw Error(where, "targets", fmt::format("token id {} out of range [0, {})", t, c.vocab_size));
    }
    out[g].resize(groups[g].size());
    n_requests += groups[g].size();
    shared[g] = shared_prefix_length(groups[g]);
  }
  if (n_requests == 0) return out;
  BatchHook hook;  // no capture, no override

  // Position (in its sequence) of the first scored token's predictor.
  auto first_scored = [](const ScoreRequest& q) {
    return static_cast<int64_t>(q.input.size() - q.targets.size());
  };

  // 1. The shared prefixes of all groups that have one, in one forward; their keys/values are kept
  // (all decoder layers), and the scored positions inside them go through the LM head.
  std::vector<std::vector<torch::Tensor>> keys(groups.size()), values(groups.size());
  std::vector<int64_t> prefix_first(groups.size(), 0), prefix_row(groups.size(), 0);
  torch::Tensor prefix_logits;
  {
    std::vector<Segment> segs;
    std::vector<int64_t> seg_group, ids, pos, head_rows;
    for (int64_t g = 0; g < G; ++g) {
      if (shared[g] == 0) continue;
      Segment s;
      s.offset = static_cast<int64_t>(ids.size());
      s.length = shared[g];
      s.prompt = static_cast<int>(segs.size());
      int64_t p0 = shared[g];
      for (const auto& q : groups[g]) p0 = std::min(p0, first_scored(q));
      prefix_first[g] = p0;
      prefix_row[g] = static_cast<int64_t>(head_rows.size());
      for (int64_t p = p0; p < shared[g]; ++p) head_rows.push_back(s.offset + p);
      for (int64_t t = 0; t < shared[g]; ++t) {
        ids.push_back(groups[g][0].input[t]);
        pos.push_back(t);
      }
      segs.push_back(s);
      seg_group.push_back(g);
      keys[g].resize(c.num_layers);
      values[g].resize(c.num_layers);
    }
    if (!segs.empty()) {
      KvSink on_kv = [&](int layer, int s, const torch::Tensor& k, const torch::Tensor& v) {
        keys[seg_group[s]][layer] = k.contiguous();
        values[seg_group[s]][layer] = v.contiguous();
      };
      auto x = M.embed.index_select(0, torch::tensor(ids, torch::kInt64));
      x = M.run(x, torch::tensor(pos, torch::kInt64), 0, segs, hook, on_kv, {});
      if (!head_rows.empty()) prefix_logits = M.head(x.index_select(0, torch::tensor(head_rows, torch::kInt64)), {});
    }
  }

  // 2. Every suffix of every group in one forward on top of its group's cache.
  std::vector<Segment> segs;
  std::vector<int64_t> ids, pos, head_rows;
  std::vector<int64_t> suffix_row(n_requests, 0);
  {
    std::size_t i = 0;
    for (int64_t g = 0; g < G; ++g)
      for (const auto& q : groups[g]) {
        Segment s;
        s.offset = static_cast<int64_t>(ids.size());
        s.length = static_cast<int64_t>(q.input.size()) - shared[g];
        s.past = shared[g];
        s.past_keys = &keys[g];
        s.past_values = &values[g];
        s.prompt = static_cast<int>(i);
        suffix_row[i] = static_cast<int64_t>(head_rows.size());
        for (int64_t p = std::max(shared[g], first_scored(q)); p < static_cast<int64_t>(q.input.size()); ++p)
          head_rows.push_back(s.offset + p - shared[g]);
        for (int64_t p = shared[g]; p < static_cast<int64_t>(q.input.size()); ++p) {
          ids.push_back(q.input[p]);
          pos.push_back(p);
        }
        segs.push_back(s);
        ++i;
      }
  }
  auto x = M.embed.index_select(0, torch::tensor(ids, torch::kInt64));
  x = M.run(x, torch::tensor(pos, torch::kInt64), 0, segs, hook, {}, {});
  const torch::Tensor suffix_logits = M.head(x.index_select(0, torch::tensor(head_rows, torch::kInt64)), {});

  // 3. Per sequence: its scored rows (from the prefix pass, then from its suffix), in float64.
  std::size_t i = 0;
  for (int64_t g = 0; g < G; ++g)
    for (std::size_t r = 0; r < groups[g].size(); ++r, ++i) {
      const ScoreRequest& q = groups[g][r];
      const int64_t p0 = first_scored(q), len = static_cast<int64_t>(q.input.size());
      std::vector<torch::Tensor> parts;
      if (p0 < shared[g])
        parts.push_back(prefix_logits.narrow(0, prefix_row[g] + (p0 - prefix_first[g]), shared[g] - p0));
      const int64_t from = std::max(shared[g], p0);
      parts.push_back(suffix_logits.narrow(0, suffix_row[i], len - from));
      const auto rows = (parts.size() == 1 ? parts[0] : torch::cat(parts, 0)).to(torch::kFloat64);
      const auto target = torch::tensor(q.targets, torch::kInt64);
      const auto logp = torch::log_softmax(rows, -1);
      out[g][r].loglik = logp.gather(1, target.unsqueeze(1)).sum().item<double>();
      out[g][r].is_greedy = torch::equal(rows.argmax(-1), target);
    }
  return out;
}

torch::Tensor MoeModel::decode(KvCache& cache, const std::vector<int64_t>& tokens) const {
  const ModelImpl& M = *impl_;
  M.check_ids(tokens, "decode");
  torch::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(tokens.size());
  // Positions past the context length have no trained RoPE phase: refuse instead of answering.
  if (M.cfg.max_position_embeddings > 0 && cache.length + n > M.cfg.max_position_embeddings)
    throw Error("", "decode",
                fmt::format("{} cached + {} new tokens exceed max_position_embeddings {}", cache.length, n,
                            M.cfg.max_position_embeddings));
  if (cache.keys.empty()) {
    cache.keys.resize(M.cfg.num_layers);
    cache.values.resize(M.cfg.num_layers);
  }
  std::vector<Segment> segs{Segment{0, n, cache.length, &cache.keys, &cache.values, 0, 0}};
  auto x = M.embed.index_select(0, torch::tensor(tokens, torch::kInt64));
  auto positions = torch::arange(cache.length, cache.length + n, torch::kInt64);
  std::vector<torch::Tensor> new_keys(M.cfg.num_layers), new_values(M.cfg.num_layers);
  KvSink on_kv = [&](int layer, int, const torch::Tensor& k, const torch::Tensor& v) {
    new_keys[layer] = k.contiguous();
    new_values[layer] = v.contiguous();
  };
  BatchHook hook;
  x = M.run(x, positions, 0, segs, hook, on_kv, {});
  cache.keys = std::move(new_keys);
  cache.values = std::move(new_values);
  cache.length += n;
  return M.head(x[n - 1].unsqueeze(0), {})[0];
}

std::vector<int64_t> MoeModel::generate(const std::vector<int64_t>& prompt, int max_tokens,
                                        const std::function<bool(int64_t)>& on_token) const {
  std::vector<int64_t> out;
  KvCache cache;
  auto logits = decode(cache, prompt);
  const auto& eos = impl_->cfg.eos_token_ids;
  for (int i = 0; i < max_tokens; ++i) {
    const int64_t next = logits.argmax().item<int64_t>();
    out.push_back(next);
    if (on_token && !on_token(next)) break;
    if (std::find(eos.begin(), eos.end(), next) != eos.end()) break;
    if (i + 1 < max_tokens) logits = decode(cache, {next});
  }
  return out;
}

}  // namespace c3po::model
