// config.json parsing: the five real tiny configs, HF defaults, and errors naming file and field.
#include <gtest/gtest.h>

#include <string>

#include "io/error.h"
#include "model/config.h"

namespace c3po::model {
namespace {

std::string data(const std::string& arch) { return std::string(C3PO_SOURCE_DIR) + "/tests/model/data/" + arch; }

// Expects parse_config to throw a c3po::Error for `field`.
void expect_error(const std::string& json, const std::string& field, const std::string& needle = "") {
  try {
    parse_config("cfg.json", json);
    ADD_FAILURE() << "no error for " << json;
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), "cfg.json");
    EXPECT_EQ(e.field(), field) << e.what();
    if (!needle.empty()) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
}

TEST(Config, Olmoe) {
  auto c = load_config(data("olmoe"));
  EXPECT_EQ(c.model_type, "olmoe");
  EXPECT_EQ(c.source, data("olmoe") + "/config.json");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_layers, 4);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.num_experts, 12);
  EXPECT_EQ(c.top_k, 3);
  EXPECT_EQ(c.moe_intermediate_size, 20);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.qk_norm, QkNorm::Full);
  ASSERT_TRUE(c.clip_qkv.has_value());
  EXPECT_DOUBLE_EQ(*c.clip_qkv, 2.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.num_moe_layers(), 4);
  EXPECT_EQ(c.shared_expert_intermediate_size, 0);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{330});
  EXPECT_FALSE(c.bos_token_id.has_value());
}

TEST(Config, Qwen2MoeDenseLayerAndGatedSharedExpert) {
  auto c = load_config(data("qwen2_moe"));
  EXPECT_EQ(c.layer_is_moe, (std::vector<bool>{true, false, true, true}));
  EXPECT_EQ(c.num_moe_layers(), 3);
  EXPECT_EQ(c.decoder_layer_of_moe(1), 2);
  EXPECT_EQ(c.intermediate_size, 44);
  EXPECT_EQ(c.shared_expert_intermediate_size, 36);
  EXPECT_TRUE(c.shared_expert_gated);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.head_dim, 14);
}

TEST(Config, Qwen3MoeExplicitHeadDim) {
  auto c = load_config(data("qwen3_moe"));
  EXPECT_EQ(c.head_dim, 16);  // not hidden/heads = 12
  EXPECT_EQ(c.qk_norm, QkNorm::PerHead);
  EXPECT_TRUE(c.norm_topk_prob);
}

TEST(Config, MixtralAlwaysRenormalises) {
  auto c = load_config(data("mixtral"));
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.top_k, 2);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.moe_intermediate_size, 36);
}

TEST(Config, DeepseekDenseLeadAndSharedExperts) {
  auto c = load_config(data("deepseek"));
  EXPECT_EQ(c.layer_is_moe, (std::vector<bool>{false, true, true, true}));
  EXPECT_EQ(c.intermediate_size, 52);
  EXPECT_EQ(c.shared_expert_intermediate_size, 40);
  EXPECT_FALSE(c.shared_expert_gated);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.decoder_layer_of_moe(0), 1);
}

const char* kMinimalMixtral =
    R"({"model_type":"mixtral","vocab_size":100,"hidden_size":32,"num_hidden_layers":2,)"
    R"("num_attention_heads":4,"intermediate_size":64,"num_local_experts":4,"num_experts_per_tok":2})";

TEST(Config, HfDefaultsWhenFieldsAreAbsent) {
  auto c = parse_config("cfg.json", kMinimalMixtral);
  EXPECT_EQ(c.num_kv_heads, 4);  // defaults to the number of heads
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.tie_word_embeddings);
  auto d = parse_config("cfg.json",
                        R"({"model_type":"deepseek","vocab_size":100,"hidden_size":32,"num_hidden_layers":4,)"
                        R"("num_attention_heads":4,"intermediate_size":64,"moe_intermediate_size":16,)"
                        R"("n_routed_experts":8,"num_experts_per_tok":2,"moe_layer_freq":2,"first_k_dense_replace":1})");
  EXPECT_EQ(d.layer_is_moe, (std::vector<bool>{false, false, true, false}));
  EXPECT_EQ(d.shared_expert_intermediate_size, 0);  // n_shared_experts absent
  EXPECT_DOUBLE_EQ(d.rope_theta, 10000.0);
  auto q = parse_config("cfg.json",
                        R"({"model_type":"qwen2_moe","vocab_size":100,"hidden_size":32,"num_hidden_layers":4,)"
                        R"("num_attention_heads":4,"moe_intermediate_size":16,"num_experts":8,)"
                        R"("num_experts_per_tok":2,"decoder_sparse_step":2})");
  EXPECT_EQ(q.layer_is_moe, (std::vector<bool>{false, true, false, true}));
  EXPECT_EQ(q.shared_expert_intermediate_size, 5632);
  EXPECT_EQ(q.intermediate_size, 5632);
  EXPECT_TRUE(q.qkv_bias);
}

