// The assignment step of dpc_cluster on CUDA: every valid token joins its nearest center (lowest
// rank on ties, exact near-ties as in nearest.cuh), then every center its own cluster. The
// centers come from knn_density, dpc_delta and a top-C of rho * delta on the torch side.
#include "cuda/nearest.cuh"

namespace emollm::cuda {

struct NearestCenterKernel {
  using Shared = NearestShared;
#pragma nv_exec_check_disable
  template <typename Ctx, typename T>
  static EMOLLM_HD void run(const Ctx& ctx, Shared& sh, const NearestArgs<T>& a) {
    nearest_block<Scan::kCenters>(ctx, sh, a);
  }
};

// One block per sample: assign[center c] = c (a duplicate of a lower-ranked center would
// otherwise join that one).
struct MarkCentersKernel {
  using Shared = NoShared;
#pragma nv_exec_check_disable
  template <typename Ctx, typename T>
  static EMOLLM_HD void run(const Ctx& ctx, Shared&, const NearestArgs<T>& a) {
    const int64_t b = ctx.block();
    for (int64_t c = ctx.thread(); c < a.C; c += kThreads) a.assign[b * a.N + a.centers[b * a.C + c]] = c;
  }
};

template <typename Exec, typename T>
cudaError_t nearest_center(Exec& exec, const T* x, const uint8_t* mask, const int64_t* centers, int64_t B, int64_t N,
                           int64_t D, int64_t C, float* sqnorm, int64_t* assign) {
  if (!sizes_ok(B, N, D) || C < 1 || C > N) return cudaErrorInvalidValue;
  cudaError_t err = compute_sqnorm(exec, x, B * N, D, sqnorm);
  if (err != cudaSuccess) return err;
  const NearestArgs<T> args{x, mask, sqnorm, nullptr, centers, N, D, C, nullptr, nullptr, nullptr, nullptr, assign};
  err = exec.template launch<NearestCenterKernel>(row_blocks(B, N), args);
  if (err != cudaSuccess) return err;
  return exec.template launch<MarkCentersKernel>(B, args);
}

}  // namespace emollm::cuda

extern "C" cudaError_t emollm_nearest_center_cuda(const void* x, int dtype, const uint8_t* mask,
                                                  const int64_t* centers, int64_t B, int64_t N, int64_t D, int64_t C,
                                                  float* sqnorm, int64_t* assign, cudaStream_t stream) {
  using namespace emollm::cuda;
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    DeviceExec exec{stream};
    return nearest_center(exec, static_cast<const T*>(x), mask, centers, B, N, D, C, sqnorm, assign);
  });
}
