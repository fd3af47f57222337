#include <fmt/core.h>

#include <cmath>
#include <cstring>
#include <map>

#include <ATen/CPUGeneratorImpl.h>

#include "io/error.h"
#include "io/hash.h"
#include "model/impl.h"

// Loading: tensors by name from a checkpoint (memory-mapped) or from memory, the shape checks,
// the fingerprint and the parameter counts.
namespace c3po::model {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

// Tensors by name, from a checkpoint (memory-mapped) or from memory; checks shape and dtype.
// Random weights for MoeModel::random: slices of one seeded pool of normal numbers (filling
// billions of numbers with randn would dominate the load), scaled like a trained model's.
struct RandomPool {
  // Its own generator: making a random model leaves the global one untouched.
  explicit RandomPool(uint64_t seed)
      : pool(at::randn({kSize}, at::detail::createCPUGenerator(seed), torch::TensorOptions(torch::kFloat32))) {}
  static constexpr int64_t kSize = int64_t{1} << 24;
  torch::Tensor pool;
  int64_t cursor = 0;
};

enum class Init { Weight, Router, Embedding };

class WeightLoader {
 public:
  WeightLoader(const io::Checkpoint* ck, std::map<std::string, torch::Tensor>* mem, torch::ScalarType st)
      : ck_(ck), mem_(mem), st_(st) {}
  WeightLoader(RandomPool* random, torch::ScalarType st) : ck_(nullptr), mem_(nullptr), random_(random), st_(st) {}

  bool has(const std::string& name) const { return ck_ ? ck_->has(name) : mem_->count(name) != 0; }

