#include "embed/sentence_encoder.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "embed/layout.h"
#include "io/error.h"
#include "io/files.h"
#include "io/hash.h"
#include "io/safetensors.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace c3po::embed {
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const std::string& path) {
  io::require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "", "cannot open (missing or unreadable)");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Python's str.strip(): Unicode white space plus the separators \x1c-\x1f.
std::string strip(const std::string& text) {
  namespace u = tokenizer::unicode;
  auto is_space = [](char32_t c) { return u::is_white_space(c) || (c >= 0x1C && c <= 0x1F); };
  std::size_t begin = text.size(), end = 0;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t at = i;
    if (!is_space(u::next_code_point(text, i))) {
      begin = std::min(begin, at);
      end = i;
    }
  }
  return begin < end ? text.substr(begin, end - begin) : std::string();
}

// tokenizer.json as transformers uses it for sentence-transformers: the truncation and padding
// saved in the file (all-MiniLM-L6-v2: 128 tokens, fixed padding) are replaced by the call's own
// settings, so they are dropped here and max_seq_length applies instead.
tokenizer::Tokenizer load_tokenizer(const std::string& path) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(read_bytes(path));
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(path, "", "malformed JSON at " + io::json_error_text(e));
  } catch (const nlohmann::json::exception& e) {  // a number beyond a double (out_of_range)
    throw Error(path, "", "malformed JSON: " + io::json_error_text(e));
  }
  if (j.is_object()) {
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
  }
  const fs::path config = fs::path(path).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  return tokenizer::Tokenizer::from_json(j.dump(), fs::exists(config, ec) ? read_bytes(config.string()) : std::string(),
                                         path);
}

struct EncoderLayer {
  at::Tensor qkv_w, qkv_b, attn_out_w, attn_out_b, attn_ln_w, attn_ln_b;
  at::Tensor up_w, up_b, down_w, down_b, out_ln_w, out_ln_b;
};

// Reads the BERT weights by name (with the checkpoint's prefix, e.g. "bert."), checking shapes and
// dtypes, into owned float32 tensors; hashes a sample of every tensor for the encoder's name.
class WeightReader {
 public:
  WeightReader(const io::Checkpoint& ck, io::Fnv1a64& hash) : ck_(ck), hash_(hash) {
    std::error_code ec;
    const fs::path index = fs::path(ck.path()) / "model.safetensors.index.json";
    file_ = fs::exists(index, ec) ? index.string() : (fs::path(ck.path()) / "model.safetensors").string();
    const std::string anchor = "embeddings.word_embeddings.weight";
    std::vector<std::string> prefixes;
    for (const auto& name : ck.names())
      if (name.size() >= anchor.size() && name.compare(name.size() - anchor.size(), anchor.size(), anchor) == 0)
        prefixes.push_back(name.substr(0, name.size() - anchor.size()));
    if (prefixes.empty()) throw Error(file_, anchor, "tensor is missing (also looked for prefixed names such as bert." + anchor + ")");
    // A plain BertModel layout wins over a task head's "bert." copy when both are present.
    std::sort(prefixes.begin(), prefixes.end(), [](const auto& a, const auto& b) { return a.size() < b.size(); });
    if (prefixes.size() > 1 && prefixes[0].size() == prefixes[1].size())
      throw Error(file_, anchor, "found under several prefixes (\"" + prefixes[0] + "\", \"" + prefixes[1] + "\")");
    prefix_ = prefixes[0];
  }

