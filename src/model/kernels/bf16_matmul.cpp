#include "model/kernels/bf16_matmul.h"

#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define C3PO_HAVE_AVX512BF16_KERNEL 1
#endif

namespace c3po::model::kernels {
namespace {

float bf16_to_float(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest, ties to even; NaN stays a (quiet) NaN.
uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

#ifdef C3PO_HAVE_AVX512BF16_KERNEL

#define C3PO_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// Elements of w (bf16) to prefetch ahead of the loads.
constexpr int64_t kPrefetchAhead = 512;

// The sum of the 16 lanes.
C3PO_TARGET inline float lane_sum(__m512 v) {
  // Halves folded with in-register shuffles (GCC 12's extract intrinsics warn about their own
  // undefined operands).
  v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(0xffff, v, v, 0x4e));
  v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(0xffff, v, v, 0xb1));
  __m128 s4 = _mm512_maskz_extractf32x4_ps(0xf, v, 0);
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_shuffle_ps(s4, s4, 1));
  return _mm_cvtss_f32(s4);
}

// R rows of x against C rows of w: R x C fp32 accumulators of 16 lanes, 32 bf16 products per step.
// Several rows of w give independent accumulation chains even for one row of x, and each loaded
// row of x serves C rows of w. out[r * C + c] = x_r . w_c.
template <int R, int C>
C3PO_TARGET void block_dot(const uint16_t* x, int64_t ldx, int64_t K, const uint16_t* w, float* out) {
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    // Prefetched 1 KiB ahead in each row of w: measured 10-30% faster at m = 1 than the hardware
    // prefetcher alone, which follows C streams in the same L1 sets.
    for (int c = 0; c < C; ++c) _mm_prefetch(reinterpret_cast<const char*>(w + c * K + k + kPrefetchAhead), _MM_HINT_T0);
    __m512bh wv[C];
    for (int c = 0; c < C; ++c) wv[c] = (__m512bh)_mm512_loadu_si512(w + c * K + k);
    for (int r = 0; r < R; ++r) {
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + r * ldx + k);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wv[c]);
    }
  }
  if (k < K) {
    const __mmask32 mask = (__mmask32)((1ull << (K - k)) - 1);
    __m512bh wv[C];
    for (int c = 0; c < C; ++c) wv[c] = (__m512bh)_mm512_maskz_loadu_epi16(mask, w + c * K + k);
    for (int r = 0; r < R; ++r) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(mask, x + r * ldx + k);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wv[c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r * C + c] = lane_sum(acc[r][c]);
}

// Columns [n, n + C) of all m rows of y; the C rows of w stay in L1 while the rows of x pass.
template <int C>
C3PO_TARGET void columns(const uint16_t* x, int64_t ldx, int64_t m, int64_t K, const uint16_t* w, const uint16_t* bias, uint16_t* y,
                         int64_t N, int64_t n) {
  float dots[4 * C];
  const uint16_t* wblock = w + n * K;
  for (int64_t r = 0; r < m;) {
    int rows = 1;
    if (m - r >= 4) {
      block_dot<4, C>(x + r * ldx, ldx, K, wblock, dots);
      rows = 4;
    } else if (m - r >= 2) {
      block_dot<2, C>(x + r * ldx, ldx, K, wblock, dots);
      rows = 2;
    } else {
      block_dot<1, C>(x + r * ldx, ldx, K, wblock, dots);
    }
    for (int i = 0; i < rows; ++i)
      for (int c = 0; c < C; ++c) {
        const float b = bias ? bf16_to_float(bias[n + c]) : 0.0f;
        y[(r + i) * N + n + c] = float_to_bf16(dots[i * C + c] + b);
      }
    r += rows;
  }
}

C3PO_TARGET void small_matmul_avx512(const uint16_t* x, int64_t ldx, int64_t m, int64_t K, const uint16_t* w, const uint16_t* bias,
                                     uint16_t* y, int64_t N, int64_t n0, int64_t n1) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) columns<4>(x, ldx, m, K, w, bias, y, N, n);
  for (; n < n1; ++n) columns<1>(x, ldx, m, K, w, bias, y, N, n);
}

// 16 bf16 values widened exactly to fp32.
C3PO_TARGET inline __m512 load_bf16(const uint16_t* p, __mmask16 mask) {
  const __m256i h = _mm256_maskz_loadu_epi16(mask, p);
  // maskz forms: GCC 12's unmasked ones warn about their own undefined operands.
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, h), 16));
}

C3PO_TARGET void small_matmul_nn_avx512(const uint16_t* g, int64_t m, int64_t N, const uint16_t* w, int64_t K,
                                        int64_t n0, int64_t n1, float* acc) {
  for (int64_t n = n0; n < n1; ++n) {
    const uint16_t* wrow = w + n * K;
    __m512 gv[4];
    for (int64_t r = 0; r < m; ++r) gv[r] = _mm512_set1_ps(bf16_to_float(g[r * N + n]));
    for (int64_t k = 0; k < K; k += 16) {
      if ((k & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(wrow + k + kPrefetchAhead), _MM_HINT_T0);
      const __mmask16 mask = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
      const __m512 wv = load_bf16(wrow + k, mask);
      for (int64_t r = 0; r < m; ++r) {
        float* a = acc + r * K + k;
        _mm512_mask_storeu_ps(a, mask, _mm512_fmadd_ps(gv[r], wv, _mm512_maskz_loadu_ps(mask, a)));
      }
    }
  }
}

#endif

}  // namespace

bool bf16_small_matmul_supported() {
#ifdef C3PO_HAVE_AVX512BF16_KERNEL
  static const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                                __builtin_cpu_supports("avx512bf16");
  return supported;
#else
  return false;
#endif
}

void bf16_small_matmul(const uint16_t* x, int64_t ldx, int64_t m, int64_t K, const uint16_t* w, const uint16_t* bias, uint16_t* y,
                       int64_t N, int64_t n0, int64_t n1) {
#ifdef C3PO_HAVE_AVX512BF16_KERNEL
  small_matmul_avx512(x, ldx, m, K, w, bias, y, N, n0, n1);
#else
  (void)x, (void)ldx, (void)m, (void)K, (void)w, (void)bias, (void)y, (void)N, (void)n0, (void)n1;
#endif
}

void bf16_small_matmul_nn(const uint16_t* g, int64_t m, int64_t N, const uint16_t* w, int64_t K, int64_t n0,
                          int64_t n1, float* acc) {
#ifdef C3PO_HAVE_AVX512BF16_KERNEL
  small_matmul_nn_avx512(g, m, N, w, K, n0, n1, acc);
#else
  (void)g, (void)m, (void)N, (void)w, (void)K, (void)n0, (void)n1, (void)acc;
#endif
}

}  // namespace c3po::model::kernels
