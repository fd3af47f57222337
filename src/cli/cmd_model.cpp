// Model commands: `c3po info`, `c3po logits`, `c3po route`, `c3po generate`.
#include <fmt/core.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "io/error.h"
#include "io/json_file.h"
#include "model/engine.h"
#include "model/threads.h"
#include "tokenizer/tokenizer.h"

namespace c3po::cli {
namespace {

struct PromptOptions {
  std::string model, text, ids, dtype = "bf16";
};

void add_prompt_options(CLI::App* cmd, PromptOptions& o, const char* text_flag) {
  cmd->add_option("MODEL", o.model, "a Hugging Face model folder (config.json + safetensors)")->required();
  auto* text = cmd->add_option(text_flag, o.text, "the prompt text (tokenised with the model's tokenizer.json)");
  auto* ids = cmd->add_option("--ids", o.ids, "the prompt as token ids, e.g. 1,2,3");
  text->excludes(ids);
  cmd->add_option("--dtype", o.dtype, "compute dtype: bf16 or f32")->check(CLI::IsMember({"bf16", "f32"}));
}

std::vector<int64_t> parse_ids(const std::string& s) {
  std::vector<int64_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) throw Error("", "--ids", "expected comma-separated integers, got '" + item + "'");
    ids.push_back(v);
  }
  if (ids.empty()) throw Error("", "--ids", "no token id given");
  return ids;
}

std::vector<int64_t> prompt_ids(const PromptOptions& o, const char* text_flag) {
  if (!o.ids.empty()) return parse_ids(o.ids);
  if (o.text.empty()) throw Error("", text_flag, "give the prompt with " + std::string(text_flag) + " or --ids");
  auto tok = tokenizer::Tokenizer::load(o.model);
  auto ids32 = tok.encode(o.text, true);
  return std::vector<int64_t>(ids32.begin(), ids32.end());
}

std::vector<float> to_floats(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::string human_count(int64_t n) {
  if (n >= 1000000000) return fmt::format("{:.2f}B", n / 1e9);
  if (n >= 1000000) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1000) return fmt::format("{:.1f}K", n / 1e3);
  return std::to_string(n);
}

int run_info(const std::string& folder, const std::string& dtype) {
  auto model = model::load_for_compute(folder, dtype);
  const auto& c = model->config();
  int shared = 0;
  if (c.shared_expert_intermediate_size > 0) shared = 1;
  fmt::print("architecture      {}\n", c.model_type);
  fmt::print("layers            {} (hidden {}, heads {} / kv {} x {})\n", c.num_layers, c.hidden_size, c.num_heads,
             c.num_kv_heads, c.head_dim);
  std::string moe_list;
  for (int64_t i = 0; i < c.num_layers; ++i)
    if (c.layer_is_moe[i]) moe_list += (moe_list.empty() ? "" : ",") + std::to_string(i);
  fmt::print("MoE layers        {} (decoder layers {})\n", c.num_moe_layers(), moe_list);
  fmt::print("experts           {} routed, top-{}, width {}{}\n", c.num_experts, c.top_k, c.moe_intermediate_size,
             c.norm_topk_prob ? ", renormalised" : "");
  if (shared)
    fmt::print("shared experts    one MLP of width {}{}\n", c.shared_expert_intermediate_size,
               c.shared_expert_gated ? ", sigmoid-gated" : ", ungated");
  else
    fmt::print("shared experts    none\n");
  fmt::print("vocabulary        {}\n", c.vocab_size);
  fmt::print("parameters        {} total ({}), {} active per token ({})\n", human_count(model->parameter_count()),
             model->parameter_count(), human_count(model->active_parameter_count()),
             model->active_parameter_count());
  fmt::print("dtype             {}\n", model::dtype_name(model->dtype()));
  fmt::print("weights memory    {:.1f} MiB\n", model->weight_bytes() / 1048576.0);
  fmt::print("fingerprint       {}\n", model->fingerprint());
  return 0;
}

int run_logits(const PromptOptions& o, bool all_positions, const std::string& out) {
  auto ids = prompt_ids(o, "--text");
  auto model = model::load_for_compute(o.model, o.dtype);
  model::ForwardOptions opt;
  opt.all_positions = all_positions;
  auto r = model->forward({ids}, opt);
  nlohmann::json j;
  j["model"] = o.model;
  j["dtype"] = model::dtype_name(model->dtype());
  j["input_ids"] = ids;
  auto rows = all_positions ? r.logits[0] : r.logits;  // [T or 1, V]
  // A NaN logit is never an answer: say where it is instead of printing null.
  const auto finite = torch::isfinite(rows).all(1);
  for (int64_t t = 0; t < rows.size(0); ++t)
    if (!finite[t].item<bool>())
      throw Error(o.model, "logits",
                  fmt::format("the logits at position {} are not finite (NaN or inf); check the weights",
                              all_positions ? t : static_cast<int64_t>(ids.size()) - 1));
  nlohmann::json logits = nlohmann::json::array();
  for (int64_t t = 0; t < rows.size(0); ++t) logits.push_back(to_floats(rows[t]));
  j["positions"] = all_positions ? nlohmann::json(std::vector<int64_t>()) : nlohmann::json::array({ids.size() - 1});
  if (all_positions)
    for (std::size_t t = 0; t < ids.size(); ++t) j["positions"].push_back(t);
  j["logits"] = std::move(logits);
  if (out.empty())
    fmt::print("{}\n", j.dump());
  else
    io::write_json_file(out, j);
  return 0;
}

