// The CUDA kernels (csrc/cuda/*.cu, C ABI in cuda/kernels.h) as the CUDA implementations of the
// torch.ops.emollm_C ops whose schemas csrc/cpu/<op>.cpp define. Compiled only with EMOLLM_WITH_CUDA.
// Here: argument checks, allocation through the caching allocator (scratch included), the
// current stream, and dpc_cluster composed of knn_density, dpc_delta, a stable top-C sort of
// rho * delta in ATen, and the nearest-center kernel.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>
#include <optional>
#include <tuple>

#include "cuda/kernels.h"

namespace {

constexpr int64_t kMaxK = 32;  // one neighbour per lane of a warp (knn_density.cu)

int dtype_code(const at::Tensor& x) {
  switch (x.scalar_type()) {
    case at::kFloat: return EMOLLM_FLOAT32;
    case at::kHalf: return EMOLLM_FLOAT16;
    case at::kBFloat16: return EMOLLM_BFLOAT16;
    default: TORCH_CHECK_TYPE(false, "x must be float32, float16 or bfloat16 on CUDA, got ", x.scalar_type());
  }
}

void check_tokens(const at::Tensor& x) {
  TORCH_CHECK_VALUE(x.is_cuda(), "x must be a CUDA tensor, got one on ", x.device());
  TORCH_CHECK_VALUE(x.dim() == 3 && x.size(0) >= 1 && x.size(1) >= 1 && x.size(2) >= 1,
                    "x must be [B, N, D] with B, N, D >= 1, got ", x.sizes());
  dtype_code(x);
}

void check_per_token(const at::Tensor& t, const at::Tensor& x, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 2 && t.size(0) == x.size(0) && t.size(1) == x.size(1), name, " must be [B, N] = [",
                    x.size(0), ", ", x.size(1), "], got ", t.sizes());
  TORCH_CHECK_VALUE(t.device() == x.device(), name, " is on ", t.device(), " but x is on ", x.device());
}

// The mask as bytes (torch bool is one byte, 0 or 1), or nullptr; `holder` keeps it alive.
const uint8_t* mask_bytes(const std::optional<at::Tensor>& mask, const at::Tensor& x, at::Tensor& holder) {
  if (!mask.has_value()) return nullptr;
  TORCH_CHECK_TYPE(mask->scalar_type() == at::kBool, "mask must be bool, got ", mask->scalar_type());
  check_per_token(*mask, x, "mask");
  holder = mask->contiguous();
  return reinterpret_cast<const uint8_t*>(holder.data_ptr<bool>());
}

void check_k(int64_t k, const at::Tensor& x, bool include_self) {
  TORCH_CHECK_VALUE(k >= 1 && k <= x.size(1) - (include_self ? 0 : 1), "k out of range: ", k);
  TORCH_CHECK_VALUE(k <= kMaxK, "the cuda backend takes k <= ", kMaxK, ", got k=", k,
                    " (emollm.ops runs larger k on another backend)");
}

void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, "emollm ", op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

at::Tensor knn_density(const at::Tensor& x_in, int64_t k, const std::optional<at::Tensor>& mask, bool include_self) {
  check_tokens(x_in);
  check_k(k, x_in, include_self);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.detach().contiguous();
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  at::Tensor mask_holder;
  const uint8_t* m = mask_bytes(mask, x, mask_holder);
  const auto f32 = x.options().dtype(at::kFloat);
  at::Tensor sqnorm = at::empty({B * N}, f32), rho = at::empty({B, N}, f32);
  check_launch(emollm_knn_density_cuda(x.data_ptr(), dtype_code(x), m, B, N, D, static_cast<int>(k), include_self,
                                       sqnorm.data_ptr<float>(), rho.data_ptr<float>(),
                                       c10::cuda::getCurrentCUDAStream()),
               "knn_density");
  return rho;
}

std::tuple<at::Tensor, at::Tensor> dpc_delta(const at::Tensor& x_in, const at::Tensor& rho_in,
                                             const std::optional<at::Tensor>& mask) {
  check_tokens(x_in);
  check_per_token(rho_in, x_in, "rho");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.detach().contiguous();
  const at::Tensor rho = rho_in.detach().to(at::kFloat).contiguous();
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  at::Tensor mask_holder;
  const uint8_t* m = mask_bytes(mask, x, mask_holder);
  const auto f32 = x.options().dtype(at::kFloat);
  at::Tensor sqnorm = at::empty({B * N}, f32), row_max = at::empty({B * N}, f32);
  at::Tensor row_max_tok = at::empty({B * N}, x.options().dtype(at::kInt));
  at::Tensor delta = at::empty({B, N}, f32), parent = at::empty({B, N}, x.options().dtype(at::kLong));
  check_launch(emollm_dpc_delta_cuda(x.data_ptr(), dtype_code(x), m, rho.data_ptr<float>(), B, N, D,
                                     sqnorm.data_ptr<float>(), row_max.data_ptr<float>(),
                                     row_max_tok.data_ptr<int32_t>(), delta.data_ptr<float>(),
                                     parent.data_ptr<int64_t>(), c10::cuda::getCurrentCUDAStream()),
               "dpc_delta");
  return {delta, parent};
}

std::tuple<at::Tensor, at::Tensor> dpc_cluster(const at::Tensor& x_in, int64_t num_clusters, int64_t k,
                                               const std::optional<at::Tensor>& mask, bool include_self) {
  check_tokens(x_in);
  check_k(k, x_in, include_self);
  TORCH_CHECK_VALUE(num_clusters >= 1 && num_clusters <= x_in.size(1), "num_clusters out of range: ", num_clusters);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.detach().contiguous();
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  const at::Tensor rho = knn_density(x, k, mask, include_self);
  const at::Tensor delta = std::get<0>(dpc_delta(x, rho, mask));
  // Centers: the C highest rho * delta, descending, the lower index first on ties (stable sort).
  at::Tensor score = rho * delta;
  if (mask.has_value()) score.masked_fill_(mask->logical_not(), -std::numeric_limits<float>::infinity());
  const at::Tensor centers =
      std::get<1>(score.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true)).narrow(1, 0, num_clusters).contiguous();
  at::Tensor mask_holder;
  const uint8_t* m = mask_bytes(mask, x, mask_holder);
  at::Tensor sqnorm = at::empty({B * N}, x.options().dtype(at::kFloat));
  at::Tensor assign = at::empty({B, N}, x.options().dtype(at::kLong));
  check_launch(emollm_nearest_center_cuda(x.data_ptr(), dtype_code(x), m, centers.data_ptr<int64_t>(), B, N, D,
                                          num_clusters, sqnorm.data_ptr<float>(), assign.data_ptr<int64_t>(),
                                          c10::cuda::getCurrentCUDAStream()),
               "dpc_cluster");
  return {centers, assign};
}

}  // namespace

TORCH_LIBRARY_IMPL(emollm_C, CUDA, m) {
  m.impl("knn_density", &knn_density);
  m.impl("dpc_delta", &dpc_delta);
  m.impl("dpc_cluster", &dpc_cluster);
}
