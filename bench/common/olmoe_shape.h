#pragma once
// The random OLMoE-1B-7B-shaped model of the benchmarks: the real dimensions (16 decoder layers,
// 64 experts of which 8 are active, hidden 2048, vocabulary 50304), random bf16 weights built in
// memory, no file.
//
// The full model needs about 13 GB of RAM for its weights. --layer_sets=N (default 16 = all
// distinct) builds only N distinct decoder layers and reuses their tensors in the other layers:
// the same work and memory traffic per token, for machines where 13 GB are not free.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "model/config.h"
#include "model/engine.h"

namespace c3po::bench {

model::ModelConfig olmoe_1b_7b();

// Random bf16 weights under their Hugging Face names. Large matrices are slices of one random pool
// (filling 7e9 numbers with randn would dominate the run), each scaled by 1/sqrt(fan_in) like a
// trained model's; routers have gain 4 so routing is far from uniform. Layers >= layer_sets share
// the tensors of layer (i % layer_sets). Deterministic (seeded).
std::map<std::string, torch::Tensor> random_weights(const model::ModelConfig& c, int64_t layer_sets);

// Removes "--layer_sets=N" from argv (before benchmark::Initialize sees it) and returns N clamped
// to [1, 16]; 16 when absent.
int64_t take_layer_sets(int& argc, char** argv);

// Bytes of distinct tensor storages (layers may share theirs, see layer_sets).
double unique_bytes(const std::map<std::string, torch::Tensor>& w);

// The bf16 model; *weight_bytes (if given) receives unique_bytes of its weights.
std::unique_ptr<model::MoeModel> olmoe_model(int64_t layer_sets, double* weight_bytes = nullptr);

// Peak resident memory of this process (VmHWM), bytes.
double vm_hwm_bytes();

}  // namespace c3po::bench
