// Shared pieces of the CPU kernels: one sample's valid tokens in a contiguous buffer, Gram tiles
// through BLAS, per-row k-nearest lists, and the choice between parallelism across samples and
// inside one sample.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <vector>

namespace emollm::cpu {

// Argument guards of the registered kernels (csrc/cpu/<op>.cpp).
inline void check_tokens(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.dim() == 3, name, " must be [B, N, D], got ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), name, " must be floating point, got ", x.scalar_type());
}

inline void check_mask(const std::optional<at::Tensor>& mask, const at::Tensor& x) {
  if (!mask.has_value()) return;
  TORCH_CHECK(mask->scalar_type() == at::kBool, "mask must be bool, got ", mask->scalar_type());
  TORCH_CHECK(mask->dim() == 2 && mask->size(0) == x.size(0) && mask->size(1) == x.size(1),
              "mask must be [B, N] = [", x.size(0), ", ", x.size(1), "], got ", mask->sizes());
}

// Rows per Gram tile for a sample of n tokens. Large n: 256 (a 256 KiB float tile, L2-sized, and
// BLAS calls big enough to run near peak): at N=16384, D=1024 on 2 cores, 1.68 s against 2.16 s
// with 128. Small n: two tiles, so the symmetric scan skips the lower off-diagonal block (3/4 of
// the GEMM): at B=64, N=256 the kNN pass drops from 58 ms (one 256 tile) to 44 ms (bmm: 53 ms).
// EMOLLM_CPU_TILE overrides it, for tuning.
inline int64_t tile_rows(int64_t n) {
  static const int64_t forced = [] {
    const char* e = std::getenv("EMOLLM_CPU_TILE");
    return e ? std::max<int64_t>(16, std::atoll(e)) : int64_t(0);
  }();
  if (forced) return forced;
  if (n > 512) return 256;
  return std::max<int64_t>(16, ((n + 1) / 2 + 15) / 16 * 16);
}

// Compute type: float for float/half/bfloat16 inputs (accumulate in f32), double for double.
inline at::ScalarType compute_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// One sample's valid tokens, compacted in their original order.
template <typename T>
struct Sample {
  at::Tensor x;               // [n, D] contiguous, compute type
  std::vector<int64_t> orig;  // compacted index -> original index
  std::vector<T> sqnorm;      // ||x_i||^2
  int64_t n = 0;
  int64_t dim = 0;
  int64_t tile = 0;           // rows per Gram tile, see tile_rows

  // The bfloat16 filter (float samples only, knn_filter.cpp): on or off, x rounded to bfloat16
  // (kept whole up to 2^23 values, else rounded tile by tile as the scan needs it: undefined) and,
  // per row, what the rounding bound needs.
  bool filter = false;
  at::Tensor xh;               // [n, D] bfloat16, or undefined
  std::vector<float> hnorm;    // ||xh_i||, rounded up
  std::vector<float> rnorm;    // ||x_i - xh_i||, rounded up
  std::vector<float> norm;     // ||x_i||, rounded up
  std::vector<float> slack;    // what flushing subnormal values to zero can cost, per row

