#pragma once
// The shared building blocks of every architecture; an architecture's quirks arrive as settings.
#include <torch/torch.h>

#include <optional>
#include <vector>

namespace c3po::model {

// HF RMSNorm: normalise in fp32, cast back to the input dtype, then multiply by the weight.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// Linear layer with an optional bias (undefined tensor = none).
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b = {});

// SwiGLU MLP: down(silu(gate(x)) * up(x)).
struct SwiGlu {
  torch::Tensor gate, up, down;
  bool defined() const { return gate.defined(); }
  torch::Tensor operator()(const torch::Tensor& x) const;
};

// Rotary embedding, rotate_half pairing (i, i + d/2) as every supported architecture uses.
// tables(): cos, sin [N, head_dim] in `dtype` for the given positions.
struct Rope {
  double theta = 10000.0;
  int64_t head_dim = 0;
  std::pair<torch::Tensor, torch::Tensor> tables(const torch::Tensor& positions, torch::ScalarType dtype) const;
  // x: [N, heads, d]; cos/sin: [N, d]
  torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) const;
};

// Causal attention of `q` [heads, Tq, d] against `k`, `v` [kv_heads, Tk, d] where the queries sit
// at positions Tk-Tq .. Tk-1. Scores softmaxed in fp32 (as the references do). Returns [Tq, heads*d].
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               double scale, std::optional<int64_t> sliding_window);

// One routed assignment set: token rows, experts and mixing weights (float32, may carry grad).
struct Assignments {
  torch::Tensor rows;     // [A] int64
  torch::Tensor experts;  // [A] int64
  torch::Tensor weights;  // [A] float32
};

// Buffers that run_experts reuses from one layer to the next within a forward pass: allocating
// them per layer costs page faults on every layer (the allocator returns large blocks to the
// system when they are freed).
struct ExpertScratch {
  torch::Tensor rows, gate, up;
};

// sum_a weights[a] * expert[experts[a]](x[rows[a]]) for x [N, H]: the tokens routed to each
// expert are gathered and run through it in one matmul per active expert. In bf16 inference on
// CPUs with AVX-512 BF16, experts that receive few tokens run through the few-rows kernel, all of
// them in one parallel section per projection kind; `scratch` (optional) keeps its buffers.
torch::Tensor run_experts(const torch::Tensor& x, const std::vector<SwiGlu>& experts, const Assignments& a,
                          ExpertScratch* scratch = nullptr);

}  // namespace c3po::model
