// Shared pieces of the CUDA kernels: input conversion, the execution context, Gram tiles of the
// scaled squared distance, and exact distances from explicit differences.
//
// Every kernel body is a __host__ __device__ template over an execution context `Ctx` that gives
// the thread and block index, __syncthreads and the warp collectives. On the GPU the context is
// DeviceCtx (the intrinsics); tests/ops/cuda_emulator.cu runs the very same bodies on the CPU
// with a context that emulates a block with one std::thread per CUDA thread, so that the kernels'
// logic is checked against the float64 oracle on machines without a GPU.
//
// Arithmetic that decides an outcome uses explicit fmaf, never a*b+c: nvcc contracts a*b+c into
// an FMA on the device and the host compiler does not, and the emulation must round the same way.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>

#include "cuda/kernels.h"

#define EMOLLM_HD __host__ __device__ __forceinline__

namespace emollm::cuda {

// A block owns kRows rows of one sample and streams the sample's columns kCols at a time; the
// Gram tile kRows x kCols is built from kDepth-wide slices of the features in shared memory.
// 256 threads = 8 warps; each thread computes a 4 x 4 patch of the tile, each warp owns
// kRowsPerWarp rows for the selection that follows.
constexpr int kThreads = 256;
constexpr int kWarpSize = 32;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kRows = 64;
constexpr int kCols = 64;
constexpr int kDepth = 16;
constexpr int kRowsPerWarp = kRows / kWarps;
constexpr int kPatch = 4;  // kRows = kCols = 16 threads x kPatch
constexpr int kMaxK = kWarpSize;  // knn_density keeps a row's k nearest one per lane
constexpr unsigned kFullMask = 0xffffffffu;

static_assert(kRows == 16 * kPatch && kCols == 16 * kPatch && kThreads == 256, "thread layout of gram_tile");
static_assert(kRows * kDepth % kThreads == 0 && kCols * kDepth % kThreads == 0, "loads of gram_tile");

EMOLLM_HD float to_float(float v) { return v; }
EMOLLM_HD float to_float(__half v) { return __half2float(v); }
EMOLLM_HD float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

EMOLLM_HD int popcount(unsigned m) {
#ifdef __CUDA_ARCH__
  return __popc(m);
#else
  return __builtin_popcount(m);
#endif
}

// Index of the lowest set bit (m != 0).
EMOLLM_HD int lowest_bit(unsigned m) {
#ifdef __CUDA_ARCH__
  return __ffs(static_cast<int>(m)) - 1;
#else
  return __builtin_ctz(m);
#endif
}

EMOLLM_HD float infinity() { return __builtin_huge_valf(); }

// The execution context of the real kernels.
struct DeviceCtx {
  __device__ int thread() const { return static_cast<int>(threadIdx.x); }
  __device__ int64_t block() const { return blockIdx.x; }
  __device__ int lane() const { return static_cast<int>(threadIdx.x) % kWarpSize; }
  __device__ int warp() const { return static_cast<int>(threadIdx.x) / kWarpSize; }
  __device__ void sync() const { __syncthreads(); }
  __device__ unsigned ballot(bool p) const { return __ballot_sync(kFullMask, p); }
  template <typename V>
  __device__ V shfl(V v, int src) const { return __shfl_sync(kFullMask, v, src); }
  template <typename V>
  __device__ V shfl_xor(V v, int mask) const { return __shfl_xor_sync(kFullMask, v, mask); }
  template <typename V>
  __device__ V shfl_up(V v, int delta) const { return __shfl_up_sync(kFullMask, v, delta); }
};

// Sum over the warp, the same on every lane (a fixed butterfly: deterministic).
#pragma nv_exec_check_disable
template <typename Ctx>
EMOLLM_HD float warp_sum(const Ctx& ctx, float v) {
  for (int m = kWarpSize / 2; m > 0; m /= 2) v += ctx.shfl_xor(v, m);
  return v;
}

// ||a - b||^2 from explicit differences, by one thread. Symmetric bit for bit (the squares of
// a - b and b - a are equal and the order of the sum is fixed), and exactly 0 for duplicates.
template <typename T>
EMOLLM_HD float exact_sqdist(const T* a, const T* b, int64_t D) {
  float acc = 0.f;
  for (int64_t d = 0; d < D; ++d) {
    const float diff = to_float(a[d]) - to_float(b[d]);
    acc = fmaf(diff, diff, acc);
  }
  return acc;
}

// The same by a whole warp (coalesced), returned on every lane.
#pragma nv_exec_check_disable
template <typename Ctx, typename T>
EMOLLM_HD float warp_exact_sqdist(const Ctx& ctx, const T* a, const T* b, int64_t D) {
  float acc = 0.f;
  for (int64_t d = ctx.lane(); d < D; d += kWarpSize) {
    const float diff = to_float(a[d]) - to_float(b[d]);
    acc = fmaf(diff, diff, acc);
  }
  return warp_sum(ctx, acc);
}

// Bound on the error of a Gram-tile squared distance (unscaled) relative to ||a||^2 + ||b||^2:
// the dot product sums kDepth products per slice and D / kDepth slices (two-level, see
// gram_tile), the norms D / 32 per lane and 5 butterfly steps (sqnorm_rows), plus the few
// roundings of n_a + n_b - 2 a.b and of the scaling; twice the first-order bound, for margin.
EMOLLM_HD float gram_error_bound(int64_t D) {
  const float steps = float(kDepth) + float((D + kDepth - 1) / kDepth) + float((D + kWarpSize - 1) / kWarpSize) + 20.f;
  return steps * FLT_EPSILON;
}

// ||x_i||^2 of every token (valid or not: the kernels read only valid ones), one warp per row.
template <typename T>
struct SqnormArgs {
  const T* x;      // [rows, D]
  int64_t rows, D;
  float* sqnorm;   // [rows]
};

#pragma nv_exec_check_disable
template <typename Ctx, typename T>
EMOLLM_HD void sqnorm_block(const Ctx& ctx, const SqnormArgs<T>& a) {
  const int64_t row = ctx.block() * kWarps + ctx.warp();
  float acc = 0.f;
  if (row < a.rows) {
    const T* r = a.x + row * a.D;
    for (int64_t d = ctx.lane(); d < a.D; d += kWarpSize) {
      const float v = to_float(r[d]);
      acc = fmaf(v, v, acc);
    }
  }
  acc = warp_sum(ctx, acc);  // every lane takes part, in or out of range
  if (row < a.rows && ctx.lane() == 0) a.sqnorm[row] = acc;
}

inline int64_t sqnorm_blocks(int64_t rows) { return (rows + kWarps - 1) / kWarps; }

// A Gram tile: rows row_tok[0..kRows) against columns col_tok[0..kCols) of one sample (token
// indices, -1 = none), with their squared norms. gram_tile fills d2 with the scaled squared
// distance max((n_r + n_c - 2 x_r.x_c) / D, 0), +inf where either side is none (and on the
// diagonal when skip_self).
struct TileShared {
  float a[kDepth][kRows + 4];  // feature slice of the rows, transposed (the +4 keeps float4 alignment)
  float b[kDepth][kCols + 4];  // and of the columns
  float d2[kRows][kCols + 1];
  float row_norm[kRows];
  float col_norm[kCols];
  int32_t row_tok[kRows];
  int32_t col_tok[kCols];
};

// Loads one kDepth-wide feature slice of `count` tokens into dst[kDepth][stride], zeros past D
// and for missing tokens.
#pragma nv_exec_check_disable
template <int Count, int Stride, typename Ctx, typename T>
EMOLLM_HD void load_slice(const Ctx& ctx, float (*dst)[Stride], const int32_t* tok, const T* xs, int64_t D,
                          int64_t d0) {
  for (int e = ctx.thread(); e < Count * kDepth; e += kThreads) {
    const int r = e / kDepth, dd = e % kDepth;
    const int64_t d = d0 + dd;
    dst[dd][r] = (tok[r] >= 0 && d < D) ? to_float(xs[int64_t(tok[r]) * D + d]) : 0.f;
  }
}

// Callers set row_tok, col_tok, row_norm, col_norm and sync first; gram_tile ends with a sync,
// after which every thread may read d2.
#pragma nv_exec_check_disable
template <typename Ctx, typename T>
EMOLLM_HD void gram_tile(const Ctx& ctx, TileShared& sh, const T* xs, int64_t D, bool skip_self) {
  const int ty = ctx.thread() / 16, tx = ctx.thread() % 16;
  float acc[kPatch][kPatch] = {};
  for (int64_t d0 = 0; d0 < D; d0 += kDepth) {
    load_slice<kRows>(ctx, sh.a, sh.row_tok, xs, D, d0);
    load_slice<kCols>(ctx, sh.b, sh.col_tok, xs, D, d0);
    ctx.sync();
    // Each slice sums into a fresh partial: the rounding error then grows with kDepth + D/kDepth
    // instead of D (see gram_error_bound), for one add per kDepth products.
    float part[kPatch][kPatch] = {};
    for (int dd = 0; dd < kDepth; ++dd) {
      float ra[kPatch], cb[kPatch];
      for (int m = 0; m < kPatch; ++m) ra[m] = sh.a[dd][ty * kPatch + m];
      for (int m = 0; m < kPatch; ++m) cb[m] = sh.b[dd][tx * kPatch + m];
      for (int m = 0; m < kPatch; ++m)
        for (int n = 0; n < kPatch; ++n) part[m][n] = fmaf(ra[m], cb[n], part[m][n]);
    }
    for (int m = 0; m < kPatch; ++m)
      for (int n = 0; n < kPatch; ++n) acc[m][n] += part[m][n];
    ctx.sync();
  }
  const float inv_dim = 1.f / float(D);
  for (int m = 0; m < kPatch; ++m) {
    const int r = ty * kPatch + m;
    for (int n = 0; n < kPatch; ++n) {
      const int c = tx * kPatch + n;
      const int32_t rt = sh.row_tok[r], ct = sh.col_tok[c];
      float d2 = infinity();
      if (rt >= 0 && ct >= 0 && !(skip_self && rt == ct)) {
        d2 = fmaf(-2.f, acc[m][n], sh.row_norm[r] + sh.col_norm[c]) * inv_dim;
        d2 = d2 > 0.f ? d2 : 0.f;
      }
      sh.d2[r][c] = d2;
    }
  }
  ctx.sync();
}

// Fills the row side of a tile: kRows consecutive tokens from i0, valid ones only.
#pragma nv_exec_check_disable
template <typename Ctx>
EMOLLM_HD void set_rows(const Ctx& ctx, TileShared& sh, int64_t i0, int64_t N, const uint8_t* valid,
                        const float* norms) {
  for (int r = ctx.thread(); r < kRows; r += kThreads) {
    const int64_t i = i0 + r;
    const bool ok = i < N && (valid == nullptr || valid[i]);
    sh.row_tok[r] = ok ? static_cast<int32_t>(i) : -1;
    sh.row_norm[r] = ok ? norms[i] : 0.f;
  }
}

// Blocks of kRows rows over B samples of N tokens: block -> (sample, first row).
inline int64_t row_blocks(int64_t B, int64_t N) { return B * ((N + kRows - 1) / kRows); }

EMOLLM_HD void block_rows(int64_t block, int64_t N, int64_t& b, int64_t& i0) {
  const int64_t per_sample = (N + kRows - 1) / kRows;
  b = block / per_sample;
  i0 = (block % per_sample) * kRows;
}

}  // namespace emollm::cuda