  const T* row(int64_t i) const { return x.data_ptr<T>() + i * dim; }
};

// Vector loops, one copy per instruction set chosen at load time (simd.cpp).
namespace simd {
#define EMOLLM_SIMD_DECLARE(T)                                                             \
  T sqnorm(const T* r, int64_t dim);                                                       \
  T sqdist(const T* a, const T* b, int64_t dim);                                           \
  /* out[b] = max(0, (sq_i + sq[b] - 2 g[b]) * inv_dim) */                                 \
  void row_sqdist(T* out, const T* g, const T* sq, T sq_i, T inv_dim, int64_t n);          \
  int64_t count_below(const T* r, T bar, int64_t n);         /* #{b : r[b] < bar} */       \
  int64_t count_below_each(const T* r, const T* bars, int64_t n); /* #{b : r[b] < bars[b]} */ \
  T row_max(const T* r, int64_t n);                          /* max(0, max_b r[b]) */      \
  void axpy(T* y, T a, const T* x, int64_t n);               /* y += a x */
EMOLLM_SIMD_DECLARE(float)
EMOLLM_SIMD_DECLARE(double)
#undef EMOLLM_SIMD_DECLARE
// h = x rounded to bfloat16 (to nearest, ties to even; x finite); *x_sq = ||x||^2, *h_sq = ||h||^2,
// *r_sq = ||x - h||^2.
void round_bf16(const float* x, uint16_t* h, int64_t dim, float* x_sq, float* h_sq, float* r_sq);
// From one row of a bfloat16 Gram tile g (row i against columns b), the squared distance (scaled by
// 1/D) and its rounding bound e (see bf16_error): lo[b] = max(0, d2) - e, hi[b] = max(0, d2) + e.
void row_bounds(float* lo, float* hi, const uint16_t* g, const float* sq, const float* hn, const float* rn,
                const float* nm, const float* sl, float sq_i, float hn_i, float rn_i, float nm_i, float sl_i,
                float inv_dim, float u, float c, int64_t n);
// Bit b set where r[b] < bar (resp. bars[b]), for n <= 32.
uint32_t mask_below(const float* r, float bar, int64_t n);
uint32_t mask_below_each(const float* r, const float* bars, int64_t n);
}  // namespace simd

// fn(b), in ascending b, for every b < n (n <= 32) with r[b] < bar, resp. r[b] < bars[b]: the
// entries a scan offers to its lists, found by one vector compare.
template <typename F>
inline void for_each_below(const float* r, float bar, int64_t n, F&& fn) {
  for (uint32_t bits = simd::mask_below(r, bar, n); bits != 0; bits &= bits - 1) fn(__builtin_ctz(bits));
}
template <typename F>
inline void for_each_below_each(const float* r, const float* bars, int64_t n, F&& fn) {
  for (uint32_t bits = simd::mask_below_each(r, bars, n); bits != 0; bits &= bits - 1) fn(__builtin_ctz(bits));
}

// Inserts v into the ascending list U[0..k) if it is smaller than U[k-1] (dropping U[k-1]);
// returns whether it did.
inline bool insert_ascending(float* U, int64_t k, float v) {
  if (!(v < U[k - 1])) return false;
  int64_t p = k - 1;
  for (; p > 0 && U[p - 1] > v; --p) U[p] = U[p - 1];
  U[p] = v;
  return true;
}

template <typename T>
inline T squared_norm(const T* r, int64_t dim) {
  return simd::sqnorm(r, dim);
}

// Phase profiler: with EMOLLM_CPU_PROFILE=1 each phase's thread CPU time is summed over threads;
// emollm._C.profile(reset) reads it (docs/cpu-profile.md). Off, a timer costs one branch.
enum Phase { kPrepare, kGram, kSelect, kDensity, kDelta, kCenters, kAssign, kMerge, kPhases };
bool profiling();
int64_t thread_cpu_ns();
void add_phase(Phase p, int64_t ns);
std::vector<std::pair<const char*, double>> phase_seconds(bool reset);

struct PhaseTimer {
  Phase phase;
  int64_t t0;
  explicit PhaseTimer(Phase p) : phase(p), t0(profiling() ? thread_cpu_ns() : -1) {}
  ~PhaseTimer() {
    if (t0 >= 0) add_phase(phase, thread_cpu_ns() - t0);
  }
};

// ||x_i - x_j||^2 <= 4 max ||x||^2: a row whose squared norm stays under a quarter of the type's
// largest value keeps every squared distance finite. Else the row holds NaN/Inf, or values so large
// that the distance-based ops would return NaN: either way a clear error naming the token.
template <typename T>
inline void check_row(const T* row, T sqnorm, int64_t dim, const char* name, int64_t token) {
  if (sqnorm <= std::numeric_limits<T>::max() / 4) return;
  for (int64_t d = 0; d < dim; ++d)
    TORCH_CHECK_VALUE(std::isfinite(row[d]), name, " contains NaN or Inf, first in token ", token);
  T biggest = 0;
  for (int64_t d = 0; d < dim; ++d) biggest = std::max(biggest, std::abs(row[d]));
  TORCH_CHECK_VALUE(false, name, " holds values up to ", static_cast<double>(biggest), " (token ", token,
                    "): squared distances between tokens overflow; scale the tokens down or pass float64");
}

// xb: [N, D] contiguous in the compute type; valid: N bools or nullptr (all valid); at least
// min_valid of them must be valid (the Python API says so first, with the argument's name).
// knn_filter.cpp: turns the bfloat16 filter on for a float sample when it pays (EMOLLM_CPU_BF16: 1
// always, 0 never, unset: on CPUs with AVX512-BF16 and n large enough against k), filling s.xh (or not: see
// Sample), the norms it needs and s.sqnorm in one pass over x; returns whether it did. knn_scan then picks
// candidates from bfloat16 Gram tiles within a proven error bound and the k nearest among them from
// differences (exact lists, KnnLists::exact).
bool prepare_filter(Sample<float>& s, int64_t k);
inline bool prepare_filter(Sample<double>&, int64_t) { return false; }

// filter_k >= 0: the sample is for a k-nearest scan with that k, which may use the bfloat16 filter.
template <typename T>
Sample<T> make_sample(const at::Tensor& xb, const bool* valid, int64_t min_valid = 1, int64_t filter_k = -1) {
  PhaseTimer timer(kPrepare);
  Sample<T> s;
  const int64_t N = xb.size(0);
  s.dim = xb.size(1);
  s.orig.reserve(N);
  for (int64_t i = 0; i < N; ++i)
    if (valid == nullptr || valid[i]) s.orig.push_back(i);
  s.n = static_cast<int64_t>(s.orig.size());
  TORCH_CHECK_VALUE(s.n >= min_valid, "a sample has ", s.n, " valid tokens, fewer than the ", min_valid,
                    " this op needs (k or num_clusters)");
  s.tile = tile_rows(s.n);
  if (s.n == N) {
    s.x = xb;  // no copy when every token is valid
  } else {
    s.x = xb.index_select(0, at::tensor(s.orig, at::kLong)).contiguous();
  }
  s.sqnorm.resize(s.n);
  const T* data = s.x.template data_ptr<T>();
  if (filter_k < 0 || !prepare_filter(s, filter_k))  // the filter computes the norms in its pass
    for (int64_t i = 0; i < s.n; ++i) s.sqnorm[i] = squared_norm(data + i * s.dim, s.dim);
  // A NaN or Inf anywhere in a row makes its norm non-finite: the finiteness check for free.
  for (int64_t i = 0; i < s.n; ++i) check_row(data + i * s.dim, s.sqnorm[i], s.dim, "x", s.orig[i]);
  return s;
}

// ||x_i - x_j||^2 / D from explicit differences. The scans select neighbours with Gram-matrix
// distances (BLAS speed, but ||a||^2 + ||b||^2 - 2a.b loses a few ulps of ||x||^2 to cancellation);
// the values the ops return are then recomputed this way for the few selected pairs, O(N k D).
template <typename T>
inline T squared_distance(const T* a, const T* b, int64_t dim) {
  return simd::sqdist(a, b, dim);
}

// The same in double precision, for decisions that must match a float64 reading of the contract.
template <typename T>
inline double squared_distance_f64(const T* a, const T* b, int64_t dim) {
  double acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t d = 0; d < dim; ++d) acc += (double(a[d]) - double(b[d])) * (double(a[d]) - double(b[d]));
  return acc;
}

