#include "model/blocks.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "model/kernels/bf16_matmul.h"

namespace c3po::model {

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto xf = x.to(torch::kFloat32);
  auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return weight * normed.to(x.scalar_type());
}

namespace {

// The few-rows bf16 kernel applies to bf16 products of at most kernels::kSmallRows rows where no
// gradient reaches the weights (decoding, experts with few tokens, the re-mix tail forward and
// backward); C3PO_NO_BF16_KERNEL=1 turns it off to compare.
bool small_kernel_applies(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  static const bool enabled = kernels::bf16_small_matmul_supported() && !std::getenv("C3PO_NO_BF16_KERNEL");
  if (!enabled || x.scalar_type() != torch::kBFloat16 || w.scalar_type() != torch::kBFloat16 || w.dim() != 2 ||
      !x.device().is_cpu() || !w.is_contiguous() || (b.defined() && (b.scalar_type() != torch::kBFloat16 || !b.is_contiguous())))
    return false;
  if (torch::GradMode::is_enabled() && (w.requires_grad() || (b.defined() && b.requires_grad()))) return false;
  const int64_t K = w.size(1);
  if (x.dim() < 1 || x.size(-1) != K || K == 0) return false;
  const int64_t rows = x.numel() / K;
  return rows >= 1 && rows <= kernels::kSmallRows;
}

const uint16_t* bits(const torch::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); }

// y = x w^T + b.
torch::Tensor small_project(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  const int64_t K = w.size(1), N = w.size(0), rows = x.numel() / K;
  // x's rows padded to a stride of K + 32 (see bf16_small_matmul).
  auto xc = torch::empty({rows, K + 32}, x.options()).narrow(1, 0, K);
  xc.copy_(x.reshape({rows, K}));
  auto y = torch::empty({rows, N}, x.options());
  const uint16_t *xp = bits(xc), *wp = bits(w), *bp = b.defined() ? bits(b) : nullptr;
  auto* yp = reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>());
  at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) {
    kernels::bf16_small_matmul(xp, K + 32, rows, K, wp, bp, yp, N, n0, n1);
  });
  auto shape = x.sizes().vec();
  shape.back() = N;
  return y.view(shape);
}

// The gradient of x: g w, summed in fp32 (one partial sum per thread over its rows of w) and
// rounded to bf16 once.
torch::Tensor small_project_input_grad(const torch::Tensor& g, const torch::Tensor& w) {
  const int64_t N = w.size(0), K = w.size(1), rows = g.numel() / N;
  const auto gc = g.reshape({rows, N}).contiguous();
  const int64_t parts = std::clamp<int64_t>(N / 64, 1, at::get_num_threads());
  auto acc = torch::zeros({parts, rows, K}, torch::kFloat32);
  const uint16_t *gp = bits(gc), *wp = bits(w);
  float* ap = acc.data_ptr<float>();
  at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      kernels::bf16_small_matmul_nn(gp, rows, N, wp, K, N * p / parts, N * (p + 1) / parts, ap + p * rows * K);
  });
  auto shape = g.sizes().vec();
  shape.back() = K;
  return (parts == 1 ? acc[0] : acc.sum(0)).to(torch::kBFloat16).view(shape);
}

