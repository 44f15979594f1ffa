// dpc_delta on CUDA: the distance from every token to its nearest denser token (nearest.cuh),
// then one block per sample gives the peak (the token with no denser one) the sample's largest
// pairwise distance: the farthest pair of Gram distances, recomputed from differences.
#include "cuda/nearest.cuh"

namespace emollm::cuda {

struct NearestDenserKernel {
  using Shared = NearestShared;
#pragma nv_exec_check_disable
  template <typename Ctx, typename T>
  static EMOLLM_HD void run(const Ctx& ctx, Shared& sh, const NearestArgs<T>& a) {
    nearest_block<Scan::kDenser>(ctx, sh, a);
  }
};

struct PeakShared {
  float g[kThreads];
  int32_t i[kThreads];
  int32_t j[kThreads];
  float value;
};

// One block per sample: delta of the peak rows (marked -1) = the largest pairwise distance.
struct PeakKernel {
  using Shared = PeakShared;
#pragma nv_exec_check_disable
  template <typename Ctx, typename T>
  static EMOLLM_HD void run(const Ctx& ctx, Shared& sh, const NearestArgs<T>& a) {
    const int64_t b = ctx.block();
    const int t = ctx.thread();
    float* delta = a.delta + b * a.N;
    // The farthest pair: largest Gram distance, then lowest row (any pair that attains it would
    // do; this one is deterministic).
    float g = -1.f;
    int32_t i = -1, j = -1;
    for (int64_t r = t; r < a.N; r += kThreads) {
      const float rg = a.row_max[b * a.N + r];
      if (rg > g) {
        g = rg;
        i = static_cast<int32_t>(r);
        j = a.row_max_tok[b * a.N + r];
      }
    }
    sh.g[t] = g;
    sh.i[t] = i;
    sh.j[t] = j;
    ctx.sync();
    if (t == 0) {
      for (int u = 1; u < kThreads; ++u)
        if (sh.g[u] > g || (sh.g[u] == g && sh.i[u] >= 0 && sh.i[u] < i)) {
          g = sh.g[u];
          i = sh.i[u];
          j = sh.j[u];
        }
      const T* xs = a.x + b * a.N * a.D;
      sh.value = j < 0 ? 0.f : sqrtf(exact_sqdist(xs + int64_t(i) * a.D, xs + int64_t(j) * a.D, a.D) / float(a.D));
    }
    ctx.sync();
    for (int64_t r = t; r < a.N; r += kThreads)
      if (delta[r] < 0.f) delta[r] = sh.value;
  }
};

template <typename Exec, typename T>
cudaError_t dpc_delta(Exec& exec, const T* x, const uint8_t* mask, const float* rho, int64_t B, int64_t N, int64_t D,
                      float* sqnorm, float* row_max, int32_t* row_max_tok, float* delta, int64_t* parent) {
  if (!sizes_ok(B, N, D)) return cudaErrorInvalidValue;
  cudaError_t err = compute_sqnorm(exec, x, B * N, D, sqnorm);
  if (err != cudaSuccess) return err;
  const NearestArgs<T> args{x, mask, sqnorm, rho, nullptr, N, D, 0, delta, parent, row_max, row_max_tok, nullptr};
  err = exec.template launch<NearestDenserKernel>(row_blocks(B, N), args);
  if (err != cudaSuccess) return err;
  return exec.template launch<PeakKernel>(B, args);
}

}  // namespace emollm::cuda

extern "C" cudaError_t emollm_dpc_delta_cuda(const void* x, int dtype, const uint8_t* mask, const float* rho,
                                             int64_t B, int64_t N, int64_t D, float* sqnorm, float* row_max,
                                             int32_t* row_max_tok, float* delta, int64_t* parent,
                                             cudaStream_t stream) {
  using namespace emollm::cuda;
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    DeviceExec exec{stream};
    return dpc_delta(exec, static_cast<const T*>(x), mask, rho, B, N, D, sqnorm, row_max, row_max_tok, delta,
                     parent);
  });
}