template <typename T>
T exact_sqdist(const Sample<T>& s, int64_t i, int64_t j) {
  return squared_distance(s.row(i), s.row(j), s.dim) / T(s.dim);
}

// Relative rounding bound of a Gram-formula squared distance ||a||^2 + ||b||^2 - 2 a.b (BLAS sums
// of length D lose about log2(D) ulps), times the norms it is relative to.
template <typename T>
inline T gram_rounding(int64_t dim) {
  return T(4) * (std::log2(T(dim)) + T(1)) * std::numeric_limits<T>::epsilon();
}

// The nearest of the candidates offered to token i, ties going to the lowest key. Each offer is an
// approximate squared distance (scaled by 1/D) with a bound on its error: the approximations decide
// where they are clear of their bounds; within them (exact duplicates, for one) the two candidates
// are recomputed from differences, then compared by key. Without this, two copies of a token in
// different Gram tiles get different rounding and the higher index could win. offer(d2, cand, key)
// takes a float Gram distance and its bound rel * (||x_i||^2 + ||x_cand||^2).
template <typename T>
struct Nearest {
  const Sample<T>& s;
  int64_t i;
  T rel;
  T best = std::numeric_limits<T>::infinity();  // approximate squared distance (scaled by 1/D)
  T best_err = 0;                               // its error bound
  T best_exact = -1;                            // exact one, computed on demand
  int64_t j = -1, key = -1;

  Nearest(const Sample<T>& s_, int64_t i_) : s(s_), i(i_), rel(gram_rounding<T>(s_.dim) / T(s_.dim)) {}

  inline void offer(T d2, int64_t cand, int64_t cand_key) {
    offer(d2, rel * (s.sqnorm[i] + s.sqnorm[cand]), cand, cand_key);
  }