// The kernel under autograd, for a gradient that flows to x only (the weights are constants).
struct SmallProjection : torch::autograd::Function<SmallProjection> {
  // b by pointer: autograd refuses undefined tensors as inputs.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               const torch::Tensor* b) {
    ctx->save_for_backward({w});
    return small_project(x, w, *b);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto w = ctx->get_saved_variables()[0];
    torch::Tensor gx;
    if (grads[0].defined()) gx = small_project_input_grad(grads[0].to(torch::kBFloat16), w);
    return {gx, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  if (!small_kernel_applies(x, w, b)) return torch::nn::functional::linear(x, w, b);
  if (torch::GradMode::is_enabled() && x.requires_grad()) return SmallProjection::apply(x, w, &b);
  return small_project(x, w, b);
}

torch::Tensor SwiGlu::operator()(const torch::Tensor& x) const {
  return project(torch::silu(project(x, gate)) * project(x, up), down);
}

std::pair<torch::Tensor, torch::Tensor> Rope::tables(const torch::Tensor& positions,
                                                     torch::ScalarType dtype) const {
  auto idx = torch::arange(0, head_dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(head_dim);
  auto inv_freq = 1.0 / torch::pow(theta, idx);                         // [d/2]
  auto freqs = torch::outer(positions.to(torch::kFloat32), inv_freq);   // [N, d/2]
  const torch::Tensor emb = torch::cat({freqs, freqs}, 1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor Rope::apply(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) const {
  auto c = cos.unsqueeze(1);
  auto s = sin.unsqueeze(1);
  auto x1 = x.narrow(-1, 0, head_dim / 2);
  auto x2 = x.narrow(-1, head_dim / 2, head_dim / 2);
  const torch::Tensor rotated = torch::cat({-x2, x1}, -1);
  return x * c + rotated * s;
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               double scale, std::optional<int64_t> sliding_window) {
  const int64_t heads = q.size(0), tq = q.size(1), kv_heads = k.size(0), tk = k.size(1);
  auto kk = k, vv = v;
  if (kv_heads != heads) {
    kk = k.repeat_interleave(heads / kv_heads, 0);
    vv = v.repeat_interleave(heads / kv_heads, 0);
  }
  auto scores = torch::matmul(q, kk.transpose(1, 2)) * scale;  // [h, tq, tk]
  if (tq > 1 || (sliding_window && tk > *sliding_window)) {
    auto qpos = torch::arange(tk - tq, tk, torch::kInt64).unsqueeze(1);
    auto kpos = torch::arange(0, tk, torch::kInt64).unsqueeze(0);
    auto banned = kpos > qpos;
    if (sliding_window) banned = banned.logical_or(qpos - kpos >= *sliding_window);
    scores = scores.masked_fill(banned, -std::numeric_limits<float>::infinity());
  }
  auto probs = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
  auto out = torch::matmul(probs, vv);  // [h, tq, d]
  return out.transpose(0, 1).reshape({tq, heads * q.size(2)});
}

namespace {

// Experts that receive at most this many rows run through the few-rows kernel in grouped_experts,
// more through LibTorch. Measured (2 threads, [1024 x 2048] weights cycled from memory, one
// session): the kernel gives 146-182, 240, 320-335 and 330 GFLOP/s at 8, 16, 32 and 64 rows, oneDNN
// 99-114, 157-170, 270-285 and 390.
constexpr int64_t kKernelExpertRows = 32;

bool kernel_weight(const torch::Tensor& w, int64_t rows, int64_t cols) {
  return w.defined() && w.scalar_type() == torch::kBFloat16 && w.device().is_cpu() && w.dim() == 2 && w.size(0) == rows &&
         w.size(1) == cols && w.is_contiguous() && !(torch::GradMode::is_enabled() && w.requires_grad());
}

// The grouped path applies to bf16 inference: no gradient to x or to the mixing weights.
bool grouped_applies(const torch::Tensor& x, const Assignments& a) {
  static const bool enabled = kernels::bf16_small_matmul_supported() && !std::getenv("C3PO_NO_BF16_KERNEL");
  return enabled && x.scalar_type() == torch::kBFloat16 && x.device().is_cpu() && x.dim() == 2 && x.size(1) > 0 &&
         !(torch::GradMode::is_enabled() && (x.requires_grad() || a.weights.requires_grad()));
}

// Columns [0, n) split among `parts` threads at multiples of 6 (the kernel's block of columns).
std::pair<int64_t, int64_t> thread_columns(int64_t n, int64_t part, int64_t parts) {
  auto cut = [&](int64_t p) { return p == parts ? n : (n * p / parts) / 6 * 6; };
  return {cut(part), cut(part + 1)};
}

// A [rows, cols] bf16 view of a buffer kept in `slot`, with row stride `stride`, grown as needed.
torch::Tensor scratch_view(torch::Tensor& slot, int64_t rows, int64_t cols, int64_t stride, const torch::TensorOptions& opts) {
  if (!slot.defined() || slot.numel() < rows * stride) slot = torch::empty({rows * stride}, opts);
  return slot.narrow(0, 0, rows * stride).view({rows, stride}).narrow(1, 0, cols);
}

uint16_t* mutable_bits(const torch::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); }

// The same sums as run_experts below, with all experts of small row counts in two parallel sections
// (gate and up, then down with the weighted sum), each thread computing its share of the columns of
// every expert: one fork per projection kind instead of one per expert and projection, and the
// kernel's prefetch runs on from one expert's weights into the next one's.
torch::Tensor grouped_experts(const torch::Tensor& x_in, const std::vector<SwiGlu>& experts, const torch::Tensor& sorted_rows,
                              const torch::Tensor& sorted_experts, const torch::Tensor& sorted_weights, ExpertScratch& scratch) {
  const auto x = x_in.contiguous();
  const int64_t H = x.size(1), A = sorted_rows.size(0);
  const int64_t* ex = sorted_experts.data_ptr<int64_t>();
  const int64_t* rows = sorted_rows.data_ptr<int64_t>();
  struct Group {
    int64_t expert, start, count;
    bool kernel;
  };
  std::vector<Group> groups;
  int64_t F = -1;
  for (int64_t start = 0; start < A;) {
    int64_t end = start;
    while (end < A && ex[end] == ex[start]) ++end;
    const SwiGlu& e = experts[static_cast<size_t>(ex[start])];
    if (F < 0) F = e.gate.defined() ? e.gate.size(0) : 0;
    const bool kernel = end - start <= kKernelExpertRows && F > 0 && kernel_weight(e.gate, F, H) && kernel_weight(e.up, F, H) &&
                        kernel_weight(e.down, H, F);
    groups.push_back({ex[start], start, end - start, kernel});
    start = end;
  }
  const auto opts = x.options();
  // The routed rows, gathered in assignment order, with a row stride of H + 32 (see
  // bf16_small_matmul); the experts' outputs y reuse the same buffer once gate and up are done.
  auto xs = scratch_view(scratch.rows, A, H, H + 32, opts);
  const uint16_t* xb = bits(x);
  uint16_t* xsb = mutable_bits(xs);
  for (int64_t a = 0; a < A; ++a) std::memcpy(xsb + a * (H + 32), xb + rows[a] * H, static_cast<size_t>(H) * 2);
  auto gate = scratch_view(scratch.gate, A, std::max<int64_t>(F, 0), F + 32, opts);
  auto up = scratch_view(scratch.up, A, std::max<int64_t>(F, 0), F, opts);
  // Experts with many rows: LibTorch, their output rows into `up` (F = H is not required, so a
  // buffer of their own).
  std::vector<std::pair<const Group*, torch::Tensor>> big;
  for (const Group& g : groups)
    if (!g.kernel) big.emplace_back(&g, experts[static_cast<size_t>(g.expert)](xs.narrow(0, g.start, g.count)));
  const int64_t parts = std::max(1, at::get_num_threads());
  uint16_t *gb = mutable_bits(gate), *ub = mutable_bits(up);
  at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const auto [f0, f1] = thread_columns(F, p, parts);
      for (const Group& g : groups) {
        if (!g.kernel) continue;
        const SwiGlu& e = experts[static_cast<size_t>(g.expert)];
        const uint16_t* xg = xsb + g.start * (H + 32);
        kernels::bf16_small_matmul(xg, H + 32, g.count, H, bits(e.gate), nullptr, gb + g.start * (F + 32), F + 32, f0, f1);
        kernels::bf16_small_matmul(xg, H + 32, g.count, H, bits(e.up), nullptr, ub + g.start * F, F, f0, f1);
      }
    }
  });
  // As SwiGlu computes it: silu of the rounded gate, rounded, times the rounded up, rounded.
  torch::silu_(gate);
  gate.mul_(up);
  auto ys = xs;  // x's rows are no longer needed
  for (const auto& [g, y] : big) ys.narrow(0, g->start, g->count).copy_(y);
  auto out = torch::zeros({x.size(0), H}, opts);
  const std::vector<float> weights = [&] {
    const auto w = sorted_weights.to(torch::kFloat32).contiguous();
    return std::vector<float>(w.data_ptr<float>(), w.data_ptr<float>() + A);
  }();
  const uint16_t* hb = bits(gate);
  uint16_t *yb = xsb, *ob = mutable_bits(out);
  at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const auto [n0, n1] = thread_columns(H, p, parts);
      for (const Group& g : groups)
        if (g.kernel)
          kernels::bf16_small_matmul(hb + g.start * (F + 32), F + 32, g.count, F, bits(experts[static_cast<size_t>(g.expert)].down),
                                     nullptr, yb + g.start * (H + 32), H + 32, n0, n1);
      // In assignment order, as index_add_ sums them.
      kernels::bf16_weighted_scatter_add(yb, H + 32, rows, weights.data(), A, ob, H, n0, n1);
    }
  });
  return out;
}

}  // namespace

