#include "remix/session.h"

#include <algorithm>

#include "eval/flops.h"
#include "eval/requests.h"
#include "io/error.h"

namespace c3po::remix {

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
  if (!store_) throw Error("", "reference", "this method needs a reference store");
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
    std::vector<std::vector<int64_t>> letters;
    for (int64_t index : missing) {
      const auto item = store().item(index);
      auto req = eval::encode_letter_request(tok_, item, eval::context_length(model_.config().max_position_embeddings));
      prompts.push_back(std::move(req.ids));
      letters.push_back(std::move(req.letter_ids));
    }
    model::ForwardOptions fo;
    fo.keep_prefix_from = critical_.front();
    fo.prefix_tokens = options_.tokens.count;
    std::vector<const std::vector<int64_t>*> letter_ids;
    for (const auto& l : letters) letter_ids.push_back(&l);
    // The prefill's logits are not used, only its prefix states: the letter rows keep the head cheap.
    fo.vocab_rows = eval::letter_columns(letter_ids).vocab_rows;
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

}  // namespace c3po::remix