// Numbers that would make every logit NaN are refused where they are parsed.
TEST(Config, EpsilonAndRopeBaseMustBeFinitePositive) {
  const std::string m = kMinimalMixtral;
  auto with = [&](const std::string& field) { return m.substr(0, m.size() - 1) + "," + field + "}"; };
  expect_error(with(R"("rope_theta":0)"), "rope_theta", "finite number > 0");
  expect_error(with(R"("rope_theta":-10000)"), "rope_theta");
  expect_error(with(R"("rms_norm_eps":-1)"), "rms_norm_eps", "finite number > 0");
  expect_error(with(R"("rms_norm_eps":0)"), "rms_norm_eps");
  EXPECT_NO_THROW(parse_config("cfg.json", with(R"("rms_norm_eps":1e-6,"rope_theta":1e6)")));
}

// Sizes beyond any real model are refused at parse time, before anything is allocated.
TEST(Config, UnboundedSizesAreRefused) {
  const std::string m = kMinimalMixtral;
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = m;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  expect_error(replace("\"num_hidden_layers\":2", "\"num_hidden_layers\":1000000000"), "num_hidden_layers", "at most 1024");
  expect_error(replace("\"vocab_size\":100", "\"vocab_size\":1000000000"), "vocab_size", "at most");
  expect_error(replace("\"num_local_experts\":4", "\"num_local_experts\":10000000"), "num_local_experts", "at most");
  expect_error(replace("\"hidden_size\":32", "\"hidden_size\":1000000000"), "hidden_size", "at most");
}

TEST(Config, Errors) {
  expect_error(R"({"model_type":"llama","hidden_size":3})", "model_type", "llama");
  expect_error(R"({"hidden_size":3})", "model_type");
  expect_error("[1,2]", "");
  expect_error("{not json", "");
  std::string m = kMinimalMixtral;
  auto without = [&](const std::string& key) {
    std::string s = m;
    auto at = s.find("\"" + key + "\"");
    auto end = s.find_first_of(",}", at);
    if (s[end] == ',') ++end;
    s.erase(at, end - at);
    if (s[s.size() - 2] == ',') s.erase(s.size() - 2, 1);
    return s;
  };
  expect_error(without("hidden_size"), "hidden_size", "missing");
  expect_error(without("num_local_experts"), "num_local_experts", "missing");
  expect_error(without("num_experts_per_tok"), "num_experts_per_tok", "missing");
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = m;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  expect_error(replace("\"hidden_size\":32", "\"hidden_size\":\"32\""), "hidden_size", "integer");
  expect_error(replace("\"hidden_size\":32", "\"hidden_size\":-32"), "hidden_size", "positive");
  expect_error(replace("\"num_experts_per_tok\":2", "\"num_experts_per_tok\":5"), "num_experts_per_tok");
  expect_error(replace("\"num_attention_heads\":4", "\"num_attention_heads\":4,\"num_key_value_heads\":3"),
               "num_key_value_heads");
  expect_error(replace("\"hidden_size\":32", "\"hidden_size\":32,\"rope_scaling\":{\"type\":\"yarn\"}"),
               "rope_scaling", "yarn");
  expect_error(replace("\"hidden_size\":32", "\"hidden_size\":32,\"hidden_act\":\"gelu\""), "hidden_act");
  EXPECT_THROW(load_config("/nonexistent/folder"), Error);
}

}  // namespace
}  // namespace c3po::model
