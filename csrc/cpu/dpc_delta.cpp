// dpc_delta on CPU: distance to the nearest denser token, by a tiled scan that never holds more
// than s.tile x s.tile distances per thread. Rows are split between threads, so each thread owns
// its rows' running minimum and no merge is needed.
#include <torch/library.h>

#include "cpu/common.h"

namespace emollm::cpu {

template <typename T>
void nearest_denser_scan(const Sample<T>& s, const float* rho, const std::vector<int64_t>& rows,
                         std::vector<int64_t>& best_j, MaxPair<T>* max, bool parallel) {
  const int64_t nr = static_cast<int64_t>(rows.size());
  std::vector<Nearest<T>> near;
  near.reserve(nr);
  for (int64_t r = 0; r < nr; ++r) near.emplace_back(s, rows[r]);
  const int64_t chunks = (nr + s.tile - 1) / s.tile;
  const int64_t nthreads = threads_for(parallel);
  std::vector<MaxPair<T>> maxes(nthreads);
  const T inv_dim = T(1) / T(s.dim);
  const bool all_rows = nr == s.n;  // rows == 0..n-1: use x itself instead of a gathered copy

  maybe_parallel_for(parallel, chunks, 1, [&](int64_t begin, int64_t end, int64_t tid) {
    at::Tensor buf = at::empty({s.tile * std::min(s.tile, s.n)}, s.x.options());
    at::Tensor rows_x;
    for (int64_t c = begin; c < end; ++c) {
      const int64_t r0 = c * s.tile, nrc = std::min(s.tile, nr - r0);
      int64_t a0 = r0;
      if (!all_rows) {
        std::vector<int64_t> sel(rows.begin() + r0, rows.begin() + r0 + nrc);
        rows_x = s.x.index_select(0, at::tensor(sel, at::kLong));
        a0 = 0;
      }
      const at::Tensor& A = all_rows ? s.x : rows_x;
      MaxPair<T> local_max = maxes[tid];
      for (int64_t j0 = 0; j0 < s.n; j0 += s.tile) {
        const int64_t nj = std::min(s.tile, s.n - j0);
        at::Tensor g = gram_tile(buf, A, a0, nrc, s.x, j0, nj);
        const T* G = g.data_ptr<T>();
        for (int64_t a = 0; a < nrc; ++a) {
          const int64_t r = r0 + a, i = rows[r];
          const T ni_sq = s.sqnorm[i];
          Nearest<T>& nr_i = near[r];
          for (int64_t b = 0; b < nj; ++b) {
            const int64_t j = j0 + b;
            if (j == i) continue;
            const T d2 = scaled_sqdist(ni_sq, s.sqnorm[j], G[a * nj + b], inv_dim);
            if (max != nullptr) local_max.offer(d2, i, j);
            if (denser(rho, j, i)) nr_i.offer(d2, j, j);  // ties: the lowest j
          }
        }
      }
      maxes[tid] = local_max;
    }
  });
  if (max != nullptr)
    for (const auto& m : maxes) max->absorb(m);
  best_j.resize(nr);
  for (int64_t r = 0; r < nr; ++r) best_j[r] = near[r].j;
}

template void nearest_denser_scan(const Sample<float>&, const float*, const std::vector<int64_t>&,
                                  std::vector<int64_t>&, MaxPair<float>*, bool);
template void nearest_denser_scan(const Sample<double>&, const float*, const std::vector<int64_t>&,
                                  std::vector<int64_t>&, MaxPair<double>*, bool);

std::tuple<at::Tensor, at::Tensor> dpc_delta(const at::Tensor& x, const at::Tensor& rho,
                                             const std::optional<at::Tensor>& mask) {
  const int64_t B = x.size(0), N = x.size(1);
  at::Tensor xc = x.to(compute_type(x)).contiguous();
  at::Tensor rc = rho.to(at::kFloat).contiguous();
  at::Tensor mc = mask.has_value() ? mask->contiguous() : at::Tensor();
  at::Tensor delta = at::zeros({B, N}, x.options().dtype(at::kFloat));
  at::Tensor parent = at::arange(N, x.options().dtype(at::kLong)).repeat({B, 1});
  float* dp = delta.data_ptr<float>();
  int64_t* pp = parent.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "dpc_delta", [&] {
    for_each_sample(B, [&](int64_t b, bool parallel) {
      const bool* valid = mc.defined() ? mc.data_ptr<bool>() + b * N : nullptr;
      Sample<scalar_t> s = make_sample<scalar_t>(xc[b], valid);
      std::vector<float> r(s.n);
      for (int64_t i = 0; i < s.n; ++i) r[i] = rc.data_ptr<float>()[b * N + s.orig[i]];
      std::vector<int64_t> rows(s.n);
      for (int64_t i = 0; i < s.n; ++i) rows[i] = i;
      std::vector<int64_t> bj;
      MaxPair<scalar_t> max;
      nearest_denser_scan(s, r.data(), rows, bj, &max, parallel);
      for (int64_t i = 0; i < s.n; ++i) {
        const bool peak = bj[i] < 0;
        dp[b * N + s.orig[i]] = static_cast<float>(std::sqrt(peak ? max.exact(s) : exact_sqdist(s, i, bj[i])));
        pp[b * N + s.orig[i]] = s.orig[peak ? i : bj[i]];
      }
    });
  });
  return {delta, parent};
}

}  // namespace emollm::cpu

// The op's schema and CPU kernel under torch.ops.emollm_C (the Python op's arguments, in order).
// These checks only guard the kernel against direct calls; emollm.ops checks with clear errors.
namespace {

std::tuple<at::Tensor, at::Tensor> dpc_delta_op(const at::Tensor& x, const at::Tensor& rho,
                                             const std::optional<at::Tensor>& mask) {
  emollm::cpu::check_tokens(x, "x");
  emollm::cpu::check_mask(mask, x);
  TORCH_CHECK(rho.dim() == 2 && rho.size(0) == x.size(0) && rho.size(1) == x.size(1), "rho must be [B, N]");
  return emollm::cpu::dpc_delta(x.detach(), rho.detach(), mask);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(emollm_C, m) {
  m.def("dpc_delta(Tensor x, Tensor rho, Tensor? mask) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(emollm_C, CPU, m) {
  m.impl("dpc_delta", &dpc_delta_op);
}