  at::Tensor get(const std::string& name, const std::vector<int64_t>& shape) {
    std::string full = prefix_ + name;
    // Checkpoints converted from TensorFlow call the LayerNorm parameters gamma and beta.
    const std::string ln = "LayerNorm.";
    if (!ck_.has(full) && name.size() > ln.size() && name.find(ln) != std::string::npos) {
      const std::string leaf = name.substr(name.rfind('.') + 1);
      const std::string old = prefix_ + name.substr(0, name.rfind('.') + 1) + (leaf == "weight" ? "gamma" : "beta");
      if (ck_.has(old)) full = old;
    }
    if (!ck_.has(full)) throw Error(file_, full, "tensor is missing from the checkpoint");
    const io::TensorView& view = ck_.get(full);
    if (view.shape != shape)
      throw Error(view.file, full, "expected shape " + shape_str(shape) + " (from config.json), got " + shape_str(view.shape));
    at::ScalarType st;
    switch (view.dtype) {
      case io::DType::F32: st = at::kFloat; break;
      case io::DType::F16: st = at::kHalf; break;
      case io::DType::BF16: st = at::kBFloat16; break;
      case io::DType::F64: st = at::kDouble; break;
      default:
        throw Error(view.file, full, std::string("expected a floating-point dtype (F32, F16, BF16, F64), got ") +
                                         io::dtype_name(view.dtype));
    }
    at::Tensor raw = at::empty(shape, at::TensorOptions().dtype(st));
    std::memcpy(raw.data_ptr(), view.data, view.nbytes);
    hash_.add_field(full);
    hash_.add_field(shape_str(shape));
    const std::size_t sample = std::min<std::size_t>(view.nbytes, 256);
    hash_.add(view.data, sample);
    hash_.add(view.data + view.nbytes - sample, sample);
    return st == at::kFloat ? raw : raw.to(at::kFloat);
  }

 private:
  const io::Checkpoint& ck_;
  io::Fnv1a64& hash_;
  std::string file_;  // model.safetensors or its shard index, for error messages
  std::string prefix_;
};

}  // namespace

struct SentenceEncoder::Impl {
  std::string folder_name;
  SentenceTransformerLayout layout;
  BertConfig cfg;
  tokenizer::Tokenizer tok;
  bool normalize = false;
  int max_len = 0;
  int64_t tokens_per_forward = 0;
  std::string name;
  at::Tensor word_emb, pos_emb, type_emb_row, emb_ln_w, emb_ln_b;
  std::vector<EncoderLayer> layers;

  explicit Impl(tokenizer::Tokenizer t) : tok(std::move(t)) {}

  std::vector<std::int32_t> ids_of(const std::string& text) const;
  at::Tensor hidden_states(const at::Tensor& ids, const std::vector<int64_t>& lengths) const;
  at::Tensor pool(const at::Tensor& hidden, const std::vector<int64_t>& lengths) const;
};

std::vector<std::int32_t> SentenceEncoder::Impl::ids_of(const std::string& raw) const {
  std::string text = strip(raw);
  if (layout.do_lower_case) text = tokenizer::unicode::lowercase(text);
  std::vector<std::int32_t> with = tok.encode(text, true);
  if (static_cast<int>(with.size()) > max_len) {
    // Truncate the text's own tokens and keep the special tokens around them, as tokenizers does.
    const std::vector<std::int32_t> plain = tok.encode(text, false);
    if (with.size() < plain.size())
      throw Error(tok.source(), "post_processor", "adding special tokens removed some of the text's tokens");
    const std::size_t added = with.size() - plain.size();
    std::size_t before = added + 1;
    for (std::size_t b = 0; b <= added && before > added; ++b)
      if (std::equal(plain.begin(), plain.end(), with.begin() + b)) before = b;
    if (before > added)
      throw Error(tok.source(), "post_processor",
                  "the special tokens do not surround the text's tokens, so it cannot be truncated");
    const std::size_t keep = max_len - added;
    std::vector<std::int32_t> out(with.begin(), with.begin() + before);
    if (layout.truncate_left)
      out.insert(out.end(), plain.end() - keep, plain.end());
    else
      out.insert(out.end(), plain.begin(), plain.begin() + keep);
    out.insert(out.end(), with.begin() + before + plain.size(), with.end());
    with = std::move(out);
  }
  for (std::int32_t id : with)
    if (id < 0 || id >= cfg.vocab)
      throw Error(tok.source(), "model.vocab",
                  "token id " + std::to_string(id) + " is outside the " + std::to_string(cfg.vocab) +
                      "-row word embedding of the checkpoint");
  return with;
}

