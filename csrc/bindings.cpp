// emollm._C: registers the kernels as torch.ops.emollm_C.<op> (CPU here; CUDA kernels join under
// the same names when built with EMOLLM_WITH_CUDA) and exposes build facts to Python. The public
// API (emollm.ops) checks arguments with clear Python errors; the checks here only guard the
// kernels against being called directly with inputs they would misread. Inputs are detached:
// the kernels call ATen (mm_out) from OpenMP workers, where no autograd guard reaches; the
// gradients are registered on the emollm:: ops in Python.
#include <pybind11/pybind11.h>
#include <torch/library.h>

#include "cpu/ops.h"
#include "cpu/common.h"

namespace {

void check_tokens(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.dim() == 3, name, " must be [B, N, D], got ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), name, " must be floating point, got ", x.scalar_type());
}

void check_mask(const std::optional<at::Tensor>& mask, const at::Tensor& x) {
  if (!mask.has_value()) return;
  TORCH_CHECK(mask->scalar_type() == at::kBool, "mask must be bool, got ", mask->scalar_type());
  TORCH_CHECK(mask->dim() == 2 && mask->size(0) == x.size(0) && mask->size(1) == x.size(1),
              "mask must be [B, N] = [", x.size(0), ", ", x.size(1), "], got ", mask->sizes());
}

at::Tensor knn_density(const at::Tensor& x, int64_t k, const std::optional<at::Tensor>& mask, bool include_self) {
  check_tokens(x, "x");
  check_mask(mask, x);
  TORCH_CHECK(k >= 1 && k <= x.size(1) - (include_self ? 0 : 1), "k out of range: ", k);
  return emollm::cpu::knn_density(x.detach(), k, mask, include_self);
}

std::tuple<at::Tensor, at::Tensor> dpc_delta(const at::Tensor& x, const at::Tensor& rho,
                                             const std::optional<at::Tensor>& mask) {
  check_tokens(x, "x");
  check_mask(mask, x);
  TORCH_CHECK(rho.dim() == 2 && rho.size(0) == x.size(0) && rho.size(1) == x.size(1), "rho must be [B, N]");
  return emollm::cpu::dpc_delta(x.detach(), rho.detach(), mask);
}

std::tuple<at::Tensor, at::Tensor> dpc_cluster(const at::Tensor& x, int64_t num_clusters, int64_t k,
                                               const std::optional<at::Tensor>& mask, bool include_self) {
  check_tokens(x, "x");
  check_mask(mask, x);
  TORCH_CHECK(num_clusters >= 1 && num_clusters <= x.size(1), "num_clusters out of range: ", num_clusters);
  TORCH_CHECK(k >= 1 && k <= x.size(1) - (include_self ? 0 : 1), "k out of range: ", k);
  return emollm::cpu::dpc_cluster(x.detach(), num_clusters, k, mask, include_self);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dpc_cluster_merge(const at::Tensor& x, int64_t num_clusters, int64_t k,
                                                                 const std::optional<at::Tensor>& mask,
                                                                 bool include_self,
                                                                 const std::optional<at::Tensor>& weight) {
  check_tokens(x, "x");
  check_mask(mask, x);
  TORCH_CHECK(num_clusters >= 1 && num_clusters <= x.size(1), "num_clusters out of range: ", num_clusters);
  TORCH_CHECK(k >= 1 && k <= x.size(1) - (include_self ? 0 : 1), "k out of range: ", k);
  if (weight.has_value())
    TORCH_CHECK(weight->dim() == 2 && weight->size(0) == x.size(0) && weight->size(1) == x.size(1), "weight must be [B, N]");
  return emollm::cpu::dpc_cluster_merge(x.detach(), num_clusters, k, mask, include_self,
                                        weight.has_value() ? std::optional<at::Tensor>(weight->detach()) : weight);
}

at::Tensor cluster_merge(const at::Tensor& x, const at::Tensor& assign, int64_t num_clusters,
                         const std::optional<at::Tensor>& weight) {
  check_tokens(x, "x");
  TORCH_CHECK(assign.dim() == 2 && assign.size(0) == x.size(0) && assign.size(1) == x.size(1), "assign must be [B, N]");
  TORCH_CHECK(num_clusters >= 1, "num_clusters must be >= 1");
  if (weight.has_value())
    TORCH_CHECK(weight->dim() == 2 && weight->size(0) == x.size(0) && weight->size(1) == x.size(1), "weight must be [B, N]");
  return emollm::cpu::cluster_merge(x.detach(), assign, num_clusters,
                                    weight.has_value() ? std::optional<at::Tensor>(weight->detach()) : weight);
}

std::tuple<at::Tensor, at::Tensor> gcn_adjacency(const at::Tensor& z, double tau, const std::optional<at::Tensor>& mask) {
  check_tokens(z, "z");
  check_mask(mask, z);
  TORCH_CHECK(tau >= 0.0 && tau <= 1.0, "tau must lie in [0, 1], got ", tau);
  return emollm::cpu::gcn_adjacency(z.detach(), tau, mask);
}

at::Tensor gcn_propagate(const at::Tensor& bits, const at::Tensor& dinv, const at::Tensor& h) {
  check_tokens(h, "h");
  const int64_t B = h.size(0), C = h.size(1);
  TORCH_CHECK(bits.scalar_type() == at::kLong && bits.dim() == 3 && bits.size(0) == B && bits.size(1) == C &&
                  bits.size(2) == (C + 63) / 64,
              "bits must be int64 [B, C, ceil(C/64)]");
  TORCH_CHECK(dinv.dim() == 2 && dinv.size(0) == B && dinv.size(1) == C, "dinv must be [B, C]");
  return emollm::cpu::gcn_propagate(bits, dinv.detach(), h.detach());
}

}  // namespace

TORCH_LIBRARY(emollm_C, m) {
  m.def("knn_density(Tensor x, int k, Tensor? mask, bool include_self) -> Tensor");
  m.def("dpc_delta(Tensor x, Tensor rho, Tensor? mask) -> (Tensor, Tensor)");
  m.def("dpc_cluster(Tensor x, int num_clusters, int k, Tensor? mask, bool include_self) -> (Tensor, Tensor)");
  m.def("dpc_cluster_merge(Tensor x, int num_clusters, int k, Tensor? mask, bool include_self, Tensor? weight) -> "
        "(Tensor, Tensor, Tensor)");
  m.def("cluster_merge(Tensor x, Tensor assign, int num_clusters, Tensor? weight) -> Tensor");
  m.def("gcn_adjacency(Tensor z, float tau, Tensor? mask) -> (Tensor, Tensor)");
  m.def("gcn_propagate(Tensor bits, Tensor dinv, Tensor h) -> Tensor");
}

TORCH_LIBRARY_IMPL(emollm_C, CPU, m) {
  m.impl("knn_density", &knn_density);
  m.impl("dpc_delta", &dpc_delta);
  m.impl("dpc_cluster", &dpc_cluster);
  m.impl("dpc_cluster_merge", &dpc_cluster_merge);
  m.impl("cluster_merge", &cluster_merge);
  m.impl("gcn_adjacency", &gcn_adjacency);
  m.impl("gcn_propagate", &gcn_propagate);
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "emollm compiled kernels; the ops live in torch.ops.emollm_C";
#ifdef EMOLLM_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  m.def("tile_rows", &emollm::cpu::tile_rows, "rows per Gram tile for a sample of n tokens");
}
