#include "remix/build.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include "data/prompt.h"
#include "data/registry.h"
#include "eval/requests.h"
#include "io/error.h"
#include "io/progress.h"

namespace c3po::remix {

namespace fs = std::filesystem;

namespace {

struct Loaded {
  std::vector<data::McItem> items;
  std::vector<std::string> datasets;
  int64_t skipped = 0;
};

Loaded read_sources(const BuildOptions& opt) {
  Loaded l;
  for (const auto& src : opt.sources) {
    data::ReadOptions ro;
    ro.skip_bad = opt.skip_bad;
    auto rr = data::read_task(src.task, src.path, src.split, ro);
    l.skipped += static_cast<int64_t>(rr.skipped);
    if (opt.limit > 0 && rr.items.size() > opt.limit) rr.items.resize(opt.limit);
    if (std::find(l.datasets.begin(), l.datasets.end(), src.task) == l.datasets.end()) l.datasets.push_back(src.task);
    for (auto& it : rr.items) l.items.push_back(std::move(it));
  }
  if (l.items.empty()) throw Error(opt.sources.empty() ? "" : opt.sources[0].path, "", "no reference items to run");
  return l;
}

}  // namespace

std::string build_settings(const BuildOptions& opt, const StoreIdentity& identity) {
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& s : opt.sources) sources.push_back({{"task", s.task}, {"path", s.path}, {"split", s.split}});
  return nlohmann::json{{"sources", sources},
                        {"limit", opt.limit},
                        {"batch", opt.batch},
                        {"model", identity.model_fingerprint},
                        {"embedder", identity.embedder},
                        {"prompt_format", identity.prompt_format},
                        {"keep_incorrect", opt.keep_incorrect},
                        {"half_pathways", opt.half_pathways},
                        {"skip_bad", opt.skip_bad}}
      .dump();
}

BuildReport build_reference_store(const model::MoeModel& model, const tokenizer::Tokenizer& tok,
                                  const BuildOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  if (opt.out.empty()) throw Error("", "out", "a store path is required");
  if (opt.batch == 0) throw Error("", "batch", "must be at least 1");
  auto loaded = read_sources(opt);
  const auto& items = loaded.items;
  const TextEmbedder embedder(opt.embedder, model);
  const StoreIdentity identity{model.fingerprint(), embedder.identity(), std::string(data::kLetterPromptFormat)};
  const std::string settings = build_settings(opt, identity);

  BuildReport report;
  StoreRows rows;
  StoreCounts counts;
  counts.skipped = loaded.skipped;
  std::size_t start = 0;
  const std::string partial = opt.out + ".partial";
  if (fs::exists(partial)) {
    auto p = ReferenceStore::open(partial);
    if (p.metadata("build_settings") != settings)
      throw Error(partial, "build_settings",
                  "an interrupted build with other settings (model, data, embedder, limit or batch) is here; "
                  "delete it to start afresh, or rerun with the settings it was started with");
    rows = p.rows();
    counts = p.counts();
    start = std::stoul(p.metadata("build_processed"));
    report.resumed = start;
  }

  const bool model_embedder = embedder.from_model();
  const int embed_layer = model_embedder ? embedder.model_layer() : -1;
  io::Progress progress("reference build", items.size(), opt.progress);
  progress.set_resumed(start);
  auto last_checkpoint = std::chrono::steady_clock::now();
  auto checkpoint = [&](std::size_t processed) {
    if (rows.size() == 0) return;
    ReferenceStore::write(partial, identity, counts, loaded.datasets, rows, opt.half_pathways,
                          {{"build_settings", settings}, {"build_processed", std::to_string(processed)}});
    last_checkpoint = std::chrono::steady_clock::now();
  };

  std::size_t fresh = 0;
  for (std::size_t b = start; b < items.size(); b += opt.batch) {
    const bool stop_now = (opt.stop && opt.stop->load()) || (opt.stop_after_items && fresh >= opt.stop_after_items);
    if (stop_now) {
      checkpoint(b);
      report.counts = counts;
      report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      return report;
    }
    const std::size_t e = std::min(items.size(), b + opt.batch);
    std::vector<eval::LetterRequest> reqs;
    std::vector<std::vector<int64_t>> prompts;
    for (std::size_t i = b; i < e; ++i) {
      reqs.push_back(eval::encode_letter_request(tok, items[i], eval::context_length(model.config().max_position_embeddings)));
      prompts.push_back(reqs.back().ids);
    }
    std::vector<const std::vector<int64_t>*> letter_ids;
    for (const auto& r : reqs) letter_ids.push_back(&r.letter_ids);
    const auto columns = eval::letter_columns(letter_ids);
    model::ForwardOptions fo;
    fo.capture = true;
    fo.vocab_rows = columns.vocab_rows;
    fo.embed_layer = embed_layer;
    torch::NoGradGuard no_grad;
    const auto res = model.forward(prompts, fo);
    torch::Tensor hashed;
    if (!model_embedder) {
      std::vector<std::string> texts;
      for (std::size_t i = b; i < e; ++i) texts.push_back(embedding_text(items[i]));
      hashed = embedder.embed(texts);
    }
    for (std::size_t i = b; i < e; ++i) {
      const int64_t r = static_cast<int64_t>(i - b);
      const auto& item = items[i];
      const auto letters =
          res.logits[r].index_select(0, torch::tensor(columns.columns[r], torch::kLong)).to(torch::kFloat);
      // A store of NaN pathways would poison every neighbour search later: stop here, naming the item.
      if (!torch::isfinite(letters).all().item<bool>() || !torch::isfinite(res.pathway[r]).all().item<bool>())
        throw Error(data::origin(item), "pathway",
                    "the model's letter logits or router distribution for this item are not finite; check the "
                    "weights and config (nothing was stored)");
      const int prediction = static_cast<int>(letters.argmax().item<int64_t>());
      const float loss = -torch::log_softmax(letters, 0)[item.gold].item<float>();
      const bool correct = prediction == item.gold;
      ++counts.seen;
      ++(correct ? counts.correct : counts.incorrect);
      if (!correct && !opt.keep_incorrect) continue;
      auto emb = model_embedder ? res.embedding[r].to(torch::kFloat) : hashed[r];
      rows.items.push_back(item);
      rows.embeddings.push_back(emb / emb.norm().clamp_min(1e-12));
      rows.pathways.push_back(res.pathway[r].to(torch::kFloat).clone());
      rows.base_loss.push_back(loss);
      rows.correct.push_back(correct ? 1 : 0);
    }
    fresh += e - b;
    progress.update(e);
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint).count() >
        opt.checkpoint_seconds)
      checkpoint(e);
  }
  progress.finish();
  ReferenceStore::write(opt.out, identity, counts, loaded.datasets, rows, opt.half_pathways,
                        {{"build_settings", settings}});
  std::error_code ec;
  fs::remove(partial, ec);
  report.complete = true;
  report.counts = counts;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace c3po::remix