// ----- launching -----
//
// A kernel is a struct with a `Shared` type (its shared memory) and a static template
// `run(ctx, shared, args)`, the body of one block of kThreads threads. An op's launch sequence is
// written once over an executor: DeviceExec launches block_kernel<Kernel> on a stream, the
// emulator in tests/ops/cuda_emulator.cu runs the same bodies on CPU threads.

namespace emollm::cuda {

template <typename Kernel, typename Args>
__global__ void __launch_bounds__(kThreads) block_kernel(Args args) {
  __shared__ typename Kernel::Shared sh;
  Kernel::run(DeviceCtx{}, sh, args);
}

struct DeviceExec {
  cudaStream_t stream;

  template <typename Kernel, typename Args>
  cudaError_t launch(int64_t blocks, const Args& args) {
    if (blocks > 0) block_kernel<Kernel, Args><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(args);
    return cudaGetLastError();
  }
};

struct NoShared {};

struct SqnormKernel {
  using Shared = NoShared;
#pragma nv_exec_check_disable
  template <typename Ctx, typename T>
  static EMOLLM_HD void run(const Ctx& ctx, Shared&, const SqnormArgs<T>& a) { sqnorm_block(ctx, a); }
};

template <typename Exec, typename T>
cudaError_t compute_sqnorm(Exec& exec, const T* x, int64_t rows, int64_t D, float* sqnorm) {
  return exec.template launch<SqnormKernel>(sqnorm_blocks(rows), SqnormArgs<T>{x, rows, D, sqnorm});
}

// Sizes every launcher accepts: a grid of at most 2^31 - 1 blocks, token indices in int32.
inline bool sizes_ok(int64_t B, int64_t N, int64_t D) {
  return B >= 1 && N >= 1 && D >= 1 && N < INT32_MAX && row_blocks(B, N) < INT32_MAX &&
         sqnorm_blocks(B * N) < INT32_MAX;
}

// Calls fn(T{}) with T the element type named by dtype.
template <typename F>
cudaError_t dispatch_dtype(int dtype, F&& fn) {
  switch (dtype) {
    case EMOLLM_FLOAT32: return fn(float{});
    case EMOLLM_FLOAT16: return fn(__half{});
    case EMOLLM_BFLOAT16: return fn(__nv_bfloat16{});
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace emollm::cuda