int run_route(const PromptOptions& o, bool json_out, int top) {
  auto ids = prompt_ids(o, "--text");
  auto model = model::load_for_compute(o.model, o.dtype);
  model::ForwardOptions opt;
  opt.capture = true;
  auto r = model->forward({ids}, opt);
  const auto& c = model->config();
  const int n = std::min<int>(top > 0 ? top : model->top_k(), model->num_experts());
  nlohmann::json layers = nlohmann::json::array();
  for (int m = 0; m < model->num_moe_layers(); ++m) {
    auto probs = r.pathway[0][m];
    auto [p, e] = probs.topk(n);
    auto selected = r.topk_idx[0][m];
    auto weights = r.topk_weight[0][m];
    nlohmann::json experts = nlohmann::json::array();
    std::string line;
    for (int i = 0; i < n; ++i) {
      const int64_t ex = e[i].item<int64_t>();
      double w = 0.0;
      bool used = false;
      for (int s = 0; s < selected.size(0); ++s)
        if (selected[s].item<int64_t>() == ex) used = true, w = weights[s].item<double>();
      experts.push_back({{"expert", ex}, {"prob", p[i].item<double>()}, {"selected", used}, {"weight", w}});
      line += fmt::format("  e{}{} {:.4f}", ex, used ? "*" : "", p[i].item<double>());
    }
    layers.push_back({{"moe_layer", m}, {"decoder_layer", c.decoder_layer_of_moe(m)}, {"experts", experts}});
    if (!json_out) fmt::print("moe {:>2} (layer {:>2}):{}\n", m, c.decoder_layer_of_moe(m), line);
  }
  if (json_out) {
    nlohmann::json j{{"model", o.model}, {"input_ids", ids}, {"top_k", model->top_k()}, {"layers", layers}};
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("(last token, {} tokens; * = selected among the top-{})\n", ids.size(), model->top_k());
  }
  return 0;
}

int run_generate(const PromptOptions& o, int max_tokens) {
  auto ids = prompt_ids(o, "--prompt");
  auto model = model::load_for_compute(o.model, o.dtype);
  std::optional<tokenizer::Tokenizer> tok;
  if (!o.text.empty()) tok = tokenizer::Tokenizer::load(o.model);
  std::vector<int32_t> generated;
  std::string shown;
  model->generate(ids, max_tokens, [&](int64_t id) {
    generated.push_back(static_cast<int32_t>(id));
    if (!tok) {
      fmt::print("{}{}", generated.size() > 1 ? "," : "", id);
    } else {
      // Print what the text grew by, holding back an incomplete UTF-8 sequence.
      std::string text = tok->decode(generated, true);
      if (text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0) return true;
      if (text.size() > shown.size() && text.compare(0, shown.size(), shown) == 0) fmt::print("{}", text.substr(shown.size()));
      shown = text;
    }
    std::fflush(stdout);
    return true;
  });
  fmt::print("\n");
  return 0;
}

}  // namespace

void add_model_commands(CLI::App& app, Action& action) {
  {
    auto* cmd = app.add_subcommand("info", "Architecture, layers, experts and parameter counts of a model");
    auto folder = std::make_shared<std::string>();
    auto dtype = std::make_shared<std::string>("bf16");
    cmd->add_option("MODEL", *folder, "a Hugging Face model folder")->required();
    cmd->add_option("--dtype", *dtype, "compute dtype: bf16 or f32")->check(CLI::IsMember({"bf16", "f32"}));
    cmd->callback([&action, folder, dtype] { action = [folder, dtype] { return run_info(*folder, *dtype); }; });
  }
  {
    auto* cmd = app.add_subcommand("logits", "Logits of a prompt as JSON (last position, or all)");
    auto o = std::make_shared<PromptOptions>();
    auto all = std::make_shared<bool>(false);
    auto out = std::make_shared<std::string>();
    add_prompt_options(cmd, *o, "--text");
    cmd->add_flag("--all-positions", *all, "logits of every position");
    cmd->add_option("--out", *out, "write the JSON to this file instead of stdout");
    cmd->callback([&action, o, all, out] { action = [o, all, out] { return run_logits(*o, *all, *out); }; });
  }
  {
    auto* cmd = app.add_subcommand("route", "Per MoE layer, the last token's top experts with probabilities");
    auto o = std::make_shared<PromptOptions>();
    auto json_out = std::make_shared<bool>(false);
    auto top = std::make_shared<int>(0);
    add_prompt_options(cmd, *o, "--text");
    cmd->add_flag("--json", *json_out, "print JSON");
    cmd->add_option("--top", *top, "how many experts to list per layer (default: top-k)")->check(CLI::PositiveNumber);
    cmd->callback([&action, o, json_out, top] { action = [o, json_out, top] { return run_route(*o, *json_out, *top); }; });
  }
  {
    auto* cmd = app.add_subcommand("generate", "Greedy continuation of a prompt, streamed");
    auto o = std::make_shared<PromptOptions>();
    auto max_tokens = std::make_shared<int>(32);
    add_prompt_options(cmd, *o, "--prompt");
    cmd->add_option("--max-tokens", *max_tokens, "at most this many new tokens")->check(CLI::PositiveNumber);
    cmd->callback([&action, o, max_tokens] { action = [o, max_tokens] { return run_generate(*o, *max_tokens); }; });
  }
}

}  // namespace c3po::cli