  inline void offer(T d2, T err, int64_t cand, int64_t cand_key) {
    if (j < 0) {
      take(d2, err, cand, cand_key, -1);
      return;
    }
    if (d2 + err < best - best_err) {
      take(d2, err, cand, cand_key, -1);
    } else if (d2 - err <= best + best_err) {
      if (best_exact < 0) best_exact = exact_sqdist(s, i, j);
      const T e = exact_sqdist(s, i, cand);
      if (e < best_exact || (e == best_exact && cand_key < key)) take(d2, err, cand, cand_key, e);
    }
  }

 private:
  inline void take(T d2, T err, int64_t cand, int64_t cand_key, T exact) {
    best = d2;
    best_err = err;
    j = cand;
    key = cand_key;
    best_exact = exact;
  }
};

// Largest pairwise distance seen, and the pair it belongs to (-1 when none).
template <typename T>
struct MaxPair {
  T d2 = 0;
  int64_t i = -1, j = -1;
  inline void offer(T d, int64_t a, int64_t b) {
    if (d > d2) {
      d2 = d;
      i = a;
      j = b;
    }
  }
  void absorb(const MaxPair& o) {
    if (o.i >= 0) offer(o.d2, o.i, o.j);
  }
  T exact(const Sample<T>& s) const { return i < 0 ? T(0) : exact_sqdist(s, i, j); }
};

// G[0:ni, 0:nj] = A[i0:i0+ni] . B[j0:j0+nj]^T into the flat buffer `buf` (at least ni*nj).
inline at::Tensor gram_tile(at::Tensor& buf, const at::Tensor& a, int64_t i0, int64_t ni,
                            const at::Tensor& b, int64_t j0, int64_t nj) {
  at::Tensor g = buf.narrow(0, 0, ni * nj).view({ni, nj});
  at::mm_out(g, a.narrow(0, i0, ni), b.narrow(0, j0, nj).t());
  return g;
}

// Squared distance scaled by 1/D from norms and a dot product, clamped at 0.
template <typename T>
inline T scaled_sqdist(T ni, T nj, T dot, T inv_dim) {
  T d2 = (ni + nj - T(2) * dot) * inv_dim;
  return d2 > T(0) ? d2 : T(0);
}

// The k smallest distances of every row, ascending, with their column indices.
template <typename T>
struct KnnLists {
  int64_t n = 0, k = 0;
  std::vector<T> dist;        // [n, k]
  std::vector<int64_t> idx;   // [n, k]
  std::vector<T> worst;       // [n]: the current k-th distance, the bar a candidate must beat
  MaxPair<T> max;             // largest distance seen over pairs i != j
  bool exact = false;         // dist holds exact distances (the bfloat16 filter's lists)

  KnnLists(int64_t n_, int64_t k_)
      : n(n_), k(k_), dist(n_ * k_, std::numeric_limits<T>::infinity()), idx(n_ * k_, -1),
        worst(n_, std::numeric_limits<T>::infinity()) {}

  inline void offer(int64_t i, T d, int64_t j) {
    if (!(d < worst[i])) return;
    T* D = dist.data() + i * k;
    int64_t* I = idx.data() + i * k;
    int64_t p = k - 1;
    while (p > 0 && D[p - 1] > d) {
      D[p] = D[p - 1];
      I[p] = I[p - 1];
      --p;
    }
    D[p] = d;
    I[p] = j;
    worst[i] = D[k - 1];
  }

  // exp(-mean of the k nearest squared distances), recomputed exactly.
  float density(const Sample<T>& s, int64_t i) const {
    T sum = 0;
    for (int64_t m = 0; m < k; ++m) {
      const int64_t j = idx[i * k + m];
      sum += exact ? dist[i * k + m] : j == i ? T(0) : exact_sqdist(s, i, j);
    }
    return static_cast<float>(std::exp(-sum / T(k)));
  }

  void absorb(const KnnLists& other) {
    max.absorb(other.max);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t m = 0; m < k; ++m)
        if (other.idx[i * k + m] >= 0) offer(i, other.dist[i * k + m], other.idx[i * k + m]);
  }
};

// at::parallel_for that carries the caller's thread-local state (inference mode, grad mode, dispatch
// keys) into the worker threads. ATen's OpenMP backend does not, and a tensor created under
// torch.inference_mode() cannot be written by a worker thread outside it.
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& fn) {
  const at::ThreadLocalState state;
  at::parallel_for(begin, end, grain, [&](int64_t b, int64_t e) {
    const at::ThreadLocalStateGuard guard(state);
    fn(b, e);
  });
}

