#include "remix/build.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include "data/prompt.h"
#include "data/registry.h"
#include "eval/requests.h"
#include "io/error.h"
#include "eval/run_dir.h"
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
  std::vector<std::size_t> row_items;  // each row's index in `items` (a shard's rows are joined by it)
  StoreCounts counts;
  counts.skipped = loaded.skipped;
  std::size_t start = 0;
  const std::string partial = opt.out + ".partial";
  const std::string shard_name = opt.shard.whole() ? "" : opt.shard.name();
  if (fs::exists(partial)) {
    auto p = ReferenceStore::open(partial);
    if (p.metadata("build_settings") != settings || p.metadata("build_shard") != shard_name)
      throw Error(partial, "build_settings",
                  "an interrupted build with other settings (model, data, embedder, limit, batch or shard) is here; "
                  "delete it to start afresh, or rerun with the settings it was started with");
    rows = p.rows();
    counts = p.counts();
    start = std::stoul(p.metadata("build_processed"));
    report.resumed = start;
    if (!opt.shard.whole()) row_items = nlohmann::json::parse(p.metadata("build_rows")).get<std::vector<std::size_t>>();
  }
  auto shard_metadata = [&](std::map<std::string, std::string> m) {
    if (!opt.shard.whole()) {
      m["build_shard"] = shard_name;
      m["build_rows"] = nlohmann::json(row_items).dump();
    }
    return m;
  };

  const bool model_embedder = embedder.from_model();
  const int embed_layer = model_embedder ? embedder.model_layer() : -1;
  if (opt.shard.count == 0 || opt.shard.index >= opt.shard.count) throw Error("", "shard", "expected 0 <= index < count");
  // Progress counts this shard's items only.
  std::size_t shard_total = 0, shard_done = 0;
  for (std::size_t b = 0; b < items.size(); b += opt.batch)
    if ((b / opt.batch) % opt.shard.count == opt.shard.index) {
      const std::size_t n = std::min(items.size(), b + opt.batch) - b;
      shard_total += n;
      if (b < start) shard_done += n;
    }
  io::Progress progress(opt.shard.whole() ? "reference build" : "reference build shard " + shard_name, shard_total,
                        opt.progress);
  progress.set_resumed(shard_done);
  if (report.resumed) report.resumed = shard_done;
  auto last_checkpoint = std::chrono::steady_clock::now();
  auto checkpoint = [&](std::size_t processed) {
    if (rows.size() == 0) return;
    ReferenceStore::write(partial, identity, counts, loaded.datasets, rows, opt.half_pathways,
                          shard_metadata({{"build_settings", settings}, {"build_processed", std::to_string(processed)}}));
    last_checkpoint = std::chrono::steady_clock::now();
  };

  std::size_t fresh = 0;
  for (std::size_t b = start; b < items.size(); b += opt.batch) {
    if ((b / opt.batch) % opt.shard.count != opt.shard.index) continue;  // another shard's batch
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
      row_items.push_back(i);
      rows.embeddings.push_back(emb / emb.norm().clamp_min(1e-12));
      rows.pathways.push_back(res.pathway[r].to(torch::kFloat).clone());
      rows.base_loss.push_back(loss);
      rows.correct.push_back(correct ? 1 : 0);
    }
    fresh += e - b;
    shard_done += e - b;
    progress.update(shard_done);
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint).count() >
        opt.checkpoint_seconds)
      checkpoint(e);
  }
  progress.finish();
  ReferenceStore::write(opt.out, identity, counts, loaded.datasets, rows, opt.half_pathways,
                        shard_metadata({{"build_settings", settings}}));
  std::error_code ec;
  fs::remove(partial, ec);
  report.complete = true;
  report.counts = counts;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

