#include "demo/train_demo.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "demo/bpe.h"
#include "demo/olmoe_train_model.h"
#include "demo/rng.h"
#include "io/error.h"
#include "io/json_file.h"
#include "model/threads.h"
#include "tokenizer/tokenizer.h"

namespace c3po::demo {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string duration_text(double s) {
  const int total = static_cast<int>(std::lround(s));
  return total >= 60 ? fmt::format("{}m{:02d}s", total / 60, total % 60) : fmt::format("{}s", total);
}

TextEncoder make_encoder(const EncoderFactory& factory, const std::string& tokenizer_path) {
  if (factory) return factory(tokenizer_path);
  // The c3po tokenizer, so training sees exactly the ids every other part of c3po will produce.
  auto tok = std::make_shared<tokenizer::Tokenizer>(tokenizer::Tokenizer::load(tokenizer_path));
  return [tok](const std::string& text) { return tok->encode(text); };
}

// The token id of each option letter's continuation (" A".." E"); each must be one token.
std::vector<int64_t> letter_ids(const TextEncoder& encode, const std::string& origin) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i) {
    auto t = encode(letter_continuation(i));
    if (t.size() != 1)
      throw Error(origin, "model.vocab", "'" + letter_continuation(i) + "' must be a single token");
    ids.push_back(t[0]);
  }
  return ids;
}

struct Encoded {
  std::vector<int64_t> ids;  // prompt, then the gold letter
};

// Stacks sequences into right-padded [B, T] (pad id 0) and their lengths.
std::pair<torch::Tensor, torch::Tensor> pad_batch(const std::vector<const std::vector<int64_t>*>& seqs,
                                                  std::size_t drop_last) {
  std::size_t T = 0;
  for (auto* s : seqs) T = std::max(T, s->size() - drop_last);
  auto tokens = torch::zeros({static_cast<int64_t>(seqs.size()), static_cast<int64_t>(T)}, torch::kInt64);
  auto lengths = torch::zeros({static_cast<int64_t>(seqs.size())}, torch::kInt64);
  auto acc = tokens.accessor<int64_t, 2>();
  for (std::size_t b = 0; b < seqs.size(); ++b) {
    const std::size_t n = seqs[b]->size() - drop_last;
    for (std::size_t t = 0; t < n; ++t) acc[b][t] = (*seqs[b])[t];
    lengths[b] = static_cast<int64_t>(n);
  }
  return {tokens, lengths};
}

Evaluation evaluate(const OlmoeTrainModel& model, const TextEncoder& encode, const std::vector<McItem>& items,
                    const std::vector<int64_t>& letters) {
  torch::NoGradGuard no_grad;
  Evaluation ev;
  constexpr std::size_t kBatch = 64;
  for (std::size_t start = 0; start < items.size(); start += kBatch) {
    const std::size_t end = std::min(items.size(), start + kBatch);
    std::vector<std::vector<int64_t>> prompts;
    for (std::size_t i = start; i < end; ++i) {
      auto ids = encode(render_prompt(items[i]));
      prompts.emplace_back(ids.begin(), ids.end());
    }
    std::vector<const std::vector<int64_t>*> ptrs;
    for (const auto& p : prompts) ptrs.push_back(&p);
    auto [tokens, lengths] = pad_batch(ptrs, 0);
    auto logits = model.forward(tokens, lengths).logits;
    for (std::size_t i = start; i < end; ++i) {
      const auto& item = items[i];
      auto last = logits[static_cast<int64_t>(i - start)][static_cast<int64_t>(prompts[i - start].size()) - 1];
      int best = 0;
      for (int c = 1; c < static_cast<int>(item.choices.size()); ++c)
        if (last[letters[c]].item<float>() > last[letters[best]].item<float>()) best = c;
      auto& fam = ev.per_family[item.task];
      const bool right = best == item.answer;
      fam.correct += right;
      ++fam.total;
      ev.overall.correct += right;
      ++ev.overall.total;
    }
  }
  return ev;
}

nlohmann::json evaluation_json(const Evaluation& ev) {
  nlohmann::json j = {{"overall", {{"accuracy", ev.overall.accuracy()}, {"n", ev.overall.total}}}};
  for (const auto& [family, acc] : ev.per_family)
    j["per_family"][family] = {{"accuracy", acc.accuracy()}, {"n", acc.total}};
  return j;
}

