#pragma once
// A bf16 matrix product for few rows (decoding, the re-mix tail, experts that receive few
// tokens), where the time goes into streaming the weights: y = x w^T (+ b) with x [m, K] and
// w [N, K] in bf16, products summed in fp32 with AVX-512 BF16 (vdpbf16ps), y rounded to bf16
// (to nearest, ties to even, as LibTorch rounds). Chosen at run time by the CPU's features; the
// caller falls back to LibTorch elsewhere. No torch here: the caller splits N over threads.
#include <cstdint>

namespace c3po::model::kernels {

// Rows up to which the kernel is used: measured on an AVX-512 BF16 EPYC (bench_model
// expert_projection, [1024 x 2048] from memory, 2 threads) it streams weights 1.2-1.8x faster than
// LibTorch's oneDNN path at 1-2 rows, about as fast at 4 and slower from 8 on.
constexpr int64_t kSmallRows = 4;

// True when this build has the kernel and the CPU runs AVX-512 BF16 (checked once).
bool bf16_small_matmul_supported();

// Output columns [n0, n1) of y [m, N] (row stride N) from x [m, K] (row stride ldx >= K), w [N, K]
// (row stride K) and bias [N] or nullptr; m >= 1. bf16 values as their 16 bits. Rows of x whose
// stride is a multiple of 4 KiB share L1 sets with the rows of w, which are read at the same
// offsets: a stride of K + 32 avoids that.
void bf16_small_matmul(const uint16_t* x, int64_t ldx, int64_t m, int64_t K, const uint16_t* w, const uint16_t* bias, uint16_t* y,
                       int64_t N, int64_t n0, int64_t n1);

// The gradient of x in y = x w^T: adds g[:, n0:n1] w[n0:n1, :] to acc [m, K] (fp32, row stride K),
// with g [m, N] and w [N, K] in bf16. Each row of w is read once, whole; callers give threads
// disjoint ranges of n and their own acc, then add the acc.
void bf16_small_matmul_nn(const uint16_t* g, int64_t m, int64_t N, const uint16_t* w, int64_t K, int64_t n0,
                          int64_t n1, float* acc);

// out[rows[a], n] += bf16(y[a, n] * weights[a]) for a = 0, 1, ..., count - 1 in that order and
// columns [n0, n1), each product and each sum rounded to bf16 as LibTorch's bf16 index_add_ of the
// bf16 products rounds them (weights: bf16 values as float). y row stride ldy, out row stride ldo.
void bf16_weighted_scatter_add(const uint16_t* y, int64_t ldy, const int64_t* rows, const float* weights, int64_t count,
                               uint16_t* out, int64_t ldo, int64_t n0, int64_t n1);

}  // namespace c3po::model::kernels
