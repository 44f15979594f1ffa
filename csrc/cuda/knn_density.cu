// knn_density on CUDA: rho_i = exp(-mean of the k smallest d(i,j)^2), d^2 = ||x_i - x_j||^2 / D.
//
// A block owns 64 rows of one sample and streams the sample's tokens in 64-column Gram tiles
// (never the N x N matrix: extra memory is one norm per token). Warp-level selection: each warp
// owns 8 rows, and keeps each row's k nearest (k <= 32) spread over its lanes, one entry per
// lane, sorted. A tile's candidates are filtered against the current k-th with one ballot; the
// few that pass are inserted one at a time (the rank from a ballot, the shift by __shfl_up), so
// after the first tiles a row costs one compare per candidate. The selection uses Gram
// distances; the returned density sums the k selected distances recomputed from explicit
// differences, as the CPU kernels do.
#include "cuda/common.cuh"

namespace emollm::cuda {

template <typename T>
struct KnnArgs {
  const T* x;              // [B, N, D]
  const uint8_t* mask;     // [B, N] or nullptr
  const float* sqnorm;     // [B, N]
  int64_t N, D;
  int k;
  bool include_self;
  float* rho;              // [B, N]
};

// (d, j) sorts before (e, l): smaller distance, then lower index.
EMOLLM_HD bool before(float d, int32_t j, float e, int32_t l) { return d < e || (d == e && j < l); }

// Inserts (cd, cj) into the warp's sorted list (one entry per lane, all 32 lanes sorted; lanes
// k..31 are never read): its rank p is the number of entries before it, lanes above p shift up.
#pragma nv_exec_check_disable
template <typename Ctx>
EMOLLM_HD void list_insert(const Ctx& ctx, float& ld, int32_t& lj, float cd, int32_t cj) {
  const int p = popcount(ctx.ballot(before(ld, lj, cd, cj)));
  const float up_d = ctx.shfl_up(ld, 1);
  const int32_t up_j = ctx.shfl_up(lj, 1);
  if (ctx.lane() == p) {
    ld = cd;
    lj = cj;
  } else if (ctx.lane() > p) {
    ld = up_d;
    lj = up_j;
  }
}

// Offers one candidate per lane (distance d, token j; d = +inf: none) to the list of k.
#pragma nv_exec_check_disable
template <typename Ctx>
EMOLLM_HD void offer_candidates(const Ctx& ctx, float& ld, int32_t& lj, int k, float d, int32_t j) {
  float wd = ctx.shfl(ld, k - 1);
  int32_t wj = ctx.shfl(lj, k - 1);
  unsigned pending = ctx.ballot(d < infinity() && before(d, j, wd, wj));
  while (pending != 0) {
    const int src = lowest_bit(pending);
    list_insert(ctx, ld, lj, ctx.shfl(d, src), ctx.shfl(j, src));
    wd = ctx.shfl(ld, k - 1);
    wj = ctx.shfl(lj, k - 1);
    pending &= ~(1u << src) & ctx.ballot(d < infinity() && before(d, j, wd, wj));
  }
}

#pragma nv_exec_check_disable
template <typename Ctx, typename T>
EMOLLM_HD void knn_density_block(const Ctx& ctx, TileShared& sh, const KnnArgs<T>& a) {
  int64_t b, i0;
  block_rows(ctx.block(), a.N, b, i0);
  const T* xs = a.x + b * a.N * a.D;
  const uint8_t* valid = a.mask ? a.mask + b * a.N : nullptr;
  const float* norms = a.sqnorm + b * a.N;
  set_rows(ctx, sh, i0, a.N, valid, norms);
  ctx.sync();

  const int lane = ctx.lane(), w = ctx.warp();
  float ld[kRowsPerWarp];
  int32_t lj[kRowsPerWarp];
  for (int q = 0; q < kRowsPerWarp; ++q) {  // empty lists; the token itself first when counted
    const int32_t i = sh.row_tok[w * kRowsPerWarp + q];
    const bool self = a.include_self && i >= 0 && lane == 0;
    ld[q] = self ? 0.f : infinity();
    lj[q] = self ? i : INT32_MAX;
  }

  for (int64_t j0 = 0; j0 < a.N; j0 += kCols) {
    for (int c = ctx.thread(); c < kCols; c += kThreads) {
      const int64_t j = j0 + c;
      const bool ok = j < a.N && (valid == nullptr || valid[j]);
      sh.col_tok[c] = ok ? static_cast<int32_t>(j) : -1;
      sh.col_norm[c] = ok ? norms[j] : 0.f;
    }
    ctx.sync();
    gram_tile(ctx, sh, xs, a.D, /*skip_self=*/true);  // self is in the list already, or excluded
    for (int q = 0; q < kRowsPerWarp; ++q) {
      const int r = w * kRowsPerWarp + q;
      if (sh.row_tok[r] < 0) continue;  // warp-uniform
      for (int h = 0; h < kCols; h += kWarpSize)
        offer_candidates(ctx, ld[q], lj[q], a.k, sh.d2[r][h + lane], static_cast<int32_t>(j0 + h + lane));
    }
    ctx.sync();  // the next tile overwrites d2
  }

  for (int q = 0; q < kRowsPerWarp; ++q) {
    const int r = w * kRowsPerWarp + q;
    const int64_t i = i0 + r;
    if (i >= a.N) continue;
    float* out = a.rho + b * a.N + i;
    if (sh.row_tok[r] < 0) {
      if (lane == 0) *out = 0.f;
      continue;
    }
    float sum = 0.f;
    bool complete = true;
    for (int m = 0; m < a.k; ++m) {
      const int32_t j = ctx.shfl(lj[q], m);
      if (j == INT32_MAX) {  // fewer than k valid neighbours (warp-uniform)
        complete = false;
        break;
      }
      sum += warp_exact_sqdist(ctx, xs + i * a.D, xs + int64_t(j) * a.D, a.D) / float(a.D);
    }
    if (lane == 0) *out = complete ? expf(-sum / float(a.k)) : __builtin_nanf("");
  }
}

struct KnnDensityKernel {
  using Shared = TileShared;
#pragma nv_exec_check_disable
  template <typename Ctx, typename T>
  static EMOLLM_HD void run(const Ctx& ctx, Shared& sh, const KnnArgs<T>& a) { knn_density_block(ctx, sh, a); }
};

template <typename Exec, typename T>
cudaError_t knn_density(Exec& exec, const T* x, const uint8_t* mask, int64_t B, int64_t N, int64_t D, int k,
                        bool include_self, float* sqnorm, float* rho) {
  if (!sizes_ok(B, N, D) || k < 1 || k > kMaxK) return cudaErrorInvalidValue;
  cudaError_t err = compute_sqnorm(exec, x, B * N, D, sqnorm);
  if (err != cudaSuccess) return err;
  return exec.template launch<KnnDensityKernel>(row_blocks(B, N), KnnArgs<T>{x, mask, sqnorm, N, D, k, include_self, rho});
}

}  // namespace emollm::cuda

extern "C" cudaError_t emollm_knn_density_cuda(const void* x, int dtype, const uint8_t* mask, int64_t B, int64_t N,
                                               int64_t D, int k, int include_self, float* sqnorm, float* rho,
                                               cudaStream_t stream) {
  using namespace emollm::cuda;
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    DeviceExec exec{stream};
    return knn_density(exec, static_cast<const T*>(x), mask, B, N, D, k, include_self != 0, sqnorm, rho);
  });
}
