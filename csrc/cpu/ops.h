// Entry points of the CPU kernels, registered by csrc/bindings.cpp. Inputs are checked there;
// x is [B, N, D] (float, half, bfloat16 or double), masks are [B, N] bool or undefined.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace emollm::cpu {

at::Tensor knn_density(const at::Tensor& x, int64_t k, const std::optional<at::Tensor>& mask, bool include_self);
std::tuple<at::Tensor, at::Tensor> dpc_delta(const at::Tensor& x, const at::Tensor& rho,
                                             const std::optional<at::Tensor>& mask);
std::tuple<at::Tensor, at::Tensor> dpc_cluster(const at::Tensor& x, int64_t num_clusters, int64_t k,
                                               const std::optional<at::Tensor>& mask, bool include_self);
std::tuple<at::Tensor, at::Tensor, at::Tensor> dpc_cluster_merge(const at::Tensor& x, int64_t num_clusters, int64_t k,
                                                                 const std::optional<at::Tensor>& mask,
                                                                 bool include_self,
                                                                 const std::optional<at::Tensor>& weight);
at::Tensor cluster_merge(const at::Tensor& x, const at::Tensor& assign, int64_t num_clusters,
                         const std::optional<at::Tensor>& weight);
std::tuple<at::Tensor, at::Tensor> gcn_adjacency(const at::Tensor& z, double tau, const std::optional<at::Tensor>& mask);
at::Tensor gcn_propagate(const at::Tensor& bits, const at::Tensor& dinv, const at::Tensor& h);

}  // namespace emollm::cpu