StoreCounts merge_reference_shards(const std::vector<std::string>& paths, const std::string& out) {
  if (paths.empty()) throw Error("", "shards", "no shard store given");
  struct Shard {
    ReferenceStore store;
    eval::Shard shard;
    std::vector<std::size_t> rows;
  };
  std::vector<Shard> shards;
  for (const auto& path : paths) {
    ReferenceStore store = ReferenceStore::open(path);
    const std::string name = store.metadata("build_shard");
    if (name.empty())
      throw Error(path, "build_shard", "missing: this store was not built with --shard I/N (or is a .partial)");
    if (!store.metadata("build_processed").empty())
      throw Error(path, "build_processed", "this is an unfinished build's checkpoint; finish the shard first");
    const eval::Shard shard = eval::parse_shard(name, "build_shard");
    std::vector<std::size_t> rows;
    try {
      rows = nlohmann::json::parse(store.metadata("build_rows")).get<std::vector<std::size_t>>();
    } catch (const nlohmann::json::exception&) {
      throw Error(path, "build_rows", "expected a JSON array of item positions");
    }
    if (static_cast<int64_t>(rows.size()) != store.size())
      throw Error(path, "build_rows", "does not give one position per stored reference");
    shards.push_back({std::move(store), shard, std::move(rows)});
  }
  const Shard& first = shards.front();
  const std::string settings = first.store.metadata("build_settings");
  std::map<std::size_t, std::string> seen;
  for (const auto& s : shards) {
    const std::string& path = s.store.path();
    if (s.store.metadata("build_settings") != settings) {
      std::string diff;
      try {
        diff = eval::differing_fields(nlohmann::json::parse(settings), nlohmann::json::parse(s.store.metadata("build_settings")));
      } catch (const nlohmann::json::exception&) {
        diff = "unreadable build_settings";
      }
      throw Error(path, "build_settings", "this shard belongs to another build than " + first.store.path() + " (" + diff + ")");
    }
    if (s.shard.count != first.shard.count)
      throw Error(path, "build_shard", "shard " + s.shard.name() + " cannot join shards of " +
                                           std::to_string(first.shard.count) + " (" + first.store.path() + ")");
    if (const auto it = seen.find(s.shard.index); it != seen.end())
      throw Error(path, "build_shard", "shard " + s.shard.name() + " is given twice (also " + it->second + ")");
    seen.emplace(s.shard.index, path);
  }
  for (std::size_t i = 0; i < first.shard.count; ++i)
    if (!seen.count(i))
      throw Error(first.store.path(), "build_shard",
                  "shard " + eval::Shard{i, first.shard.count}.name() + " is missing: give all " +
                      std::to_string(first.shard.count) + " shard stores");

  // Rows in the order of the items they came from, as one process stores them.
  std::vector<std::pair<std::size_t, std::pair<std::size_t, int64_t>>> order;  // item, (shard, row)
  StoreCounts counts;
  counts.skipped = first.store.counts().skipped;
  std::vector<StoreRows> all;
  for (std::size_t k = 0; k < shards.size(); ++k) {
    all.push_back(shards[k].store.rows());
    for (std::size_t r = 0; r < shards[k].rows.size(); ++r) order.push_back({shards[k].rows[r], {k, static_cast<int64_t>(r)}});
    counts.seen += shards[k].store.counts().seen;
    counts.correct += shards[k].store.counts().correct;
    counts.incorrect += shards[k].store.counts().incorrect;
  }
  std::sort(order.begin(), order.end());
  StoreRows rows;
  for (std::size_t j = 0; j < order.size(); ++j) {
    if (j > 0 && order[j].first == order[j - 1].first)
      throw Error(shards[order[j].second.first].store.path(), "build_rows", "an item is stored by two shards");
    const auto& src = all[order[j].second.first];
    const auto r = static_cast<std::size_t>(order[j].second.second);
    rows.items.push_back(src.items[r]);
    rows.embeddings.push_back(src.embeddings[r]);
    rows.pathways.push_back(src.pathways[r]);
    rows.base_loss.push_back(src.base_loss[r]);
    rows.correct.push_back(src.correct[r]);
  }
  bool half = true;
  try {
    half = nlohmann::json::parse(settings).at("half_pathways").get<bool>();
  } catch (const nlohmann::json::exception&) {
    throw Error(first.store.path(), "build_settings", "expected half_pathways in the build settings");
  }
  ReferenceStore::write(out, first.store.identity(), counts, first.store.datasets(), rows, half,
                        {{"build_settings", settings}});
  return counts;
}

}  // namespace c3po::remix
