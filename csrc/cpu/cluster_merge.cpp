// cluster_merge on CPU: per-cluster weighted mean. Work items are (sample, feature slice) pairs,
// so threads never write the same output and no atomics are needed; each item streams the
// sample's tokens once and accumulates into a C x slice buffer in f32 (f64 for double).
#include <ATen/OpMathType.h>

#include <torch/library.h>

#include "cpu/common.h"

namespace emollm::cpu {

namespace {
constexpr int64_t kSlice = 256;  // features per work item: a C x 256 f32 accumulator fits in L2
}

at::Tensor cluster_merge(const at::Tensor& x, const at::Tensor& assign, int64_t num_clusters,
                         const std::optional<at::Tensor>& weight) {
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2), C = num_clusters;
  at::Tensor xc = x.contiguous();
  at::Tensor ac = assign.to(at::kLong).contiguous();
  at::Tensor out = at::empty({B, C, D}, x.options());
  if (ac.numel() > 0) {  // the kernel indexes its accumulators with these ids
    const int64_t lo = ac.min().item<int64_t>(), hi = ac.max().item<int64_t>();
    TORCH_CHECK_VALUE(lo >= -1 && hi < C, "assign values must lie in [-1, ", C - 1, "], got values in [", lo, ", ",
                      hi, "]");
  }
  const int64_t slices = (D + kSlice - 1) / kSlice;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "cluster_merge", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor wc = weight.has_value() ? weight->to(c10::CppTypeToScalarType<acc_t>::value).contiguous() : at::Tensor();
    const acc_t* wp = wc.defined() ? wc.data_ptr<acc_t>() : nullptr;
    const scalar_t* xp = xc.data_ptr<scalar_t>();
    const int64_t* ap = ac.data_ptr<int64_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    parallel_for(0, B * slices, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc;
      std::vector<acc_t> total(C);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / slices, d0 = (item % slices) * kSlice, nd = std::min(kSlice, D - d0);
        acc.assign(C * nd, acc_t(0));
        std::fill(total.begin(), total.end(), acc_t(0));
        for (int64_t i = 0; i < N; ++i) {
          const int64_t c = ap[b * N + i];
          if (c < 0) continue;
          const acc_t w = wp ? wp[b * N + i] : acc_t(1);
          total[c] += w;
          const scalar_t* xr = xp + (b * N + i) * D + d0;
          acc_t* ar = acc.data() + c * nd;
          for (int64_t d = 0; d < nd; ++d) ar[d] += w * static_cast<acc_t>(xr[d]);
        }
        for (int64_t c = 0; c < C; ++c) {
          const acc_t inv = total[c] > acc_t(0) ? acc_t(1) / total[c] : acc_t(0);
          scalar_t* orow = op + (b * C + c) * D + d0;
          const acc_t* ar = acc.data() + c * nd;
          for (int64_t d = 0; d < nd; ++d) orow[d] = static_cast<scalar_t>(ar[d] * inv);
        }
      }
    });
  });
  return out;
}

}  // namespace emollm::cpu

// The op's schema and CPU kernel under torch.ops.emollm_C (the Python op's arguments, in order).
// These checks only guard the kernel against direct calls; emollm.ops checks with clear errors.
namespace {

at::Tensor cluster_merge_op(const at::Tensor& x, const at::Tensor& assign, int64_t num_clusters,
                         const std::optional<at::Tensor>& weight) {
  emollm::cpu::check_tokens(x, "x");
  TORCH_CHECK(assign.dim() == 2 && assign.size(0) == x.size(0) && assign.size(1) == x.size(1), "assign must be [B, N]");
  TORCH_CHECK(num_clusters >= 1, "num_clusters must be >= 1");
  if (weight.has_value())
    TORCH_CHECK(weight->dim() == 2 && weight->size(0) == x.size(0) && weight->size(1) == x.size(1), "weight must be [B, N]");
  return emollm::cpu::cluster_merge(x.detach(), assign, num_clusters,
                                    weight.has_value() ? std::optional<at::Tensor>(weight->detach()) : weight);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(emollm_C, m) {
  m.def("cluster_merge(Tensor x, Tensor assign, int num_clusters, Tensor? weight) -> Tensor");
}

TORCH_LIBRARY_IMPL(emollm_C, CPU, m) {
  m.impl("cluster_merge", &cluster_merge_op);
}
