// The GCN ops on CPU. gcn_adjacency: the tau-graph over C nodes as a bitmask, row i holding
// ceil(C/64) words, with deg^-1/2 from popcounts. gcn_propagate: out_i = dinv_i * sum over the
// set bits j of row i of dinv_j h_j, walking only set bits (count-trailing-zeros), so the work is
// O(edges * F) instead of O(C^2 * F).
#include <ATen/OpMathType.h>

#include <torch/library.h>

#include "cpu/common.h"

namespace emollm::cpu {

std::tuple<at::Tensor, at::Tensor> gcn_adjacency(const at::Tensor& z, double tau, const std::optional<at::Tensor>& mask) {
  const int64_t B = z.size(0), C = z.size(1), W = (C + 63) / 64;
  at::Tensor zc = z.to(compute_type(z)).contiguous();
  at::Tensor mc = mask.has_value() ? mask->contiguous() : at::Tensor();
  at::Tensor bits = at::zeros({B, C, W}, z.options().dtype(at::kLong));
  at::Tensor dinv = at::zeros({B, C}, z.options().dtype(at::kFloat));
  uint64_t* bp = reinterpret_cast<uint64_t*>(bits.data_ptr<int64_t>());
  float* dp = dinv.data_ptr<float>();
  AT_DISPATCH_FLOATING_TYPES(zc.scalar_type(), "gcn_adjacency", [&] {
    using T = scalar_t;
    parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      at::Tensor buf = at::empty({C * C}, zc.options());
      std::vector<T> dist(C * C);
      for (int64_t b = begin; b < end; ++b) {
        const bool* valid = mc.defined() ? mc.data_ptr<bool>() + b * C : nullptr;
        at::Tensor zb = zc[b];
        const T* zp = zb.data_ptr<T>();
        const int64_t F = zb.size(1);
        std::vector<T> sq(C);
        for (int64_t i = 0; i < C; ++i) {
          sq[i] = squared_norm(zp + i * F, F);
          if (valid == nullptr || valid[i]) check_row(zp + i * F, sq[i], F, "z", i);
        }
        at::Tensor g = gram_tile(buf, zb, 0, C, zb, 0, C);
        const T* G = g.data_ptr<T>();
        auto is_valid = [&](int64_t i) { return valid == nullptr || valid[i]; };
        // Gram distances (BLAS) decide every pair that is clear of the threshold; a pair within
        // the Gram formula's rounding bound of it (duplicates included: their distance is 0) is
        // recomputed from differences, so no edge depends on cancellation error.
        T max_d2 = -1;
        int64_t mi = -1, mj = -1;
        for (int64_t i = 0; i < C; ++i)
          for (int64_t j = i + 1; j < C; ++j) {
            const T d2 = sq[i] + sq[j] - T(2) * G[i * C + j];
            dist[i * C + j] = d2;
            if (is_valid(i) && is_valid(j) && d2 > max_d2) {
              max_d2 = d2;
              mi = i;
              mj = j;
            }
          }
        // The normalizer exactly (float64), and the threshold on squared distances for the Gram
        // screening; decisions near it are taken as the contract reads: d / max d <= tau.
        const double dmax = mi >= 0 ? std::sqrt(squared_distance_f64(zp + mi * F, zp + mj * F, F)) : 0.0;
        const T thr2 = static_cast<T>(tau * tau * dmax * dmax);
        const T rel = gram_rounding<T>(F);
        uint64_t* rowbits = bp + b * C * W;
        auto link = [&](int64_t i, int64_t j) { rowbits[i * W + j / 64] |= uint64_t(1) << (j % 64); };
        for (int64_t i = 0; i < C; ++i) {
          if (!is_valid(i)) continue;
          link(i, i);
          for (int64_t j = i + 1; j < C; ++j) {
            if (!is_valid(j)) continue;
            const T d2 = dist[i * C + j];
            bool edge;
            if (dmax == 0.0) {
              edge = true;  // all-equal nodes: every normalized distance is 0
            } else if (std::abs(d2 - thr2) <= rel * (sq[i] + sq[j]) + std::numeric_limits<T>::min()) {
              // d <= max d by definition; a pair as far as (mi, mj) may round above it, and
              // clamping keeps tau = 1 the complete graph.
              edge = std::min(std::sqrt(squared_distance_f64(zp + i * F, zp + j * F, F)), dmax) / dmax <= tau;
            } else {
              edge = d2 <= thr2;
            }
            if (edge) {
              link(i, j);
              link(j, i);
            }
          }
        }
        for (int64_t i = 0; i < C; ++i) {
          if (!is_valid(i)) continue;
          int64_t deg = 0;
          for (int64_t w = 0; w < W; ++w) deg += __builtin_popcountll(rowbits[i * W + w]);
          dp[b * C + i] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(deg)));
        }
      }
    });
  });
  return {bits, dinv};
}

