#include "model/shapes.h"

#include <nlohmann/json.hpp>

#include <array>

#include "io/error.h"

namespace c3po::model {
namespace {

struct Shape {
  const char* model_type;
  const char* name;
  const char* config;  // the config.json fields of the released checkpoint
};

const std::array<Shape, 5> kShapes = {{
    {"olmoe", "olmoe-1b-7b",
     R"({"model_type":"olmoe","vocab_size":50304,"hidden_size":2048,"intermediate_size":1024,
         "num_hidden_layers":16,"num_attention_heads":16,"num_key_value_heads":16,"num_experts":64,
         "num_experts_per_tok":8,"norm_topk_prob":false,"rms_norm_eps":1e-5,"rope_theta":10000.0,
         "max_position_embeddings":4096,"clip_qkv":null,"tie_word_embeddings":false})"},
    {"qwen2_moe", "qwen1.5-moe-a2.7b",
     R"({"model_type":"qwen2_moe","vocab_size":151936,"hidden_size":2048,"intermediate_size":5632,
         "moe_intermediate_size":1408,"shared_expert_intermediate_size":5632,"num_hidden_layers":24,
         "num_attention_heads":16,"num_key_value_heads":16,"num_experts":60,"num_experts_per_tok":4,
         "norm_topk_prob":false,"decoder_sparse_step":1,"mlp_only_layers":[],"rms_norm_eps":1e-6,
         "rope_theta":1000000.0,"max_position_embeddings":8192,"tie_word_embeddings":false})"},
    {"qwen3_moe", "qwen3-30b-a3b",
     R"({"model_type":"qwen3_moe","vocab_size":151936,"hidden_size":2048,"intermediate_size":6144,
         "moe_intermediate_size":768,"num_hidden_layers":48,"num_attention_heads":32,"num_key_value_heads":4,
         "head_dim":128,"num_experts":128,"num_experts_per_tok":8,"norm_topk_prob":true,
         "decoder_sparse_step":1,"mlp_only_layers":[],"rms_norm_eps":1e-6,"rope_theta":1000000.0,
         "max_position_embeddings":40960,"tie_word_embeddings":false})"},
    {"mixtral", "mixtral-8x7b",
     R"({"model_type":"mixtral","vocab_size":32000,"hidden_size":4096,"intermediate_size":14336,
         "num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,"num_local_experts":8,
         "num_experts_per_tok":2,"rms_norm_eps":1e-5,"rope_theta":1000000.0,"max_position_embeddings":32768,
         "tie_word_embeddings":false})"},
    {"deepseek", "deepseek-moe-16b",
     R"({"model_type":"deepseek","vocab_size":102400,"hidden_size":2048,"intermediate_size":10944,
         "moe_intermediate_size":1408,"num_hidden_layers":28,"num_attention_heads":16,"num_key_value_heads":16,
         "n_routed_experts":64,"n_shared_experts":2,"num_experts_per_tok":6,"first_k_dense_replace":1,
         "moe_layer_freq":1,"norm_topk_prob":false,"scoring_func":"softmax","rms_norm_eps":1e-6,
         "rope_theta":10000.0,"max_position_embeddings":4096,"tie_word_embeddings":false})"},
}};

}  // namespace

ModelConfig released_shape(const std::string& name, int64_t layers) {
  for (const Shape& s : kShapes) {
    if (name != s.model_type && name != s.name) continue;
    auto j = nlohmann::json::parse(s.config);
    if (layers > 0) {
      if (layers > j["num_hidden_layers"].get<int64_t>())
        throw Error(s.name, "layers",
                    "the model has " + std::to_string(j["num_hidden_layers"].get<int64_t>()) + " decoder layers");
      j["num_hidden_layers"] = layers;
    }
    return parse_config(std::string("<") + s.name + ">", j.dump());
  }
  throw Error("", "random", "unknown model shape '" + name + "' (expected " + released_shape_names() + ")");
}

std::string released_shape_names() {
  std::string out;
  for (const Shape& s : kShapes) out += (out.empty() ? "" : ", ") + std::string(s.model_type) + " (" + s.name + ")";
  return out;
}

}  // namespace c3po::model
