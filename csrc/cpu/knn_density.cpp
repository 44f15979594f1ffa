// knn_density on CPU: rho_i = exp(-mean of the k smallest d(i,j)^2), d^2 = ||x_i - x_j||^2 / D.
//
// Never builds the N x N matrix: the Gram matrix X X^T is streamed in s.tile x s.tile tiles through
// BLAS, and since it is symmetric each tile pair (I <= J) is computed once and offered to the
// k-nearest lists of both its rows and its columns (half the GEMM work of cdist). Extra memory:
// one tile and the n x k lists per thread.
#include <torch/library.h>

#include "cpu/common.h"

namespace emollm::cpu {

namespace {

// Offers every pair of the tile to both rows' lists. Per row of the tile: its distances in one
// vector pass, then the few entries that can enter a list, found over blocks of kBlock by vector
// compares (float: a bit mask of the entries under the bar; double: a count, then the block) -
// most blocks have none once the lists fill. Offers reach each list in the order of the
// plain double loop (row side by column, column side by row), so ties resolve the same way.
template <typename T>
void scan_tile_pair(const Sample<T>& s, at::Tensor& buf, std::vector<T>& row, const at::Tensor& gram, int64_t I,
                    int64_t J, KnnLists<T>& lists) {
  constexpr int64_t kBlock = std::is_same_v<T, float> ? 32 : 16;
  const int64_t i0 = I * s.tile, j0 = J * s.tile;
  const int64_t ni = std::min(s.tile, s.n - i0), nj = std::min(s.tile, s.n - j0);
  at::Tensor g;
  int64_t ld = nj;
  {
    PhaseTimer timer(kGram);
    if (gram.defined()) {  // write the tile in place into the kept Gram matrix (BLAS takes its ld)
      g = gram.narrow(0, i0, ni).narrow(1, j0, nj);
      at::mm_out(g, s.x.narrow(0, i0, ni), s.x.narrow(0, j0, nj).t());
      ld = s.n;
    } else {
      g = gram_tile(buf, s.x, i0, ni, s.x, j0, nj);
    }
  }
  PhaseTimer timer(kSelect);
  const T* G = g.data_ptr<T>();
  const T inv_dim = T(1) / T(s.dim);
  const T* sq_j = s.sqnorm.data() + j0;
  T* worst_j = lists.worst.data() + j0;
  MaxPair<T> local_max = lists.max;
  for (int64_t a = 0; a < ni; ++a) {
    const int64_t i = i0 + a;
    const int64_t b0 = (I == J) ? a + 1 : 0;  // diagonal tile: strict upper triangle
    const int64_t m = nj - b0;
    if (m <= 0) continue;
    T* r = row.data();
    simd::row_sqdist(r, G + a * ld + b0, sq_j + b0, s.sqnorm[i], inv_dim, m);
    const T top = simd::row_max(r, m);
    if (top > local_max.d2) {
      int64_t b = 0;
      while (r[b] != top) ++b;
      local_max.offer(top, i, j0 + b0 + b);
    }
    for (int64_t c0 = 0; c0 < m; c0 += kBlock) {
      const int64_t len = std::min(kBlock, m - c0);
      const T* rc = r + c0;
      if constexpr (std::is_same_v<T, float>) {
        // Only the entries under the bar when the mask is taken (bars only fall, so the others
        // would be refused anyway), in the same order as the loop below.
        for_each_below(rc, lists.worst[i], len, [&](int b) { lists.offer(i, rc[b], j0 + b0 + c0 + b); });
        for_each_below_each(rc, worst_j + b0 + c0, len, [&](int b) { lists.offer(j0 + b0 + c0 + b, rc[b], i); });
      } else {
        if (simd::count_below(rc, lists.worst[i], len) > 0)
          for (int64_t b = 0; b < len; ++b) lists.offer(i, rc[b], j0 + b0 + c0 + b);
        if (simd::count_below_each(rc, worst_j + b0 + c0, len) > 0)
          for (int64_t b = 0; b < len; ++b) lists.offer(j0 + b0 + c0 + b, rc[b], i);
      }
    }
  }
  lists.max = local_max;
}

}  // namespace

template <typename T>
KnnLists<T> knn_scan(const Sample<T>& s, int64_t k, bool include_self, bool parallel, const at::Tensor& gram) {
  if constexpr (std::is_same_v<T, float>) {
    if (s.filter) return knn_scan_filtered(s, k, include_self, parallel, gram);
  }
  const int64_t tiles = (s.n + s.tile - 1) / s.tile;
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (int64_t I = 0; I < tiles; ++I)
    for (int64_t J = I; J < tiles; ++J) pairs.emplace_back(I, J);

  const int64_t nthreads = threads_for(parallel);
  std::vector<KnnLists<T>> lists(nthreads, KnnLists<T>(s.n, k));
  if (include_self)
    for (int64_t i = 0; i < s.n; ++i) lists[0].offer(i, T(0), i);

  const int64_t tile_elems = std::min(s.tile, s.n) * std::min(s.tile, s.n);
  maybe_parallel_for(parallel, static_cast<int64_t>(pairs.size()), 1, [&](int64_t begin, int64_t end, int64_t tid) {
    at::Tensor buf = at::empty({tile_elems}, s.x.options());
    std::vector<T> row(s.tile);
    for (int64_t p = begin; p < end; ++p) scan_tile_pair(s, buf, row, gram, pairs[p].first, pairs[p].second, lists[tid]);
  });
  for (int64_t t = 1; t < nthreads; ++t) lists[0].absorb(lists[t]);
  return std::move(lists[0]);
}

template KnnLists<float> knn_scan(const Sample<float>&, int64_t, bool, bool, const at::Tensor&);
template KnnLists<double> knn_scan(const Sample<double>&, int64_t, bool, bool, const at::Tensor&);

at::Tensor knn_density(const at::Tensor& x, int64_t k, const std::optional<at::Tensor>& mask, bool include_self) {
  const int64_t B = x.size(0), N = x.size(1);
  at::Tensor xc = x.to(compute_type(x)).contiguous();
  at::Tensor mc = mask.has_value() ? mask->contiguous() : at::Tensor();
  at::Tensor rho = at::zeros({B, N}, x.options().dtype(at::kFloat));
  float* out = rho.data_ptr<float>();
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "knn_density", [&] {
    for_each_sample(B, [&](int64_t b, bool parallel) {
      const bool* valid = mc.defined() ? mc.data_ptr<bool>() + b * N : nullptr;
      Sample<scalar_t> s = make_sample<scalar_t>(xc[b], valid, include_self ? k : k + 1, k);
      KnnLists<scalar_t> lists = knn_scan(s, k, include_self, parallel, at::Tensor());
      for (int64_t i = 0; i < s.n; ++i) out[b * N + s.orig[i]] = lists.density(s, i);
    });
  });
  return rho;
}

}  // namespace emollm::cpu

// The op's schema and CPU kernel under torch.ops.emollm_C (the Python op's arguments, in order).
// These checks only guard the kernel against direct calls; emollm.ops checks with clear errors.
namespace {

at::Tensor knn_density_op(const at::Tensor& x, int64_t k, const std::optional<at::Tensor>& mask, bool include_self) {
  emollm::cpu::check_tokens(x, "x");
  emollm::cpu::check_mask(mask, x);
  TORCH_CHECK(k >= 1 && k <= x.size(1) - (include_self ? 0 : 1), "k out of range: ", k);
  return emollm::cpu::knn_density(x.detach(), k, mask, include_self);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(emollm_C, m) {
  m.def("knn_density(Tensor x, int k, Tensor? mask, bool include_self) -> Tensor");
}

TORCH_LIBRARY_IMPL(emollm_C, CPU, m) {
  m.impl("knn_density", &knn_density_op);
}