// Runs fn(b, inner_parallel) for b in [0, B): across samples when there are at least as many
// samples as threads, else one sample at a time with the parallelism inside the sample.
template <typename F>
void for_each_sample(int64_t B, F&& fn) {
  if (B >= at::get_num_threads()) {
    parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) fn(b, false);
    });
  } else {
    for (int64_t b = 0; b < B; ++b) fn(b, true);
  }
}

// fn(begin, end, tid) over [0, n): in parallel when `parallel`, else on the calling thread.
template <typename F>
void maybe_parallel_for(bool parallel, int64_t n, int64_t grain, F&& fn) {
  if (parallel) {
    parallel_for(0, n, grain, [&](int64_t begin, int64_t end) { fn(begin, end, at::get_thread_num()); });
  } else if (n > 0) {
    fn(0, n, 0);
  }
}

inline int64_t threads_for(bool parallel) { return parallel ? at::get_num_threads() : 1; }

// ----- kernels shared between ops (defined in the op's own .cpp) -----

// knn_density.cpp: k nearest of every valid token (self included as distance 0 when asked),
// streaming symmetric Gram tiles: each tile pair (I <= J) is computed once and feeds both rows
// I and rows J. Also records the largest pairwise distance. When `gram` is defined ([n, n]), the
// tiles are written into it, so that G[i][j] holds x_i . x_j wherever tile(i) <= tile(j).
template <typename T>
KnnLists<T> knn_scan(const Sample<T>& s, int64_t k, bool include_self, bool parallel, const at::Tensor& gram);

// knn_filter.cpp: knn_scan for a sample with the bfloat16 filter on (see prepare_filter).
KnnLists<float> knn_scan_filtered(const Sample<float>& s, int64_t k, bool include_self, bool parallel,
                                  const at::Tensor& gram);

// Bound on |d2 - exact d2| (scaled by 1/D) for d2 from a bfloat16 Gram value g of rows i and j:
// x_i.x_j - xh_i.xh_j = xh_i.(x_j - xh_j) + (x_i - xh_i).x_j, so the rounding of the inputs costs
// at most ||xh_i|| ||r_j|| + ||r_i|| ||x_j||; rounding the float32 sum to bfloat16 at most u |g|;
// the float32 sum, norms and the later float32 arithmetic at most c (||x_i||^2 + ||x_j||^2); and
// flushing subnormals slack_i + slack_j. Twice that (d2 = ... - 2 g), over D. The c term also covers
// the float32 distance from differences the final choice uses, so lo never exceeds it.
constexpr float kBf16Unit = 1.0f / 256 * (1.0f + 1.0f / 64);  // 2^-8 (8 significant bits), rounded up
inline float bf16_fp32_term(int64_t dim) { return 3.0f * float(dim + 16) * std::ldexp(1.0f, -24); }
// (||x_i||^2 + ||x_j||^2 - 2 g) / D clamped at 0, in an order that cannot overflow for rows that
// pass check_row (scaled_sqdist's sum can, when g is near -||x_i|| ||x_j|| and both are huge).
inline float half_sum_sqdist(float sq_i, float sq_j, float g, float inv_dim) {
  const float d2 = (0.5f * (sq_i + sq_j) - g) * (2.0f * inv_dim);
  return d2 > 0.0f ? d2 : 0.0f;
}
inline float bf16_error(const Sample<float>& s, int64_t i, int64_t j, float g) {
  const float e = s.hnorm[i] * s.rnorm[j] + s.rnorm[i] * s.norm[j] + kBf16Unit * std::abs(g) +
                  bf16_fp32_term(s.dim) * (s.sqnorm[i] + s.sqnorm[j]) + s.slack[i] + s.slack[j];
  return 2.0f * e / float(s.dim);
}

// A bfloat16 value (its bits) as float.
inline float bf16_to_float(uint16_t h) { return __builtin_bit_cast(float, uint32_t(h) << 16); }

// dpc_delta.cpp: for the rows `rows` (compacted indices), the nearest denser token over all
// tokens by a full tiled scan; writes best_j (-1 when none is denser). Optionally records the
// largest pairwise distance over those rows into *max.
template <typename T>
void nearest_denser_scan(const Sample<T>& s, const float* rho, const std::vector<int64_t>& rows,
                         std::vector<int64_t>& best_j, MaxPair<T>* max, bool parallel);

// j is denser than i: higher density, or equal density and lower index.
inline bool denser(const float* rho, int64_t j, int64_t i) {
  return rho[j] > rho[i] || (rho[j] == rho[i] && j < i);
}

}  // namespace emollm::cpu
