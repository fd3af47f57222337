// The few-rows bf16 kernel (src/model/kernels/bf16_matmul.*) against sums in double of the same
// bf16 inputs, on odd shapes, forward and the gradient of the input, and the dispatch in project():
// where it applies and where LibTorch (and autograd) keep the work.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>

#include "model/blocks.h"
#include "model/kernels/bf16_matmul.h"

namespace c3po::model {
namespace {

torch::Tensor random_bf16(std::vector<int64_t> shape, torch::Generator& g) {
  return torch::randn(shape, g, torch::kFloat32).to(torch::kBFloat16);
}

// y from the kernel over all columns, split into three column ranges as threads would.
torch::Tensor kernel(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  const int64_t m = x.size(0), K = x.size(1), N = w.size(0);
  auto y = torch::full({m, N}, 7.0, torch::kBFloat16);
  auto p = [](const torch::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); };
  auto* yp = reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>());
  const int64_t cuts[] = {0, N / 3, (2 * N) / 3, N};
  for (int s = 0; s < 3; ++s)
    kernels::bf16_small_matmul(p(x), K, m, K, p(w), b.defined() ? p(b) : nullptr, yp, N, cuts[s], cuts[s + 1]);
  return y;
}

// The bound: the double sum rounded once to bf16 is within half a bf16 ulp of the exact value; the
// kernel's fp32 sums (products of bf16 are exact in fp32) add at most K * 2^-24 * sum |x_k w_k|
// before its own rounding to bf16, which adds half an ulp: one bf16 ulp of |y| plus that.
// roundings: how many times the result may have been rounded to bf16 (LibTorch rounds x w^T, then
// the sum with the bias: 2 ulps; the kernel rounds once).
void expect_close(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, const torch::Tensor& got,
                  double roundings = 1) {
  const auto xd = x.to(torch::kFloat64), wd = w.to(torch::kFloat64);
  auto exact = torch::matmul(xd, wd.t());
  if (b.defined()) exact = exact + b.to(torch::kFloat64);
  const auto magnitude = torch::matmul(xd.abs(), wd.abs().t());
  const int64_t K = x.size(1);
  const auto g = got.to(torch::kFloat64);
  for (int64_t i = 0; i < exact.size(0); ++i)
    for (int64_t n = 0; n < exact.size(1); ++n) {
      const double e = exact[i][n].item<double>(), v = g[i][n].item<double>();
      const double ulp = std::ldexp(1.0, std::ilogb(std::max(std::abs(e), 1e-30)) - 7);
      const double bound = roundings * ulp + static_cast<double>(K) * std::ldexp(1.0, -24) * magnitude[i][n].item<double>();
      ASSERT_LE(std::abs(v - e), bound) << "row " << i << " col " << n << " of [" << x.size(0) << "x" << K << "] x ["
                                        << w.size(0) << "x" << K << "]^T";
    }
}