torch::Tensor run_experts(const torch::Tensor& x, const std::vector<SwiGlu>& experts, const Assignments& a,
                          ExpertScratch* scratch) {
  auto out = torch::zeros_like(x);
  if (a.rows.numel() == 0) return out;
  // A stable sort keeps, within one expert, the order in which assignments were made.
  auto order = std::get<1>(torch::sort(a.experts, /*stable=*/true, 0, false));
  auto sorted_experts = a.experts.index_select(0, order);
  auto sorted_rows = a.rows.index_select(0, order);
  auto sorted_weights = a.weights.index_select(0, order).to(x.scalar_type());
  if (grouped_applies(x, a)) {
    ExpertScratch local;
    return grouped_experts(x, experts, sorted_rows, sorted_experts, sorted_weights, scratch ? *scratch : local);
  }
  const int64_t* ex = sorted_experts.data_ptr<int64_t>();
  const int64_t n = sorted_experts.size(0);
  std::vector<torch::Tensor> outputs;
  for (int64_t start = 0; start < n;) {
    int64_t end = start;
    while (end < n && ex[end] == ex[start]) ++end;
    auto rows = sorted_rows.narrow(0, start, end - start);
    auto y = experts[ex[start]](x.index_select(0, rows));
    outputs.push_back(y * sorted_weights.narrow(0, start, end - start).unsqueeze(1));
    start = end;
  }
  return out.index_add(0, sorted_rows, torch::cat(outputs, 0));
}

}  // namespace c3po::model