at::Tensor SentenceEncoder::Impl::hidden_states(const at::Tensor& ids, const std::vector<int64_t>& lengths) const {
  const int64_t B = ids.size(0), L = ids.size(1), H = cfg.hidden, nh = cfg.heads, hd = H / nh;
  at::Tensor x = at::embedding(word_emb, ids) + pos_emb.narrow(0, 0, L) + type_emb_row;
  x = at::layer_norm(x, {H}, emb_ln_w, emb_ln_b, cfg.layer_norm_eps);

  // Additive mask over keys: 0 for tokens, the float minimum for padding (as modeling_bert).
  at::Tensor key_mask;
  if (*std::min_element(lengths.begin(), lengths.end()) < L) {
    at::Tensor len = at::tensor(lengths, at::kLong).view({B, 1});
    at::Tensor pad = at::arange(L, at::kLong).view({1, L}) >= len;
    key_mask = at::zeros({B, L}, at::kFloat).masked_fill_(pad, std::numeric_limits<float>::lowest()).view({B, 1, 1, L});
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  for (const EncoderLayer& layer : layers) {
    at::Tensor qkv = at::linear(x, layer.qkv_w, layer.qkv_b).view({B, L, 3, nh, hd}).permute({2, 0, 3, 1, 4});
    at::Tensor scores = at::matmul(qkv[0], qkv[1].transpose(-1, -2)).mul_(scale);
    if (key_mask.defined()) scores.add_(key_mask);
    at::Tensor context = at::matmul(at::softmax(scores, -1), qkv[2]).transpose(1, 2).reshape({B, L, H});
    at::Tensor attn = at::layer_norm(at::linear(context, layer.attn_out_w, layer.attn_out_b).add_(x), {H},
                                     layer.attn_ln_w, layer.attn_ln_b, cfg.layer_norm_eps);
    at::Tensor inner = at::linear(attn, layer.up_w, layer.up_b);
    switch (cfg.activation) {
      case Activation::GeluErf: inner = at::gelu(inner); break;
      case Activation::GeluTanh: inner = at::gelu(inner, "tanh"); break;
      case Activation::Relu: inner = at::relu(inner); break;
      case Activation::Silu: inner = at::silu(inner); break;
    }
    x = at::layer_norm(at::linear(inner, layer.down_w, layer.down_b).add_(attn), {H}, layer.out_ln_w,
                       layer.out_ln_b, cfg.layer_norm_eps);
  }
  return x;
}

// sentence-transformers' Pooling.forward on right-padded rows.
at::Tensor SentenceEncoder::Impl::pool(const at::Tensor& hidden, const std::vector<int64_t>& lengths) const {
  const int64_t B = hidden.size(0), L = hidden.size(1), H = hidden.size(2);
  at::Tensor len = at::tensor(lengths, at::kLong).view({B, 1});
  at::Tensor valid = at::arange(L, at::kLong).view({1, L}) < len;  // [B, L]
  at::Tensor mask = valid.to(at::kFloat).unsqueeze(-1);              // [B, L, 1]
  std::vector<at::Tensor> parts;
  for (Pooling p : layout.pooling) {
    switch (p) {
      case Pooling::Cls: parts.push_back(hidden.select(1, 0)); break;
      case Pooling::Max: parts.push_back(hidden.masked_fill(valid.logical_not().unsqueeze(-1), -1e9).amax(1)); break;
      case Pooling::Mean:
        parts.push_back((hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9));
        break;
      case Pooling::MeanSqrtLen:
        parts.push_back((hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9).sqrt());
        break;
      case Pooling::WeightedMean: {
        at::Tensor w = mask * at::arange(1, L + 1, at::kFloat).view({1, L, 1});
        parts.push_back((hidden * w).sum(1) / w.sum(1).clamp_min(1e-9));
        break;
      }
      case Pooling::LastToken:
        parts.push_back(hidden.gather(1, (len - 1).clamp_min(0).view({B, 1, 1}).expand({B, 1, H})).squeeze(1));
        break;
    }
  }
  at::Tensor out = parts.size() == 1 ? parts[0] : at::cat(parts, 1);
  if (normalize) out = out / out.norm(2, at::IntArrayRef{1}, true).clamp_min(1e-12);
  return out;
}

std::unique_ptr<SentenceEncoder> SentenceEncoder::load(const std::string& folder, const EncoderOptions& options) {
  if (options.tokens_per_forward <= 0)
    throw Error("<options>", "tokens_per_forward", "expected a positive number, got " + std::to_string(options.tokens_per_forward));
  SentenceTransformerLayout layout = read_layout(folder);
  const fs::path dir(layout.transformer_dir);
  const std::string config_path = (dir / "config.json").string();
  BertConfig cfg = read_bert_config(config_path);
  const std::string tokenizer_path = (dir / "tokenizer.json").string();
  std::error_code ec;
  if (!fs::exists(tokenizer_path, ec))
    throw Error(tokenizer_path, "", "missing (a sentence encoder needs the fast tokenizer's tokenizer.json)");
  auto impl = std::make_unique<Impl>(load_tokenizer(tokenizer_path));
  if (impl->tok.vocab_size() > cfg.vocab)
    throw Error(tokenizer_path, "model.vocab",
                "has ids up to " + std::to_string(impl->tok.vocab_size() - 1) + " but config.json vocab_size is " +
                    std::to_string(cfg.vocab));

  if (layout.pooling_dimension != 0 && layout.pooling_dimension != cfg.hidden)
    throw Error(layout.pooling_file, "word_embedding_dimension",
                "is " + std::to_string(layout.pooling_dimension) + " but the model's hidden_size is " +
                    std::to_string(cfg.hidden));

  // max_seq_length: the option, else sentence_bert_config.json, else min(max_position_embeddings,
  // tokenizer model_max_length), as sentence-transformers' Transformer module decides it.
  int max_len = cfg.max_positions;
  std::string max_len_file = config_path, max_len_field = "max_position_embeddings";
  if (options.max_seq_length) {
    max_len = *options.max_seq_length;
    max_len_file = "<options>";
    max_len_field = "max_seq_length";
  } else if (layout.max_seq_length) {
    max_len = *layout.max_seq_length;
    max_len_file = layout.max_seq_length_file;
    max_len_field = "max_seq_length";
  } else if (layout.tokenizer_max_length && *layout.tokenizer_max_length < cfg.max_positions) {
    max_len = static_cast<int>(*layout.tokenizer_max_length);
    max_len_file = (dir / "tokenizer_config.json").string();
    max_len_field = "model_max_length";
  }
  if (max_len > cfg.max_positions)
    throw Error(max_len_file, max_len_field,
                std::to_string(max_len) + " exceeds the model's max_position_embeddings " + std::to_string(cfg.max_positions));
  const std::size_t specials = impl->tok.encode("", true).size();
  if (max_len <= static_cast<int>(specials))
    throw Error(max_len_file, max_len_field,
                std::to_string(max_len) + " leaves no room for text beside the " + std::to_string(specials) + " special tokens");

  io::Fnv1a64 hash(io::Fnv1a64::kStandardBasis);
  hash.add_field(read_bytes(config_path));
  hash.add_field(read_bytes(tokenizer_path));
  hash.add_field(layout.digest_text);
  std::string settings = "max_len=" + std::to_string(max_len) + ";lower=" + std::to_string(layout.do_lower_case) +
                         ";left=" + std::to_string(layout.truncate_left) + ";pool=";
  for (Pooling p : layout.pooling) settings += std::string(pooling_name(p)) + "+";
  impl->normalize = layout.normalize || options.always_normalize;
  settings += ";norm=" + std::to_string(impl->normalize);
  hash.add_field(settings);

  {
    const io::Checkpoint ck = io::Checkpoint::open(layout.transformer_dir);
    WeightReader w(ck, hash);
    const int64_t H = cfg.hidden, I = cfg.intermediate;
    impl->word_emb = w.get("embeddings.word_embeddings.weight", {cfg.vocab, H});
    impl->pos_emb = w.get("embeddings.position_embeddings.weight", {cfg.max_positions, H});
    impl->type_emb_row = w.get("embeddings.token_type_embeddings.weight", {cfg.type_vocab, H})[0].clone();
    impl->emb_ln_w = w.get("embeddings.LayerNorm.weight", {H});
    impl->emb_ln_b = w.get("embeddings.LayerNorm.bias", {H});
    for (int i = 0; i < cfg.layers; ++i) {
      const std::string p = "encoder.layer." + std::to_string(i) + ".";
      EncoderLayer l;
      l.qkv_w = at::cat({w.get(p + "attention.self.query.weight", {H, H}), w.get(p + "attention.self.key.weight", {H, H}),
                         w.get(p + "attention.self.value.weight", {H, H})});
      l.qkv_b = at::cat({w.get(p + "attention.self.query.bias", {H}), w.get(p + "attention.self.key.bias", {H}),
                         w.get(p + "attention.self.value.bias", {H})});
      l.attn_out_w = w.get(p + "attention.output.dense.weight", {H, H});
      l.attn_out_b = w.get(p + "attention.output.dense.bias", {H});
      l.attn_ln_w = w.get(p + "attention.output.LayerNorm.weight", {H});
      l.attn_ln_b = w.get(p + "attention.output.LayerNorm.bias", {H});
      l.up_w = w.get(p + "intermediate.dense.weight", {I, H});
      l.up_b = w.get(p + "intermediate.dense.bias", {I});
      l.down_w = w.get(p + "output.dense.weight", {H, I});
      l.down_b = w.get(p + "output.dense.bias", {H});
      l.out_ln_w = w.get(p + "output.LayerNorm.weight", {H});
      l.out_ln_b = w.get(p + "output.LayerNorm.bias", {H});
      impl->layers.push_back(std::move(l));
    }
  }

  std::string base = fs::path(folder).lexically_normal().filename().string();
  if (base.empty() || base == ".") base = fs::path(folder).lexically_normal().parent_path().filename().string();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash.value()));
  impl->name = "bert:" + base + ":" + hex;
  impl->folder_name = base;
  impl->layout = std::move(layout);
  impl->cfg = cfg;
  impl->max_len = max_len;
  impl->tokens_per_forward = options.tokens_per_forward;
  return std::unique_ptr<SentenceEncoder>(new SentenceEncoder(std::move(impl)));
}

