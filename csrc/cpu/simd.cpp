// The inner loops of the CPU kernels, compiled once per instruction set (AVX-512, AVX2, baseline
// x86-64) and picked at load time by the CPU (GCC's target_clones): the wheel stays portable and
// a machine with wide vectors uses them. Plus the phase profiler (EMOLLM_CPU_PROFILE=1).
#include <time.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cpu/common.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(EMOLLM_NO_SIMD_CLONES)
#define EMOLLM_SIMD __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EMOLLM_SIMD
#endif

namespace emollm::cpu::simd {

#define EMOLLM_SIMD_FUNCTIONS(T)                                                                   \
  EMOLLM_SIMD T sqnorm(const T* r, int64_t dim) {                                                  \
    T acc = 0;                                                                                     \
    _Pragma("omp simd reduction(+ : acc)") for (int64_t d = 0; d < dim; ++d) acc += r[d] * r[d];   \
    return acc;                                                                                    \
  }                                                                                                \
  EMOLLM_SIMD T sqdist(const T* a, const T* b, int64_t dim) {                                      \
    T acc = 0;                                                                                     \
    _Pragma("omp simd reduction(+ : acc)") for (int64_t d = 0; d < dim; ++d) {                     \
      const T t = a[d] - b[d];                                                                     \
      acc += t * t;                                                                                \
    }                                                                                              \
    return acc;                                                                                    \
  }                                                                                                \
  EMOLLM_SIMD void row_sqdist(T* out, const T* g, const T* sq, T sq_i, T inv_dim, int64_t n) {      \
    _Pragma("omp simd") for (int64_t b = 0; b < n; ++b) {                                          \
      const T d2 = (sq_i + sq[b] - T(2) * g[b]) * inv_dim;                                         \
      out[b] = d2 > T(0) ? d2 : T(0);                                                              \
    }                                                                                              \
  }                                                                                                \
  EMOLLM_SIMD int64_t count_below(const T* r, T bar, int64_t n) {                                  \
    int64_t c = 0;                                                                                 \
    _Pragma("omp simd reduction(+ : c)") for (int64_t b = 0; b < n; ++b) c += r[b] < bar;          \
    return c;                                                                                      \
  }                                                                                                \
  EMOLLM_SIMD int64_t count_below_each(const T* r, const T* bars, int64_t n) {                     \
    int64_t c = 0;                                                                                 \
    _Pragma("omp simd reduction(+ : c)") for (int64_t b = 0; b < n; ++b) c += r[b] < bars[b];      \
    return c;                                                                                      \
  }                                                                                                \
  EMOLLM_SIMD T row_max(const T* r, int64_t n) {                                                   \
    T m = 0;                                                                                       \
    _Pragma("omp simd reduction(max : m)") for (int64_t b = 0; b < n; ++b) m = r[b] > m ? r[b] : m; \
    return m;                                                                                      \
  }                                                                                                \
  EMOLLM_SIMD void axpy(T* y, T a, const T* x, int64_t n) {                                        \
    _Pragma("omp simd") for (int64_t d = 0; d < n; ++d) y[d] += a * x[d];                          \
  }

EMOLLM_SIMD_FUNCTIONS(float)
EMOLLM_SIMD_FUNCTIONS(double)

// The bfloat16 filter's loops (knn_filter.cpp), float only.
EMOLLM_SIMD void round_bf16(const float* x, uint16_t* h, int64_t dim, float* x_sq, float* h_sq, float* r_sq) {
  float xs = 0, hs = 0, rs = 0;
  _Pragma("omp simd reduction(+ : xs, hs, rs)") for (int64_t d = 0; d < dim; ++d) {
    uint32_t bits = __builtin_bit_cast(uint32_t, x[d]);
    bits = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;  // to nearest, ties to even
    const float hv = __builtin_bit_cast(float, bits);
    h[d] = static_cast<uint16_t>(bits >> 16);
    const float r = x[d] - hv;
    xs += x[d] * x[d];
    hs += hv * hv;
    rs += r * r;
  }
  *x_sq = xs;
  *h_sq = hs;
  *r_sq = rs;
}

EMOLLM_SIMD void row_bounds(float* lo, float* hi, const uint16_t* g, const float* sq, const float* hn,
                            const float* rn, const float* nm, const float* sl, float sq_i, float hn_i, float rn_i,
                            float nm_i, float sl_i, float inv_dim, float u, float c, int64_t n) {
  const float two_inv = 2.0f * inv_dim;
  _Pragma("omp simd") for (int64_t b = 0; b < n; ++b) {
    const float gb = __builtin_bit_cast(float, uint32_t(g[b]) << 16);
    float d2 = (0.5f * (sq_i + sq[b]) - gb) * two_inv;  // halved first: no overflow (half_sum_sqdist)
    d2 = d2 > 0.0f ? d2 : 0.0f;
    const float ag = gb < 0.0f ? -gb : gb;
    const float e = (hn_i * rn[b] + rn_i * nm[b] + u * ag + c * (sq_i + sq[b]) + sl_i + sl[b]) * two_inv;
    lo[b] = d2 - e;
    hi[b] = d2 + e;
  }
}

EMOLLM_SIMD uint32_t mask_below(const float* r, float bar, int64_t n) {
  uint32_t m = 0;
  _Pragma("omp simd reduction(| : m)") for (int64_t b = 0; b < n; ++b) m |= uint32_t(r[b] < bar) << b;
  return m;
}

EMOLLM_SIMD uint32_t mask_below_each(const float* r, const float* bars, int64_t n) {
  uint32_t m = 0;
  _Pragma("omp simd reduction(| : m)") for (int64_t b = 0; b < n; ++b) m |= uint32_t(r[b] < bars[b]) << b;
  return m;
}

}  // namespace emollm::cpu::simd

namespace emollm::cpu {

namespace {
std::atomic<int64_t> phase_ns[kPhases];
}

bool profiling() {
  static const bool on = [] {
    const char* e = std::getenv("EMOLLM_CPU_PROFILE");
    return e != nullptr && std::strcmp(e, "1") == 0;
  }();
  return on;
}

int64_t thread_cpu_ns() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return int64_t(t.tv_sec) * 1000000000 + t.tv_nsec;
}

void add_phase(Phase p, int64_t ns) { phase_ns[p].fetch_add(ns, std::memory_order_relaxed); }

std::vector<std::pair<const char*, double>> phase_seconds(bool reset) {
  static const char* names[kPhases] = {"prepare", "gram", "select", "density", "delta", "centers", "assign", "merge"};
  std::vector<std::pair<const char*, double>> out;
  for (int p = 0; p < kPhases; ++p)
    out.emplace_back(names[p], double(reset ? phase_ns[p].exchange(0) : phase_ns[p].load()) * 1e-9);
  return out;
}

}  // namespace emollm::cpu