TEST(Bf16Kernel, MatchesDoubleSumsOnOddShapes) {
  if (!kernels::bf16_small_matmul_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  torch::Generator g = at::detail::createCPUGenerator(5);
  // Blocks of 4 and 6 columns, of 1, 2 and 4 rows, and the prefetch of the next block of w.
  for (int64_t m : {1, 2, 3, 5, 8, 9, 15, 16, 33})
    for (int64_t K : {1, 31, 32, 33, 100, 2048})
      for (int64_t N : {1, 7, 13, 64, 129}) {
        const auto x = random_bf16({m, K}, g), w = random_bf16({N, K}, g), b = random_bf16({N}, g);
        expect_close(x, w, torch::Tensor(), kernel(x, w, torch::Tensor()));
        expect_close(x, w, b, kernel(x, w, b));
      }
}

TEST(Bf16Kernel, RoundsToNearestEvenAndKeepsNonFinite) {
  if (!kernels::bf16_small_matmul_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  // 1 + 2^-8 lies halfway between the bf16 neighbours 1 and 1 + 2^-7: ties go to the even one, 1.
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: the even one is 1 + 2^-6.
  auto x = torch::tensor({{1.0f, 1.0f}}).to(torch::kBFloat16);
  auto w = torch::tensor({{1.0f, std::ldexp(1.0f, -8)}, {1.0f, 3 * std::ldexp(1.0f, -8)}}).to(torch::kBFloat16);
  auto y = kernel(x, w, torch::Tensor()).to(torch::kFloat32);
  EXPECT_EQ(y[0][0].item<float>(), 1.0f);
  EXPECT_EQ(y[0][1].item<float>(), 1.0f + std::ldexp(1.0f, -6));
  // As LibTorch rounds the same fp32 value.
  EXPECT_EQ(torch::tensor({1.0f + 3 * std::ldexp(1.0f, -8)}).to(torch::kBFloat16).item<float>(), y[0][1].item<float>());
  const float inf = std::numeric_limits<float>::infinity();
  x = torch::tensor({{inf, 1.0f}}).to(torch::kBFloat16);
  y = kernel(x, w, torch::Tensor()).to(torch::kFloat32);
  EXPECT_TRUE(std::isinf(y[0][0].item<float>()));
  x = torch::tensor({{std::nanf(""), 1.0f}}).to(torch::kBFloat16);
  EXPECT_TRUE(std::isnan(kernel(x, w, torch::Tensor()).to(torch::kFloat32)[0][1].item<float>()));
}

TEST(Bf16Kernel, ProjectUsesItOnlyWhereNoGradientFlows) {
  if (!kernels::bf16_small_matmul_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  torch::Generator g = at::detail::createCPUGenerator(9);
  const auto w = random_bf16({96, 200}, g), b = random_bf16({96}, g);
  torch::NoGradGuard no_grad;
  // Few rows, leading dimensions kept: the kernel's bits exactly.
  static_assert(kernels::kSmallRows >= 3);
  const auto x = random_bf16({1, 3, 200}, g);
  const auto y = project(x, w, b);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{1, 3, 96}));
  EXPECT_TRUE(torch::equal(y.reshape({3, 96}), kernel(x.reshape({3, 200}), w, b)));
  // LibTorch's own product is within its looser bound.
  expect_close(x.reshape({3, 200}), w, b, torch::nn::functional::linear(x, w, b).reshape({3, 96}), 2);
  // Many rows: LibTorch's product.
  const auto big = random_bf16({kernels::kSmallRows + 1, 200}, g);
  EXPECT_TRUE(torch::equal(project(big, w, b), torch::nn::functional::linear(big, w, b)));
  // fp32: LibTorch's.
  const auto xf = x.to(torch::kFloat32), wf = w.to(torch::kFloat32);
  EXPECT_TRUE(torch::equal(project(xf, wf, torch::Tensor()), torch::nn::functional::linear(xf, wf)));
}

// Under autograd with constant weights (the re-mix tail): the forward is the kernel's, and the
// gradient of x, g w, is within the same bound of its double sum (N products per value).
TEST(Bf16Kernel, InputGradientMatchesDoubleSumsOnOddShapes) {
  if (!kernels::bf16_small_matmul_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  torch::Generator gen = at::detail::createCPUGenerator(11);
  for (int64_t m = 1; m <= kernels::kSmallRows; ++m)
    for (int64_t K : {1, 17, 33, 2048})
      for (int64_t N : {1, 7, 64, 129, 1000}) {
        const auto w = random_bf16({N, K}, gen), b = random_bf16({N}, gen), g = random_bf16({m, N}, gen);
        const auto x0 = random_bf16({m, K}, gen);
        auto x = x0.clone().requires_grad_(true);
        const auto y = project(x, w, b);
        ASSERT_TRUE(y.requires_grad());
        EXPECT_TRUE(torch::equal(y.detach(), kernel(x0, w, b)));
        y.backward(g);
        expect_close(g, w.t().contiguous(), torch::Tensor(), x.grad());
      }
}

// The weighted sum of the experts' outputs rounds as LibTorch's bf16 index_add_ of the bf16
// products does: each product, then each sum, in assignment order (rows repeat).
TEST(Bf16Kernel, WeightedScatterAddRoundsAsIndexAdd) {
  if (!kernels::bf16_small_matmul_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  torch::Generator g = at::detail::createCPUGenerator(13);
  for (int64_t N : {1, 15, 16, 17, 100}) {
    const int64_t A = 40, R = 7;
    const auto y = random_bf16({A, N}, g);
    const auto rows = torch::randint(R, {A}, g, torch::kInt64);
    const auto weights = torch::rand({A}, g, torch::kFloat32).to(torch::kBFloat16);
    const auto want = torch::zeros({R, N}, torch::kBFloat16).index_add_(0, rows, y * weights.unsqueeze(1));
    auto got = torch::zeros({R, N}, torch::kBFloat16);
    const auto wf = weights.to(torch::kFloat32);
    const int64_t cut = N / 2;
    for (auto [n0, n1] : {std::pair<int64_t, int64_t>{0, cut}, {cut, N}})
      kernels::bf16_weighted_scatter_add(reinterpret_cast<const uint16_t*>(y.data_ptr<at::BFloat16>()), N, rows.data_ptr<int64_t>(),
                                         wf.data_ptr<float>(), A, reinterpret_cast<uint16_t*>(got.data_ptr<at::BFloat16>()), N, n0, n1);
    EXPECT_TRUE(torch::equal(got, want)) << "N = " << N;
  }
}

// The routed experts in bf16 inference (few rows per expert through the kernel, in one parallel
// section per projection kind; an expert with many rows through LibTorch) against the same sums
// from LibTorch alone, and both against the exact result: odd sizes, repeated tokens, an idle expert.
TEST(Bf16Kernel, GroupedExpertsAsCloseToExactAsLibTorch) {
  if (!kernels::bf16_small_matmul_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  torch::Generator g = at::detail::createCPUGenerator(17);
  const int64_t H = 70, F = 50, E = 6, N = 60;
  std::vector<SwiGlu> experts;
  for (int64_t e = 0; e < E; ++e)
    experts.push_back({random_bf16({F, H}, g) * 0.2, random_bf16({F, H}, g) * 0.2, random_bf16({H, F}, g) * 0.2});
  const auto x = random_bf16({N, H}, g);
  // Expert 0 gets every token (more rows than the kernel takes), expert 5 none, the others a few.
  std::vector<int64_t> rows, ids;
  for (int64_t t = 0; t < N; ++t) {
    rows.push_back(t), ids.push_back(0);
    rows.push_back(t), ids.push_back(1 + t % 4);
    if (t % 3 == 0) rows.push_back(t), ids.push_back(1 + (t / 3) % 4);
  }
  const auto weights = torch::rand({static_cast<int64_t>(rows.size())}, g, torch::kFloat32);
  const Assignments a{torch::tensor(rows), torch::tensor(ids), weights};
  torch::NoGradGuard no_grad;
  ExpertScratch scratch;
  const auto got = run_experts(x, experts, a, &scratch).to(torch::kFloat64);
  ASSERT_TRUE(scratch.rows.defined()) << "the grouped path did not run";
  // Called again with the scratch of the first call (a forward pass reuses it from layer to layer).
  EXPECT_TRUE(torch::equal(run_experts(x, experts, a, &scratch).to(torch::kFloat64), got));
  namespace F_ = torch::nn::functional;
  auto libtorch = torch::zeros({N, H}, torch::kBFloat16), exact = torch::zeros({N, H}, torch::kFloat64);
  for (size_t i = 0; i < rows.size(); ++i) {
    const SwiGlu& e = experts[static_cast<size_t>(ids[i])];
    const auto xi = x[rows[i]].unsqueeze(0);
    const auto wi = weights[static_cast<int64_t>(i)].to(torch::kBFloat16);
    libtorch[rows[i]] += (F_::linear(torch::silu(F_::linear(xi, e.gate)) * F_::linear(xi, e.up), e.down) * wi)[0];
    const auto xd = xi.to(torch::kFloat64);
    const auto h = torch::silu(F_::linear(xd, e.gate.to(torch::kFloat64))) * F_::linear(xd, e.up.to(torch::kFloat64));
    exact[rows[i]] += (F_::linear(h, e.down.to(torch::kFloat64)) * wi.to(torch::kFloat64))[0];
  }
  const double err_got = (got - exact).abs().max().item<double>(), err_lib = (libtorch.to(torch::kFloat64) - exact).abs().max().item<double>();
  const double mean_got = (got - exact).abs().mean().item<double>(), mean_lib = (libtorch.to(torch::kFloat64) - exact).abs().mean().item<double>();
  std::printf("grouped experts: max |err| %.4g (LibTorch %.4g), mean %.4g (LibTorch %.4g), max |exact| %.3g\n", err_got, err_lib,
              mean_got, mean_lib, exact.abs().max().item<double>());
  // Both round at the same points; they differ in the order of the fp32 sums only.
  EXPECT_LE(mean_got, 1.25 * mean_lib);
  EXPECT_LE(err_got, 2.0 * err_lib);
}

TEST(Bf16Kernel, GradientsStillFlowThroughProject) {
  torch::Generator g = at::detail::createCPUGenerator(3);
  auto w = random_bf16({8, 40}, g);
  auto x = random_bf16({1, 40}, g).requires_grad_(true);
  const auto y = project(x, w, torch::Tensor());
  ASSERT_TRUE(y.requires_grad());
  y.to(torch::kFloat32).sum().backward();
  // d sum(x w^T) / dx = the column sums of w.
  EXPECT_TRUE(torch::allclose(x.grad().to(torch::kFloat32), w.to(torch::kFloat32).sum(0).unsqueeze(0), 1e-2, 1e-2));
  // Weights that want a gradient get it (from LibTorch): d sum / dw = x in every row.
  w.requires_grad_(true);
  project(x.detach(), w, torch::Tensor()).to(torch::kFloat32).sum().backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_TRUE(torch::equal(w.grad(), x.detach().expand({8, 40})));
}

}  // namespace
}  // namespace c3po::model