SentenceEncoder::SentenceEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SentenceEncoder::~SentenceEncoder() = default;

std::vector<std::vector<std::int32_t>> SentenceEncoder::token_ids(const std::vector<std::string>& texts) const {
  std::vector<std::vector<std::int32_t>> out;
  out.reserve(texts.size());
  for (const auto& t : texts) out.push_back(impl_->ids_of(t));
  return out;
}

at::Tensor SentenceEncoder::encode(const std::vector<std::string>& texts, int batch) const {
  if (batch <= 0) throw Error("", "batch", "expected a positive batch size, got " + std::to_string(batch));
  at::NoGradGuard no_grad;
  const auto ids = token_ids(texts);
  at::Tensor out = at::empty({static_cast<int64_t>(texts.size()), dim()}, at::kFloat);
  // Longest first, so that each batch pads to a similar length; rows go back to their places.
  std::vector<int64_t> order(texts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ids[a].size() > ids[b].size(); });
  for (std::size_t start = 0, end = 0; start < order.size(); start = end) {
    // At most `batch` texts and about tokens_per_forward tokens per forward: beyond that the
    // activations leave the cache and a larger forward gets slower per token.
    const int64_t L = static_cast<int64_t>(ids[order[start]].size());
    const int64_t group = std::clamp<int64_t>(impl_->tokens_per_forward / L, 1, batch);
    end = std::min(order.size(), start + static_cast<std::size_t>(group));
    const int64_t B = static_cast<int64_t>(end - start);
    at::Tensor tokens = at::zeros({B, L}, at::kLong);  // padding id 0: masked out, never seen
    auto acc = tokens.accessor<int64_t, 2>();
    std::vector<int64_t> lengths(B);
    for (int64_t b = 0; b < B; ++b) {
      const auto& row = ids[order[start + b]];
      lengths[b] = static_cast<int64_t>(row.size());
      for (std::size_t t = 0; t < row.size(); ++t) acc[b][t] = row[t];
    }
    at::Tensor pooled = impl_->pool(impl_->hidden_states(tokens, lengths), lengths);
    at::Tensor rows = at::tensor(std::vector<int64_t>(order.begin() + start, order.begin() + end), at::kLong);
    out.index_copy_(0, rows, pooled);
  }
  return out;
}

std::string SentenceEncoder::name() const { return impl_->name; }
int SentenceEncoder::dim() const { return impl_->cfg.hidden * static_cast<int>(impl_->layout.pooling.size()); }
int SentenceEncoder::max_seq_length() const { return impl_->max_len; }
bool SentenceEncoder::normalizes() const { return impl_->normalize; }
const std::vector<Pooling>& SentenceEncoder::pooling() const { return impl_->layout.pooling; }

}  // namespace c3po::embed