at::Tensor gcn_propagate(const at::Tensor& bits, const at::Tensor& dinv, const at::Tensor& h) {
  const int64_t B = h.size(0), C = h.size(1), F = h.size(2), W = bits.size(2);
  at::Tensor hc = h.contiguous();
  at::Tensor bc = bits.contiguous();
  at::Tensor dc = dinv.to(at::kFloat).contiguous();
  at::Tensor out = at::empty_like(hc);
  const uint64_t* bp = reinterpret_cast<const uint64_t*>(bc.data_ptr<int64_t>());
  const float* dp = dc.data_ptr<float>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, hc.scalar_type(), "gcn_propagate", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* hp = hc.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    parallel_for(0, B * C, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(F);
      for (int64_t row = begin; row < end; ++row) {
        const int64_t b = row / C;
        std::fill(acc.begin(), acc.end(), acc_t(0));
        for (int64_t w = 0; w < W; ++w) {
          uint64_t word = bp[row * W + w];
          if (w == W - 1 && C % 64 != 0) word &= (uint64_t(1) << (C % 64)) - 1;  // no node past C
          for (; word != 0; word &= word - 1) {
            const int64_t j = w * 64 + __builtin_ctzll(word);
            const acc_t s = static_cast<acc_t>(dp[b * C + j]);
            const scalar_t* hj = hp + (b * C + j) * F;
            for (int64_t f = 0; f < F; ++f) acc[f] += s * static_cast<acc_t>(hj[f]);
          }
        }
        const acc_t si = static_cast<acc_t>(dp[row]);
        scalar_t* orow = op + row * F;
        for (int64_t f = 0; f < F; ++f) orow[f] = static_cast<scalar_t>(si * acc[f]);
      }
    });
  });
  return out;
}

}  // namespace emollm::cpu

// The op's schema and CPU kernel under torch.ops.emollm_C (the Python op's arguments, in order).
// These checks only guard the kernel against direct calls; emollm.ops checks with clear errors.
namespace {

std::tuple<at::Tensor, at::Tensor> gcn_adjacency_op(const at::Tensor& z, double tau, const std::optional<at::Tensor>& mask) {
  emollm::cpu::check_tokens(z, "z");
  emollm::cpu::check_mask(mask, z);
  TORCH_CHECK(tau >= 0.0 && tau <= 1.0, "tau must lie in [0, 1], got ", tau);
  return emollm::cpu::gcn_adjacency(z.detach(), tau, mask);
}

at::Tensor gcn_propagate_op(const at::Tensor& bits, const at::Tensor& dinv, const at::Tensor& h) {
  emollm::cpu::check_tokens(h, "h");
  const int64_t B = h.size(0), C = h.size(1);
  TORCH_CHECK(bits.scalar_type() == at::kLong && bits.dim() == 3 && bits.size(0) == B && bits.size(1) == C &&
                  bits.size(2) == (C + 63) / 64,
              "bits must be int64 [B, C, ceil(C/64)]");
  TORCH_CHECK(dinv.dim() == 2 && dinv.size(0) == B && dinv.size(1) == C, "dinv must be [B, C]");
  return emollm::cpu::gcn_propagate(bits, dinv.detach(), h.detach());
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(emollm_C, m) {
  m.def("gcn_adjacency(Tensor z, float tau, Tensor? mask) -> (Tensor, Tensor)");
  m.def("gcn_propagate(Tensor bits, Tensor dinv, Tensor h) -> Tensor");
}

TORCH_LIBRARY_IMPL(emollm_C, CPU, m) {
  m.impl("gcn_adjacency", &gcn_adjacency_op);
  m.impl("gcn_propagate", &gcn_propagate_op);
}
