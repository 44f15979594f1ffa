/* C ABI of the CUDA kernels (csrc/cuda/<op>.cu), called by csrc/cuda_ops.cpp.
 *
 * Plain pointers and a stream, no torch types: the kernels compile with nvcc alone, and the torch
 * side owns allocation, argument checks and error messages. All pointers are device pointers;
 * x is [B, N, D] contiguous of `dtype`; mask is [B, N] bytes (1 = real token) or NULL; scratch
 * buffers are written by the call and may be reused after it. Semantics: docs/design.md#op-contracts.
 * Each launcher only enqueues work on `stream` and returns the launch status
 * (cudaErrorInvalidValue for sizes it does not take).
 */
#pragma once

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { EMOLLM_FLOAT32 = 0, EMOLLM_FLOAT16 = 1, EMOLLM_BFLOAT16 = 2 } emollm_dtype;

/* knn_density: rho [B, N] float; 1 <= k <= 32 (the k nearest live one per lane of a warp).
 * A valid token with fewer than k valid neighbours gets NaN (the torch side checks counts first);
 * padded tokens get 0. sqnorm: scratch [B * N] float. */
cudaError_t emollm_knn_density_cuda(const void* x, int dtype, const uint8_t* mask, int64_t B, int64_t N, int64_t D,
                                    int k, int include_self, float* sqnorm, float* rho, cudaStream_t stream);

/* dpc_delta: delta [B, N] float, parent [B, N] int64, from densities rho [B, N] float.
 * Scratch: sqnorm [B * N] float, row_max [B * N] float, row_max_tok [B * N] int32. */
cudaError_t emollm_dpc_delta_cuda(const void* x, int dtype, const uint8_t* mask, const float* rho, int64_t B,
                                  int64_t N, int64_t D, float* sqnorm, float* row_max, int32_t* row_max_tok,
                                  float* delta, int64_t* parent, cudaStream_t stream);

/* The assignment step of dpc_cluster: assign [B, N] int64 = rank of the nearest of the C centers
 * [B, C] int64 (distinct valid token indices; lowest rank on ties), each center its own rank,
 * padded tokens -1. Scratch: sqnorm [B * N] float. */
cudaError_t emollm_nearest_center_cuda(const void* x, int dtype, const uint8_t* mask, const int64_t* centers,
                                       int64_t B, int64_t N, int64_t D, int64_t C, float* sqnorm, int64_t* assign,
                                       cudaStream_t stream);

#ifdef __cplusplus
}
#endif