  torch::Tensor get(const std::string& name, const std::vector<int64_t>& shape, Init init = Init::Weight) {
    torch::Tensor t;
    if (random_) {
      t = random_tensor(name, shape, init);
    } else if (ck_) {
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
  // Norm weights 1, biases 0, matrices N(0, 1/fan_in); routers with gain 4 so that routing is far
  // from uniform, embeddings N(0, 1), as in trained models.
  torch::Tensor random_tensor(const std::string& name, const std::vector<int64_t>& shape, Init init) {
    if (shape.size() == 1) {
      const bool bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
      return bias ? torch::zeros(shape, st_) : torch::ones(shape, st_);
    }
    const int64_t cols = shape.back();
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    auto t = torch::empty({n}, st_);
    for (int64_t done = 0; done < n;) {
      const int64_t take = std::min(n - done, RandomPool::kSize - random_->cursor);
      t.narrow(0, done, take).copy_(random_->pool.narrow(0, random_->cursor, take));
      done += take;
      random_->cursor = (random_->cursor + take + 7919) % (RandomPool::kSize - 1);
    }
    const double scale = init == Init::Embedding ? 1.0 : (init == Init::Router ? 4.0 : 1.0) / std::sqrt(double(cols));
    return t.mul_(scale).view(shape);
  }

  const io::Checkpoint* ck_;
  std::map<std::string, torch::Tensor>* mem_;
  RandomPool* random_ = nullptr;
  torch::ScalarType st_;
  std::vector<std::pair<std::string, torch::Tensor>> loaded_;
};

namespace {

// A checkpoint with more decoder layers than the config would run without them: refuse.
void check_layer_count(const io::Checkpoint& ck, const ModelConfig& c, const std::string& folder) {
  for (const auto& name : ck.names()) {
    const auto at = name.find("layers.");
    if (at == std::string::npos || (at > 0 && name[at - 1] != '.')) continue;
    std::size_t end = at + 7;
    int64_t layer = 0;
    while (end < name.size() && name[end] >= '0' && name[end] <= '9') layer = layer * 10 + (name[end++] - '0');
    if (end > at + 7 && end < name.size() && name[end] == '.' && layer >= c.num_layers)
      throw Error(folder, name,
                  fmt::format("belongs to decoder layer {}, but config.json says num_hidden_layers = {}", layer,
                              c.num_layers));
  }
}

}  // namespace

// Builds every layer's weights from the architecture's tensor names; shapes follow from the config.
void ModelImpl::load(WeightLoader& w) {
  const auto& c = cfg;
  const int64_t H = c.hidden_size, d = c.head_dim, nh = c.num_heads, nkv = c.num_kv_heads;
  embed = w.get(names.embed, {c.vocab_size, H}, Init::Embedding);
  final_norm = w.get(names.final_norm, {H});
  lm_head = c.tie_word_embeddings ? embed : w.get(names.lm_head, {c.vocab_size, H});
  auto mlp = [&](const std::string& prefix, int64_t width) {
    return SwiGlu{w.get(prefix + "gate_proj.weight", {width, H}), w.get(prefix + "up_proj.weight", {width, H}),
                  w.get(prefix + "down_proj.weight", {H, width})};
  };
  int moe_index = 0;
  layers.resize(c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    auto n = [&](const std::string& t) { return tensor_name(t, i); };
    LayerWeights& L = layers[i];
    L.attn_norm = w.get(n(names.attn_norm), {H});
    L.mlp_norm = w.get(n(names.mlp_norm), {H});
    L.wq = w.get(n(names.q_proj) + ".weight", {nh * d, H});
    L.wk = w.get(n(names.k_proj) + ".weight", {nkv * d, H});
    L.wv = w.get(n(names.v_proj) + ".weight", {nkv * d, H});
    L.wo = w.get(n(names.o_proj) + ".weight", {H, nh * d});
    if (c.o_bias) L.bo = w.get(n(names.o_proj) + ".bias", {H});
    if (c.qkv_bias) {
      L.bq = w.get(n(names.q_proj) + ".bias", {nh * d});
      L.bk = w.get(n(names.k_proj) + ".bias", {nkv * d});
      L.bv = w.get(n(names.v_proj) + ".bias", {nkv * d});
    }
    if (c.qk_norm == QkNorm::Full) {
      L.q_norm = w.get(n(names.q_norm), {nh * d});
      L.k_norm = w.get(n(names.k_norm), {nkv * d});
    } else if (c.qk_norm == QkNorm::PerHead) {
      L.q_norm = w.get(n(names.q_norm), {d});
      L.k_norm = w.get(n(names.k_norm), {d});
    }
    if (c.layer_is_moe[i]) {
      L.moe_index = moe_index++;
      L.router = w.get(n(names.router), {c.num_experts, H}, Init::Router);
      const int64_t F = c.moe_intermediate_size;
      for (int64_t e = 0; e < c.num_experts; ++e) {
        L.experts.push_back(SwiGlu{w.get(tensor_name(names.expert_gate, i, e), {F, H}),
                                   w.get(tensor_name(names.expert_up, i, e), {F, H}),
                                   w.get(tensor_name(names.expert_down, i, e), {H, F})});
      }
      if (c.shared_expert_intermediate_size > 0) L.shared = mlp(n(names.shared_prefix), c.shared_expert_intermediate_size);
      if (c.shared_expert_gated) L.shared_gate = w.get(n(names.shared_gate), {1, H});
    } else {
      L.dense = mlp(n(names.dense_prefix), c.intermediate_size);
    }
  }
  rope = Rope{c.rope_theta, d};
  attn_scale = 1.0 / std::sqrt(static_cast<double>(d));

  io::Fnv1a64 f;
  f.add_field(c.model_type);
  for (int64_t v : {c.vocab_size, H, c.num_layers, nh, nkv, d, c.intermediate_size, c.moe_intermediate_size,
                    c.num_experts, c.top_k, c.shared_expert_intermediate_size})
    f.add(&v, sizeof v);
  for (bool b : c.layer_is_moe) f.add(&b, 1);
  for (double v : {c.rms_norm_eps, c.rope_theta, c.clip_qkv.value_or(0.0)}) f.add(&v, sizeof v);
  unsigned char flags[] = {c.norm_topk_prob, c.shared_expert_gated, c.qkv_bias, c.o_bias,
                           static_cast<unsigned char>(c.qk_norm), c.tie_word_embeddings};
  f.add(flags, sizeof flags);
  for (const auto& [name, t] : w.loaded()) {
    f.add_field(name);
    f.add(t.sizes().data(), t.dim() * sizeof(int64_t));
    f.add_field(c10::toString(t.scalar_type()));
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
    if (!(c.tie_word_embeddings && name == names.embed)) weight_bytes += nb;
    params += t.numel();
  }
  fingerprint = fmt::format("{:016x}", f.value());
  const int64_t per_expert = 3 * c.moe_intermediate_size * H;
  active_params = params - c.num_moe_layers() * (c.num_experts - c.top_k) * per_expert;
}


Dtype parse_dtype(const std::string& name) {
  if (name == "f32" || name == "float32") return Dtype::F32;
  if (name == "bf16" || name == "bfloat16") return Dtype::BF16;
  throw Error("", "dtype", "expected f32 or bf16, got '" + name + "'");
}

const char* dtype_name(Dtype d) { return d == Dtype::F32 ? "f32" : "bf16"; }

std::size_t PrefixState::bytes() const {
  std::size_t n = hidden.defined() ? hidden.nbytes() : 0;
  for (const auto& t : keys) n += t.nbytes();
  for (const auto& t : values) n += t.nbytes();
  return n;
}

MoeModel::MoeModel(std::unique_ptr<ModelImpl> impl) : impl_(std::move(impl)) {}
MoeModel::~MoeModel() = default;

namespace {

// An engine for this config and dtype with no weights yet.
std::unique_ptr<ModelImpl> empty_impl(const ModelConfig& config, Dtype dtype) {
  auto impl = std::make_unique<ModelImpl>();
  impl->cfg = config;
  impl->names = architecture_of(config).tensor_names(config);
  impl->dtype = dtype;
  impl->st = scalar_type(dtype);
  return impl;
}

}  // namespace

std::unique_ptr<MoeModel> MoeModel::load(const std::string& folder, Dtype dtype) {
  auto impl = empty_impl(load_config(folder), dtype);
  impl->checkpoint = std::make_unique<io::Checkpoint>(io::Checkpoint::open(folder));
  check_layer_count(*impl->checkpoint, impl->cfg, folder);
  torch::NoGradGuard no_grad;
  WeightLoader loader(impl->checkpoint.get(), nullptr, impl->st);
  impl->load(loader);
  return std::unique_ptr<MoeModel>(new MoeModel(std::move(impl)));
}

std::unique_ptr<MoeModel> MoeModel::from_tensors(const ModelConfig& config,
                                                 std::map<std::string, torch::Tensor> tensors, Dtype dtype) {
  auto impl = empty_impl(config, dtype);
  torch::NoGradGuard no_grad;
  WeightLoader loader(nullptr, &tensors, impl->st);
  impl->load(loader);
  return std::unique_ptr<MoeModel>(new MoeModel(std::move(impl)));
}

std::unique_ptr<MoeModel> MoeModel::random(const ModelConfig& config, Dtype dtype, uint64_t seed) {
  auto impl = empty_impl(config, dtype);
  torch::NoGradGuard no_grad;
  RandomPool pool(seed);
  WeightLoader loader(&pool, impl->st);
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

}  // namespace c3po::model
