#pragma once
// What differs between architectures, as data: tensor names (templates with {i} = decoder layer,
// {e} = expert) and the flags the shared blocks take. One small file per architecture fills it.
#include <string>

#include "model/config.h"

namespace c3po::model {

struct ArchSpec {
  std::string embed = "model.embed_tokens.weight";
  std::string final_norm = "model.norm.weight";
  std::string lm_head = "lm_head.weight";  // ignored when tie_word_embeddings

  std::string attn_norm = "model.layers.{i}.input_layernorm.weight";
  std::string mlp_norm = "model.layers.{i}.post_attention_layernorm.weight";
  std::string q_proj = "model.layers.{i}.self_attn.q_proj";  // + ".weight" / ".bias"
  std::string k_proj = "model.layers.{i}.self_attn.k_proj";
  std::string v_proj = "model.layers.{i}.self_attn.v_proj";
  std::string o_proj = "model.layers.{i}.self_attn.o_proj";
  std::string q_norm = "model.layers.{i}.self_attn.q_norm.weight";
  std::string k_norm = "model.layers.{i}.self_attn.k_norm.weight";

  std::string router = "model.layers.{i}.mlp.gate.weight";
  std::string expert_gate = "model.layers.{i}.mlp.experts.{e}.gate_proj.weight";
  std::string expert_up = "model.layers.{i}.mlp.experts.{e}.up_proj.weight";
  std::string expert_down = "model.layers.{i}.mlp.experts.{e}.down_proj.weight";
  std::string shared_prefix;       // "<prefix>{gate,up,down}_proj.weight"; empty = none
  std::string shared_gate;         // sigmoid gate of the shared expert; empty = ungated
  std::string dense_prefix = "model.layers.{i}.mlp.";  // dense layers' SwiGLU MLP
};

ArchSpec olmoe_spec(const ModelConfig& c);
ArchSpec qwen2_moe_spec(const ModelConfig& c);
ArchSpec qwen3_moe_spec(const ModelConfig& c);
ArchSpec mixtral_spec(const ModelConfig& c);
ArchSpec deepseek_spec(const ModelConfig& c);
ArchSpec arch_spec(const ModelConfig& c);  // dispatch on model_type

// Replaces {i} and {e} in a name template.
std::string tensor_name(const std::string& templ, long layer, long expert = -1);

}  // namespace c3po::model
