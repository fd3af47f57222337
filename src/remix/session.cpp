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
  std::vector<int64_t> unique;
  for (int64_t index : indices)
    if (std::find(unique.begin(), unique.end(), index) == unique.end()) unique.push_back(index);
  // No state this call returns is evicted by the inserts below, whatever the budget.
  const PrefixCache::Pin keep(cache_, unique);
  const auto fm = eval::flops_model(model_.config(), model_.active_parameter_count());
  const std::size_t context = eval::context_length(model_.config().max_position_embeddings);
  for (int64_t index : unique) {
    const bool cached = cache_.find(index) != nullptr;
    std::vector<int64_t> prompt;
    if (!cached || flops) {
      auto req = eval::encode_letter_request(tok_, store().item(index), context);
      prompt = std::move(req.ids);
      letters_[index] = std::move(req.letter_ids);
    }
    // Charged whether or not the cache holds the state: an item's cost must not depend on what
    // earlier items left in the cache (a resumed or sharded run reports the same FLOPs).
    if (flops)
      *flops += eval::forward_flops(fm, static_cast<int64_t>(prompt.size()), 0, 1,
                                    static_cast<int64_t>(letters_[index].size()));
    if (cached) continue;
    // Each reference in a forward of its own: batched with whichever others happen to be missing,
    // its state would round differently depending on the cache, and so would the answers.
    model::ForwardOptions fo;
    fo.keep_prefix_from = critical_.front();
    fo.prefix_tokens = options_.tokens.count;
    // The prefill's logits are not used, only its prefix state: the letter rows keep the head cheap.
    fo.vocab_rows = eval::letter_columns({&letters_[index]}).vocab_rows;
    auto res = model_.forward({prompt}, fo);
    ++prefill_forwards_;
    cache_.insert(index, std::move(res.prefixes.at(0)));
  }
  std::vector<Reference> out;
  for (int64_t index : indices) {
    const model::PrefixState* state = cache_.peek(index);
    out.push_back({state, letters_.at(index), static_cast<int>(store().gold()[index].item<int64_t>())});
  }
  return out;
}

}  // namespace c3po::remix
