#include "remix/remixer.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "embed/sentence_encoder.h"
#include "eval/flops.h"
#include "eval/requests.h"
#include "io/error.h"
#include "remix/icl.h"
#include "remix/tail_objective.h"

namespace c3po::remix {

MethodKind parse_method(const std::string& name) {
  if (name == "mode") return MethodKind::Mode;
  if (name == "kernel") return MethodKind::Kernel;
  if (name == "ngd") return MethodKind::Ngd;
  if (name == "oracle") return MethodKind::Oracle;
  if (name == "icl") return MethodKind::Icl;
  throw Error("", "method", "unknown method \"" + name + "\" (expected base, icl, mode, kernel, ngd or oracle)");
}

const char* method_name(MethodKind m) {
  switch (m) {
    case MethodKind::Mode: return "mode";
    case MethodKind::Kernel: return "kernel";
    case MethodKind::Ngd: return "ngd";
    case MethodKind::Oracle: return "oracle";
    case MethodKind::Icl: return "icl";
  }
  return "?";
}

EmbedderChoice EmbedderChoice::parse(const std::string& spec) {
  EmbedderChoice e;
  auto value_of = [&](const std::string& prefix) -> std::optional<int> {
    if (spec.rfind(prefix, 0) != 0) return std::nullopt;
    try {
      std::size_t used = 0;
      const auto s = spec.substr(prefix.size());
      int v = std::stoi(s, &used);
      if (used == s.size()) return v;
    } catch (const std::exception&) {
    }
    throw Error("", "--embedder", "expected an integer after \"" + prefix + "\" in \"" + spec + "\"");
  };
  if (spec == "model") return e;
  if (auto v = value_of("model:layer=")) {
    e.layer = *v;
    return e;
  }
  if (spec.rfind("bert:", 0) == 0) {
    e.kind = Kind::Sentence;
    e.folder = spec.substr(5);
    if (e.folder.empty()) throw Error("", "--embedder", "bert: needs a sentence-transformers folder, e.g. bert:all-MiniLM-L6-v2");
    return e;
  }
  e.kind = Kind::Hash;
  if (spec == "hash") return e;
  if (auto v = value_of("hash:dim=")) {
    if (*v < 8) throw Error("", "--embedder", "the hashed embedder needs at least 8 dimensions");
    e.hash_dim = *v;
    return e;
  }
  throw Error("", "--embedder",
              "unknown embedder \"" + spec + "\" (expected model, model:layer=N, hash, hash:dim=N or bert:FOLDER)");
}

int EmbedderChoice::resolved_layer(const model::MoeModel& model) const {
  const int n = static_cast<int>(model.config().num_layers);
  const int l = layer < 0 ? n / 2 : layer;
  if (l >= n)
    throw Error("", "--embedder", "layer " + std::to_string(l) + " does not exist: the model has " + std::to_string(n) +
                                      " decoder layers");
  return l;
}

TextEmbedder::TextEmbedder(const EmbedderChoice& choice, const model::MoeModel& model)
    : choice_(choice), hasher_(choice.hash_dim) {
  switch (choice.kind) {
    case EmbedderChoice::Kind::ModelLayer:
      layer_ = choice.resolved_layer(model);
      identity_ = "model:layer=" + std::to_string(layer_);
      break;
    case EmbedderChoice::Kind::Hash:
      identity_ = hasher_.name();
      break;
    case EmbedderChoice::Kind::Sentence: {
      embed::EncoderOptions eo;
      eo.always_normalize = true;  // the neighbour search is on cosine similarity
      std::shared_ptr<embed::SentenceEncoder> enc = embed::SentenceEncoder::load(choice.folder, eo);
      identity_ = enc->name();
      encoder_ = std::static_pointer_cast<const void>(std::shared_ptr<const embed::SentenceEncoder>(enc));
      break;
    }
  }
}

TextEmbedder::~TextEmbedder() = default;

torch::Tensor TextEmbedder::embed(const std::vector<std::string>& texts) const {
  switch (choice_.kind) {
    case EmbedderChoice::Kind::Hash: return hasher_.embed(texts);
    case EmbedderChoice::Kind::Sentence: {
      torch::NoGradGuard no_grad;
      auto v = static_cast<const embed::SentenceEncoder*>(encoder_.get())->encode(texts).to(torch::kFloat);
      return v / v.norm(2, 1, true).clamp_min(1e-12);
    }
    case EmbedderChoice::Kind::ModelLayer: break;
  }
  throw Error("", "--embedder", "the model embedder takes its vectors from the forward pass, not from text");
}

std::string embedding_text(const data::McItem& item) {
  std::string s = item.question;
  for (const auto& c : item.choices) s += "\n" + c;
  return s;
}

data::McItem to_mc_item(const ReferenceItem& r) {
  data::McItem m;
  m.id = r.id;
  m.task = r.source;
  m.question = r.question;
  m.choices = r.choices;
  m.gold = r.gold;
  m.context = r.context;
  m.subject = r.subject;
  m.extra = r.extra;
  return m;
}

ReferenceItem to_reference_item(const data::McItem& item) {
  ReferenceItem r;
  r.id = item.id;
  r.source = item.task;
  r.question = item.question;
  r.choices = item.choices;
  r.gold = item.gold;
  r.context = item.context;
  r.subject = item.subject;
  r.extra = item.extra;
  return r;
}

const model::PrefixState* PrefixCache::find(int64_t index) {
  auto it = entries_.find(index);
  if (it == entries_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  order_.splice(order_.begin(), order_, it->second.where);
  return &it->second.state;
}

const model::PrefixState* PrefixCache::insert(int64_t index, model::PrefixState state) {
  bytes_ += state.bytes();
  order_.push_front(index);
  auto& e = entries_[index];
  e.state = std::move(state);
  e.where = order_.begin();
  evict();
  return &e.state;
}

const model::PrefixState* PrefixCache::peek(int64_t index) const {
  auto it = entries_.find(index);
  return it == entries_.end() ? nullptr : &it->second.state;
}

void PrefixCache::clear() {
  entries_.clear();
  order_.clear();
  bytes_ = 0;
}

void PrefixCache::evict() {
  auto it = order_.end();
  while (bytes_ > budget_ && it != order_.begin()) {
    --it;
    const int64_t index = *it;
    if (std::find(pinned_.begin(), pinned_.end(), index) != pinned_.end()) continue;
    auto e = entries_.find(index);
    bytes_ -= e->second.state.bytes();
    entries_.erase(e);
    it = order_.erase(it);
  }
}

RemixSession::RemixSession(const model::MoeModel& model, const tokenizer::Tokenizer& tok,
                           std::shared_ptr<const ReferenceStore> store, RemixOptions options, CandidatePools pools,
                           EmbedderChoice embedder, std::size_t cache_bytes)
    : model_(model),
      tok_(tok),
      store_(std::move(store)),
      options_(std::move(options)),
      pools_(std::move(pools)),
      embedder_(embedder, model),
      critical_(options_.layers.resolve(model.num_moe_layers())),
      cache_(cache_bytes) {
  if (!store_) return;
  store_->require({model.fingerprint(), embedder_.identity(), std::string(data::kLetterPromptFormat)});
  if (store_->num_moe_layers() != model.num_moe_layers() || store_->num_experts() != model.num_experts())
    throw Error(store_->path(), "pathways", "the store's pathways do not have this model's MoE layers and experts");
  pools_.check(*store_);
}

const ReferenceStore& RemixSession::store() const {
  if (!store_) throw Error("", "--reference", "this method needs a reference store");
  return *store_;
}

void RemixSession::prepare(model::ForwardOptions& base) const {
  base.capture = true;
  base.keep_prefix_from = critical_.front();
  base.prefix_tokens = options_.tokens.count;
  if (embedder_.from_model()) base.embed_layer = embedder_.model_layer();
}

const Neighbourhood& RemixSession::neighbours(const eval::ItemContext& ctx) {
  const std::string key = ctx.item->task + "\n" + ctx.item->id;
  if (key == last_item_) return last_neighbours_;
  torch::Tensor query;
  if (!embedder_.from_model()) {
    query = embedder_.embed({embedding_text(*ctx.item)});
  } else {
    if (!ctx.embedding.defined()) throw Error("", "embedding", "the base pass returned no embedding");
    query = ctx.embedding.to(torch::kFloat).reshape({1, -1});
    query = query / query.norm(2, 1, true).clamp_min(1e-12);
  }
  const auto& mask = pool_mask(ctx.item->task);
  // The test item itself is excluded when the store holds it (same id from the same dataset).
  const int64_t self = store().find(ctx.item->task, ctx.item->id);
  last_neighbours_ = find_neighbours(store(), query, mask, {self}, options_.neighbours, options_.kernel)[0];
  last_item_ = key;
  return last_neighbours_;
}

const torch::Tensor& RemixSession::pool_mask(const std::string& task) {
  auto it = pool_masks_.find(task);
  if (it == pool_masks_.end()) it = pool_masks_.emplace(task, pools_.mask(store(), task)).first;
  return it->second;
}

RemixSession::Reference RemixSession::reference(int64_t index, double* flops) {
  return references({index}, flops).at(0);
}

std::vector<RemixSession::Reference> RemixSession::references(const std::vector<int64_t>& indices, double* flops) {
  // Misses first (each once), then one forward over all of them.
  std::vector<int64_t> unique, missing;
  for (int64_t index : indices)
    if (std::find(unique.begin(), unique.end(), index) == unique.end()) unique.push_back(index);
  for (int64_t index : unique)
    if (!cache_.find(index)) missing.push_back(index);
  if (!missing.empty()) {
    std::vector<std::vector<int64_t>> prompts;
    std::set<int64_t> rows;
    std::vector<std::vector<int64_t>> letters;
    for (int64_t index : missing) {
      const auto item = to_mc_item(store().item(index));
      auto req = eval::encode_letter_request(tok_, item, eval::context_length(model_.config().max_position_embeddings));
      rows.insert(req.letter_ids.begin(), req.letter_ids.end());
      prompts.push_back(std::move(req.ids));
      letters.push_back(std::move(req.letter_ids));
    }
    model::ForwardOptions fo;
    fo.keep_prefix_from = critical_.front();
    fo.prefix_tokens = options_.tokens.count;
    fo.vocab_rows.assign(rows.begin(), rows.end());
    auto res = model_.forward(prompts, fo);
    ++prefill_forwards_;
    // No state this call returns is evicted by the inserts below, whatever the budget.
    const PrefixCache::Pin keep(cache_, unique);
    const auto fm = eval::flops_model(model_.config(), model_.active_parameter_count());
    for (std::size_t m = 0; m < missing.size(); ++m) {
      letters_[missing[m]] = letters[m];
      cache_.insert(missing[m], std::move(res.prefixes.at(m)));
      if (flops)
        *flops += eval::forward_flops(fm, static_cast<int64_t>(prompts[m].size()), 0, 1,
                                      static_cast<int64_t>(letters[m].size()));
    }
  }
  std::vector<Reference> out;
  for (int64_t index : indices) {
    const model::PrefixState* state = cache_.peek(index);
    out.push_back({state, letters_.at(index), static_cast<int>(store().gold()[index].item<int64_t>())});
  }
  return out;
}

namespace {

nlohmann::json top_experts(const torch::Tensor& omega, const std::vector<int>& critical, int k) {
  nlohmann::json out = nlohmann::json::array();
  for (std::size_t c = 0; c < critical.size(); ++c) {
    auto [v, i] = omega[static_cast<int64_t>(c)].topk(std::min<int64_t>(k, omega.size(1)));
    nlohmann::json layer = {{"moe_layer", critical[c]}, {"experts", nlohmann::json::array()}};
    for (int64_t j = 0; j < v.size(0); ++j)
      layer["experts"].push_back({{"expert", i[j].item<int64_t>()}, {"weight", v[j].item<double>()}});
    out.push_back(layer);
  }
  return out;
}

}  // namespace

std::unique_ptr<eval::ItemMethod> make_method(std::shared_ptr<RemixSession> session, MethodKind kind) {
  if (kind == MethodKind::Icl) return std::make_unique<IclMethod>(std::move(session));
  return std::make_unique<RemixMethod>(std::move(session), kind);
}

eval::MethodOutcome RemixMethod::run(const eval::ItemContext& ctx) {
  const auto t0 = std::chrono::steady_clock::now();
  RemixSession& S = *session_;
  const auto& opt = S.options();
  const auto& critical = S.critical_layers();
  if (!ctx.prefix) throw Error("", "prefix", "the base pass kept no prefix state for " + ctx.item->id);
  const auto index = torch::tensor(std::vector<int64_t>(critical.begin(), critical.end()), torch::kLong);
  const auto omega0 = ctx.pathway.to(torch::kFloat).index_select(0, index);
  const TailItem self{ctx.prefix, ctx.letter_ids, ctx.item->gold, 1.0};

  eval::MethodOutcome out;
  RemixResult r;
  double flops = 0;
  nlohmann::json details = nlohmann::json::object();
  if (kind_ == MethodKind::Oracle) {
    TailObjective own(S.model(), critical, {self}, opt.full_vocab_loss, opt.tokens.count);
    r = oracle(omega0, own, opt);
    details["upper_bound"] = true;
  } else {
    const auto& nb = S.neighbours(ctx);
    nlohmann::json members = nlohmann::json::array();
    std::vector<int64_t> indices;
    for (const auto& m : nb.members) {
      indices.push_back(m.index);
      members.push_back({{"id", S.store().item(m.index).id}, {"source", S.store().source(m.index)},
                         {"similarity", m.similarity}, {"weight", m.weight}});
    }
    details["neighbours"] = members;
    if (kind_ == MethodKind::Mode) {
      // Mean shift looks at pathways only: the nearest references in pathway space among the
      // task's candidates, labels unused.
      const auto candidates = S.pool_mask(ctx.item->task).nonzero().reshape({-1});
      const auto paths = S.store().pathways().index_select(0, candidates).index_select(1, index).to(torch::kFloat);
      r = mode_finding(omega0, paths, opt);
    } else {
      const PrefixCache::Pin keep(S.cache(), indices);
      std::vector<TailItem> items;
      std::vector<double> weights;
      // Every neighbour missing from the cache is prefilled in one batched forward.
      const auto refs = S.references(indices, &flops);
      for (std::size_t j = 0; j < refs.size(); ++j) {
        const auto& m = nb.members[j];
        items.push_back({refs[j].prefix, refs[j].letter_ids, refs[j].gold, m.weight});
        weights.push_back(m.weight);
      }
      TailObjective neighbourhood(S.model(), critical, items, opt.full_vocab_loss, opt.tokens.count);
      if (kind_ == MethodKind::Kernel) {
        const auto paths = S.store().pathways().index_select(0, torch::tensor(indices, torch::kLong))
                               .index_select(1, index).to(torch::kFloat);
        r = kernel_regression(omega0, paths, weights, neighbourhood, opt);
      } else {
        r = ngd(omega0, neighbourhood, opt);
      }
    }
  }
  const auto logits = answer_logits(S.model(), critical, self, r.omega, opt.tokens.count).to(torch::kDouble);
  out.prediction = static_cast<int>(logits.argmax().item<int64_t>());
  const auto probs = torch::softmax(logits, 0);
  for (int64_t j = 0; j < probs.size(0); ++j) out.letter_probs.push_back(probs[j].item<double>());

  // Cost: each tail re-run spans the decoder layers from the first critical one and runs the
  // item's re-mixed tokens after its cached ones; with a backward pass (NGD, oracle) it costs
  // about three forwards.
  const auto fm = eval::flops_model(S.model().config(), S.model().active_parameter_count());
  const double share = static_cast<double>(S.model().config().num_layers - ctx.prefix->decoder_layer) /
                       static_cast<double>(S.model().config().num_layers);
  const double tail = share * eval::forward_flops(fm, ctx.prefix->tokens, ctx.prefix->position, 1,
                                                  static_cast<int64_t>(ctx.letter_ids.size()));
  const bool with_backward = kind_ == MethodKind::Ngd || kind_ == MethodKind::Oracle;
  flops += (r.evaluations * (with_backward ? 3.0 : 1.0) + 1) * tail;

  if (!r.iterates.empty()) {
    // The answer after each step (step 0: before any), for the accuracy-per-step curve.
    std::vector<int> steps;
    for (const auto& omega : r.iterates)
      steps.push_back(static_cast<int>(
          answer_logits(S.model(), critical, self, omega, opt.tokens.count).argmax().item<int64_t>()));
    details["step_predictions"] = steps;
  }
  if (r.alpha) details["alpha"] = *r.alpha;
  if (!r.losses.empty()) details["losses"] = r.losses;
  details["tail_reruns"] = r.evaluations + 1;
  details["experts_before"] = top_experts(omega0, critical, S.model().top_k());
  details["experts_after"] = top_experts(r.omega, critical, S.model().top_k());
  out.details = std::move(details);
  out.flops = flops;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

nlohmann::json RemixMethod::settings() const {
  const auto& o = session_->options();
  return {{"method", name()},
          {"layers", o.layers.to_string()},
          {"tokens", o.tokens.to_string()},
          {"core_experts", o.core_experts},
          {"steps", o.opt.steps},
          {"lr", o.opt.lr},
          {"lr_min", o.opt.lr_min},
          {"schedule", o.opt.schedule == Schedule::Cosine ? "cosine" : "constant"},
          {"optimizer", o.opt.optimizer == OptimizerKind::Adam ? "adam" : "sgd"},
          {"topk", o.opt.topk == TopKMode::Hard ? "hard" : "soft"},
          {"param", o.opt.param == Parameterisation::Direct ? "direct" : "log"},
          {"k", o.neighbours.k},
          {"epsilon", o.neighbours.epsilon ? nlohmann::json(*o.neighbours.epsilon) : nlohmann::json()},
          {"leakage_guard", o.neighbours.leakage_guard},
          {"max_neighbours", o.neighbours.max_neighbours},
          {"kernel", o.kernel.to_string()},
          {"alpha", o.fixed_alpha ? nlohmann::json(*o.fixed_alpha) : nlohmann::json("grid")},
          {"mode_iterations", o.mode_iterations},
          {"mode_alpha", o.mode_alpha},
          {"loss", o.full_vocab_loss ? "full_vocab" : "letters"},
          {"embedder", session_->embedder().identity()}};
}

}  // namespace c3po::remix
