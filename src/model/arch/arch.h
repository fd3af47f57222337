#pragma once
// One architecture, one file in this folder: it reads its own config.json fields into a
// ModelConfig (its quirks become settings of the shared blocks: renormalised top-k, q/k norm
// shape, shared-expert gate, dense layers) and names its tensors. registry.cpp lists them all;
// adding an architecture means adding one file and one row there. No torch here.
#include <string>
#include <string_view>

#include "model/arch/config_reader.h"
#include "model/config.h"

namespace c3po::model {

// Tensor names as templates: {i} = decoder layer, {e} = routed expert. The shapes follow from the
// config and are checked by the loader.
struct TensorNames {
  std::string embed = "model.embed_tokens.weight";
  std::string final_norm = "model.norm.weight";
  std::string lm_head = "lm_head.weight";  // not read when tie_word_embeddings

  std::string attn_norm = "model.layers.{i}.input_layernorm.weight";
  std::string mlp_norm = "model.layers.{i}.post_attention_layernorm.weight";
  std::string q_proj = "model.layers.{i}.self_attn.q_proj";  // + ".weight" / ".bias"
  std::string k_proj = "model.layers.{i}.self_attn.k_proj";
  std::string v_proj = "model.layers.{i}.self_attn.v_proj";
  std::string o_proj = "model.layers.{i}.self_attn.o_proj";
  std::string q_norm = "model.layers.{i}.self_attn.q_norm.weight";  // read when qk_norm != None
  std::string k_norm = "model.layers.{i}.self_attn.k_norm.weight";

  std::string router = "model.layers.{i}.mlp.gate.weight";
  std::string expert_gate = "model.layers.{i}.mlp.experts.{e}.gate_proj.weight";
  std::string expert_up = "model.layers.{i}.mlp.experts.{e}.up_proj.weight";
  std::string expert_down = "model.layers.{i}.mlp.experts.{e}.down_proj.weight";
  std::string shared_prefix;  // "<prefix>{gate,up,down}_proj.weight"; read when the config has a shared expert
  std::string shared_gate;    // read when shared_expert_gated
  std::string dense_prefix = "model.layers.{i}.mlp.";  // dense layers' SwiGLU MLP
};

struct Architecture {
  std::string_view model_type;  // config.json's model_type
  // Reads every field this architecture's config.json defines; common fields included.
  void (*read_config)(const ConfigReader& fields, ModelConfig& config);
  TensorNames (*tensor_names)(const ModelConfig& config);
};

// nullptr when c3po does not support the model_type.
const Architecture* find_architecture(std::string_view model_type);
// The architecture of a parsed config (a c3po::Error naming config.source when unknown).
const Architecture& architecture_of(const ModelConfig& config);
// "olmoe, qwen2_moe, ...": for messages and --help.
std::string supported_architectures();

// Replaces {i} and {e} in a name template.
std::string tensor_name(const std::string& templ, long layer, long expert = -1);

}  // namespace c3po::model