std::string evaluation_text(const Evaluation& ev) {
  std::string s = fmt::format("overall {:.1f}% (n={})", 100 * ev.overall.accuracy(), ev.overall.total);
  for (const auto& [family, acc] : ev.per_family) s += fmt::format(", {} {:.1f}%", family, 100 * acc.accuracy());
  return s;
}

}  // namespace

void write_demo_data(const std::string& dir, uint64_t seed, const SplitSizes& sizes) {
  std::filesystem::create_directories(dir);
  const DemoData d = demo_data(seed, sizes);
  write_jsonl(dir + "/train.jsonl", d.train);
  write_jsonl(dir + "/reference.jsonl", d.reference);
  write_jsonl(dir + "/dev.jsonl", d.dev);
  write_jsonl(dir + "/dev-shifted.jsonl", d.dev_shifted);
  write_jsonl(dir + "/test.jsonl", d.test);
  write_jsonl(dir + "/test-shifted.jsonl", d.test_shifted);
}

TrainDemoResult train_demo(const TrainDemoOptions& o) {
  namespace fs = std::filesystem;
  const auto t0 = Clock::now();
  auto log = [&](const std::string& line) {
    if (o.log) o.log(line);
  };
  if (o.out_dir.empty()) throw Error("", "out", "an output folder is required");
  if (o.steps < 1) throw Error("", "steps", "expected at least 1 step");
  if (o.threads < 1) throw Error("", "threads", "expected at least 1 thread");
  if (o.batch_size < 1) throw Error("", "batch_size", "expected at least 1");
  model::set_compute_threads(o.threads);
  log(fmt::format("threads: {} (the weights depend on it)", o.threads));
  fs::create_directories(o.out_dir + "/data");

  // 1. Tasks.
  const DemoData splits = demo_data(o.seed, o.sizes);
  write_demo_data(o.out_dir + "/data", o.seed, o.sizes);
  log(fmt::format("tasks: {} train, {} reference, {} dev, {} test items (and shifted dev and test)",
                  splits.train.size(), splits.reference.size(), splits.dev.size(), splits.test.size()));
  if (o.data_only) return {};

  // 2. Tokenizer, trained on the training split's full texts (prompt and answer letter).
  std::vector<std::string> texts;
  for (const auto& it : splits.train) texts.push_back(render_prompt(it) + letter_continuation(it.answer));
  std::vector<std::string> forced;
  for (int i = 0; i < 5; ++i) forced.push_back(letter_continuation(i));
  const BpeModel bpe = train_bpe(texts, o.model.vocab_size, forced);
  const std::string tokenizer_path = o.out_dir + "/tokenizer.json";
  io::write_json_file(tokenizer_path, to_tokenizer_json(bpe));
  const TextEncoder encode = make_encoder(o.encoder_factory, tokenizer_path);
  const auto letters = letter_ids(encode, tokenizer_path);
  log(fmt::format("tokenizer: {} tokens ({} merges)", bpe.tokens.size(), bpe.merges.size()));

  std::vector<std::vector<int64_t>> sequences;
  std::vector<int64_t> cue_family;     // per sequence: the family whose experts the router should pick
  std::vector<float> answer_weight;    // per sequence: 0 for a swapped cue (its answer is not taught)
  const auto& families = task_families();
  auto family_of = [&](const std::string& name) {
    return static_cast<int64_t>(std::find(families.begin(), families.end(), name) - families.begin());
  };
  int64_t train_tokens = 0;
  for (const auto& it : splits.train) {
    cue_family.push_back(family_of(it.cue.empty() ? it.task : it.cue));
    answer_weight.push_back(it.cue.empty() || it.cue == it.task ? 1.0f : 0.0f);
    auto ids = encode(render_prompt(it));
    std::vector<int64_t> seq(ids.begin(), ids.end());
    seq.push_back(letters[it.answer]);
    train_tokens += static_cast<int64_t>(seq.size());
    sequences.push_back(std::move(seq));
  }

  // 3. Model and optimiser.
  OlmoeConfig config = o.model;
  config.vocab_size = static_cast<int>(bpe.tokens.size());
  for (const auto& s : sequences)
    if (static_cast<int>(s.size()) > config.max_position_embeddings)
      throw Error("", "max_position_embeddings", "a training sequence is longer than the model's context");
  if (o.routing_loss_weight > 0 && config.num_experts < 2 * static_cast<int>(families.size()))
    throw Error("", "num_experts", fmt::format("routing supervision needs two experts per family ({})", 2 * families.size()));
  // Target router distribution per family [F, E]: the family's pair of experts, the rest spread.
  const int64_t F = static_cast<int64_t>(families.size());
  auto routing_target = torch::full({F, config.num_experts},
                                    (1.0 - o.routing_target_mass) / (config.num_experts - 2), torch::kFloat32);
  for (int64_t f = 0; f < F; ++f) {
    routing_target[f][2 * f] = o.routing_target_mass / 2;
    routing_target[f][2 * f + 1] = o.routing_target_mass / 2;
  }
  OlmoeTrainModel model(config, o.seed);
  std::vector<torch::Tensor> decayed, plain;
  for (const auto& [name, t] : model.named_parameters()) (t.dim() >= 2 ? decayed : plain).push_back(t);
  torch::optim::AdamW optimizer(
      {torch::optim::OptimizerParamGroup(decayed,
                                         std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(o.learning_rate)
                                                                                        .betas({0.9, 0.95})
                                                                                        .weight_decay(o.weight_decay))),
       torch::optim::OptimizerParamGroup(plain, std::make_unique<torch::optim::AdamWOptions>(
                                                    torch::optim::AdamWOptions(o.learning_rate).betas({0.9, 0.95}).weight_decay(0.0)))},
      torch::optim::AdamWOptions(o.learning_rate).betas({0.9, 0.95}));

  // 4. Training. Loss = mean next-token CE over the prompt text + weight (default 3) * CE of the
  // gold letter + router_aux_loss_coef * load-balancing loss. The text term gives every token a
  // signal (the letter alone carries under 2 bits per item); the letter term, weighted up because
  // most prompt tokens (distractors, invented names) are unpredictable noise, keeps the objective
  // on what the letter protocol scores.
  TrainDemoResult result;
  result.train_tokens = train_tokens;
  SplitMix64 order_rng(o.seed ^ 0x6261746368ULL);
  std::vector<std::size_t> order;
  std::size_t cursor = 0;
  const auto train_start = Clock::now();
  int64_t tokens_seen = 0;
  double window_loss = 0, window_text = 0, window_answer = 0, window_aux = 0, window_route = 0;
  int window = 0;
  for (int step = 1; step <= o.steps; ++step) {
    std::vector<const std::vector<int64_t>*> batch;
    std::vector<std::size_t> batch_index;
    while (static_cast<int>(batch.size()) < o.batch_size) {
      if (cursor == order.size()) {
        order.resize(sequences.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        order_rng.shuffle(order);
        cursor = 0;
      }
      batch_index.push_back(order[cursor]);
      batch.push_back(&sequences[order[cursor++]]);
    }
    auto [inputs, lengths] = pad_batch(batch, 1);
    auto targets = torch::zeros_like(inputs);
    auto text_mask = torch::zeros(inputs.sizes(), torch::kFloat32);
    auto answer_mask = torch::zeros(inputs.sizes(), torch::kFloat32);
    {
      auto ta = targets.accessor<int64_t, 2>();
      auto tm = text_mask.accessor<float, 2>();
      auto am = answer_mask.accessor<float, 2>();
      for (std::size_t b = 0; b < batch.size(); ++b) {
        const auto& s = *batch[b];
        for (std::size_t t = 0; t + 1 < s.size(); ++t) {
          ta[b][t] = s[t + 1];
          if (t + 2 == s.size()) am[b][t] = answer_weight[batch_index[b]];
          else tm[b][t] = 1.0f;
        }
        tokens_seen += static_cast<int64_t>(s.size());
      }
    }
    const double progress = step <= o.warmup_steps ? static_cast<double>(step) / o.warmup_steps
                                                   : 1.0;
    const double decay_pos = std::clamp(static_cast<double>(step - o.warmup_steps) /
                                            std::max(1, o.steps - o.warmup_steps), 0.0, 1.0);
    const double cosine = o.min_learning_rate_ratio +
                          (1 - o.min_learning_rate_ratio) * 0.5 * (1 + std::cos(M_PI * decay_pos));
    const double lr = o.learning_rate * (step <= o.warmup_steps ? progress : cosine);
    for (auto& group : optimizer.param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);

    auto out = model.forward(inputs, lengths);
    auto nll = -torch::log_softmax(out.logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
    auto text_loss = (nll * text_mask).sum() / text_mask.sum().clamp_min(1);
    auto answer_loss = (nll * answer_mask).sum() / answer_mask.sum().clamp_min(1);
    // Routing at the answer position (the last input token): KL(target of the cue's family || router),
    // summed over the MoE layers, averaged over the batch.
    auto routing_loss = torch::zeros({});
    if (o.routing_loss_weight > 0) {
      std::vector<int64_t> fam;
      for (auto i : batch_index) fam.push_back(cue_family[i]);
      auto target = routing_target.index_select(0, torch::tensor(fam, torch::kLong));  // [B, E]
      auto last = (lengths - 1).view({-1, 1, 1}).expand({-1, 1, config.num_experts});
      for (const auto& p : out.router_probs) {
        auto at_answer = p.gather(1, last).squeeze(1);  // [B, E]
        routing_loss = routing_loss + (target * (target.log() - at_answer.clamp_min(1e-12).log())).sum(-1).mean();
      }
    }
    auto loss = text_loss + o.answer_loss_weight * answer_loss + config.router_aux_loss_coef * out.aux_loss +
                o.routing_loss_weight * routing_loss;
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model.parameters(), 1.0);
    optimizer.step();

    const double l = loss.item<double>();
    if (!std::isfinite(l)) throw Error("", "training", fmt::format("loss became {} at step {}", l, step));
    result.step_losses.push_back(l);
    window_loss += l;
    window_text += text_loss.item<double>();
    window_answer += answer_loss.item<double>();
    window_aux += out.aux_loss.item<double>();
    window_route += routing_loss.item<double>();
    ++window;
    if (step % o.log_every == 0 || step == o.steps) {
      const double elapsed = seconds_since(train_start);
      log(fmt::format("step {}/{}  loss {:.4f} (text {:.4f}, answer {:.4f}, aux {:.4f}, routing {:.4f})  lr {:.2e}  "
                      "{:.0f} tokens/s  elapsed {}  left {}",
                      step, o.steps, window_loss / window, window_text / window, window_answer / window,
                      window_aux / window, window_route / window, lr, tokens_seen / elapsed, duration_text(elapsed),
                      duration_text(elapsed / step * (o.steps - step))));
      window_loss = window_text = window_answer = window_aux = window_route = 0;
      window = 0;
    }
    if (o.eval_every > 0 && step % o.eval_every == 0 && step != o.steps)
      log(fmt::format("step {} test: {}", step, evaluation_text(evaluate(model, encode, splits.test, letters))));
  }
  const std::size_t tail = std::max<std::size_t>(1, result.step_losses.size() / 10);
  for (std::size_t i = result.step_losses.size() - tail; i < result.step_losses.size(); ++i)
    result.final_train_loss += result.step_losses[i] / static_cast<double>(tail);

  // 5. Evaluation in the letter protocol, then save.
  result.test = evaluate(model, encode, splits.test, letters);
  result.reference = evaluate(model, encode, splits.reference, letters);
  result.test_shifted = evaluate(model, encode, splits.test_shifted, letters);
  log("test: " + evaluation_text(result.test));
  log("test, shifted: " + evaluation_text(result.test_shifted));
  log("reference: " + evaluation_text(result.reference));
  model.save(o.out_dir);
  result.seconds = seconds_since(t0);
  io::write_json_file(o.out_dir + "/training.json",
                      {{"seed", o.seed},
                       {"steps", o.steps},
                       {"threads", o.threads},
                       {"batch_size", o.batch_size},
                       {"learning_rate", o.learning_rate},
                       {"answer_loss_weight", o.answer_loss_weight},
                       {"routing_loss_weight", o.routing_loss_weight},
                       {"routing_target_mass", o.routing_target_mass},
                       {"train_items", splits.train.size()},
                       {"train_tokens_per_epoch", train_tokens},
                       {"final_train_loss", result.final_train_loss},
                       {"seconds", result.seconds},
                       {"test", evaluation_json(result.test)},
                       {"test_shifted", evaluation_json(result.test_shifted)},
                       {"reference", evaluation_json(result.reference)}});
  log(fmt::format("saved to {} ({} in all; final train loss {:.4f})", o.out_dir, duration_text(result.seconds),
                  result.final_train_loss));
  return result;
}

Evaluation evaluate_folder(const std::string& dir, const std::vector<McItem>& items,
                           const EncoderFactory& encoder_factory, int threads) {
  model::set_compute_threads(threads);
  auto model = OlmoeTrainModel::load(dir);
  const auto tokenizer_path = dir + "/tokenizer.json";
  auto encode = make_encoder(encoder_factory, tokenizer_path);
  return evaluate(model, encode, items, letter_ids(encode, tokenizer_path));
}

}  // namespace c3po::demo
