// The bfloat16 filter of the k-nearest scan (float32 samples).
//
// The symmetric Gram tiles cost most of a stage (docs/cpu-profile.md), and a bfloat16 GEMM runs
// about twice as fast as a float32 one on CPUs with AVX512-BF16. Its values are not the contract's
// distances, so they only choose candidates: every pair gets an interval [lo, hi] that provably
// holds its exact squared distance (bf16_error in common.h), each row keeps the k smallest hi (their
// largest is the bar) and every column whose lo is under the bar. No token outside those candidates
// can be among the k nearest, so the k nearest are chosen among them by distances recomputed from
// differences, lowest index first on equal distances. The result is the k smallest exact distances
// whatever the tiling or the number of threads. A row with more than `cap` candidates (a crowd of
// near-duplicates) is marked and scanned again with float32 Gram blocks: slower, never wrong.
#include <torch/library.h>

#include <cstring>

#include "cpu/common.h"

namespace emollm::cpu {

namespace {

// Per row: the k smallest upper bounds and the candidates whose lower bound is under the bar.
// 8 bytes per candidate slot: n * cap * 8 per thread (cap = max(24, 3k): O(n k)).
struct Candidates {
  struct Entry {
    float lo;
    int32_t j;
  };
  int64_t n, k, cap;
  std::vector<float> ub;         // [n, k] the k smallest upper bounds, ascending
  std::vector<float> bar;        // [n] just above the k-th smallest upper bound: candidates have lo < bar
  std::vector<int32_t> count;    // [n]
  std::vector<Entry> entries;    // [n, cap]
  std::vector<uint8_t> overflow; // [n]
  MaxPair<float> max;            // the pair of largest upper bound, a stand-in for the farthest pair

  Candidates(int64_t n_, int64_t k_, int64_t cap_)
      : n(n_), k(k_), cap(cap_), ub(n_ * k_, std::numeric_limits<float>::infinity()),
        bar(n_, std::numeric_limits<float>::infinity()), count(n_, 0), entries(n_ * cap_), overflow(n_, 0) {}

  inline void offer(int64_t i, float lo, float hi, int64_t j) {
    if (!(lo < bar[i]) || overflow[i]) return;
    add_upper(i, hi);
    push(i, lo, j);
  }

  void absorb(const Candidates& o) {
    max.absorb(o.max);
    for (int64_t i = 0; i < n; ++i) {
      if (o.overflow[i]) overflow[i] = 1;
      for (int64_t m = 0; m < k; ++m) add_upper(i, o.ub[i * k + m]);
      for (int64_t c = i * cap, end = c + o.count[i]; c < end; ++c)
        if (o.entries[c].lo < bar[i] && !overflow[i]) push(i, o.entries[c].lo, o.entries[c].j);
    }
  }

 private:
  inline void add_upper(int64_t i, float hi) {
    float* U = ub.data() + i * k;
    if (insert_ascending(U, k, hi)) bar[i] = std::nextafter(U[k - 1], std::numeric_limits<float>::infinity());
  }

  inline void push(int64_t i, float lo, int64_t j) {
    if (count[i] == cap) compact(i);
    if (count[i] == cap) {
      overflow[i] = 1;
      return;
    }
    entries[i * cap + count[i]++] = Entry{lo, static_cast<int32_t>(j)};
  }

  // Drops the candidates the bar has passed.
  void compact(int64_t i) {
    Entry* E = entries.data() + i * cap;
    int32_t kept = 0;
    for (int32_t c = 0; c < count[i]; ++c)
      if (E[c].lo < bar[i]) E[kept++] = E[c];
    count[i] = kept;
  }
};

// Offers every pair of tile pair (I, J) whose bfloat16 Gram tile is G (leading dimension ld) to
// both its rows' and its columns' candidates.
void scan_tile_pair(const Sample<float>& s, const uint16_t* G, int64_t ld, std::vector<float>& lo,
                    std::vector<float>& hi, int64_t I, int64_t J, Candidates& c) {
  constexpr int64_t kBlock = 32;
  const int64_t i0 = I * s.tile, j0 = J * s.tile;
  const int64_t ni = std::min(s.tile, s.n - i0), nj = std::min(s.tile, s.n - j0);
  PhaseTimer timer(kSelect);
  const float inv_dim = 1.0f / float(s.dim);
  const float cterm = bf16_fp32_term(s.dim);
  MaxPair<float> local_max = c.max;
  for (int64_t a = 0; a < ni; ++a) {
    const int64_t i = i0 + a;
    const int64_t b0 = (I == J) ? a + 1 : 0;  // diagonal tile: strict upper triangle
    const int64_t m = nj - b0;
    if (m <= 0) continue;
    const int64_t jb = j0 + b0;
    simd::row_bounds(lo.data(), hi.data(), G + a * ld + b0, s.sqnorm.data() + jb, s.hnorm.data() + jb,
                     s.rnorm.data() + jb, s.norm.data() + jb, s.slack.data() + jb, s.sqnorm[i], s.hnorm[i],
                     s.rnorm[i], s.norm[i], s.slack[i], inv_dim, kBf16Unit, cterm, m);
    const float top = simd::row_max(hi.data(), m);
    if (top > local_max.d2) {
      int64_t b = 0;
      while (hi[b] != top) ++b;
      local_max.offer(top, i, jb + b);
    }
    // Offers go only where a lower bound is under the bar, found 32 at a time as bit masks.
    for (int64_t c0 = 0; c0 < m; c0 += kBlock) {
      const int64_t len = std::min(kBlock, m - c0);
      const float* l = lo.data() + c0;
      const float* h = hi.data() + c0;
      for_each_below(l, c.bar[i], len, [&](int b) { c.offer(i, l[b], h[b], jb + c0 + b); });
      for_each_below_each(l, c.bar.data() + jb + c0, len, [&](int b) { c.offer(jb + c0 + b, l[b], h[b], i); });
    }
  }
  c.max = local_max;
}

// The k smallest of (exact distance, index) among the candidates (lo, j), ascending, into
// dist/idx. Candidates are taken by increasing (lower bound, index), and once that passes the k-th
// (distance, index) found so far none of the rest can enter (lo never exceeds the float32 distance).
void keep_k_nearest(const Sample<float>& s, int64_t i, std::pair<float, int64_t>* js, int64_t nj, int64_t k,
                    std::pair<float, int64_t>* top, float* dist, int64_t* idx) {
  TORCH_CHECK(nj >= k, "k-nearest filter: ", nj, " candidates for k = ", k, " (internal error)");
  // Ordered in slices: the first few by (lo, j) are usually all the loop reads (a crowd of
  // duplicates has every lo at 0, and the lowest indices end it), so a long list is never sorted whole.
  int64_t sorted = 0;
  auto order_up_to = [&](int64_t want) {
    want = nj - sorted <= 32 ? nj : std::min(want, nj);  // a handful left: order them all
    if (want < nj) std::nth_element(js + sorted, js + want, js + nj);
    if (want - sorted > 32) {
      std::sort(js + sorted, js + want);
    } else {
      for (int64_t a = sorted + 1; a < want; ++a)  // insertion sort
        for (int64_t b = a; b > sorted && js[b] < js[b - 1]; --b) std::swap(js[b], js[b - 1]);
    }
    sorted = want;
  };
  int64_t filled = 0;
  for (int64_t c = 0; c < nj; ++c) {
    if (c == sorted) order_up_to(std::max<int64_t>(2 * sorted, 4 * k + 16));
    const auto [lo, j] = js[c];
    if (filled == k && !(js[c] < top[k - 1])) break;  // (exact, j) >= (lo, j) >= the k-th: so are the rest
    const std::pair<float, int64_t> e(j == i ? 0.0f : exact_sqdist(s, i, j), j);
    if (filled == k && !(e < top[k - 1])) continue;
    int64_t p = filled < k ? filled++ : k - 1;
    for (; p > 0 && e < top[p - 1]; --p) top[p] = top[p - 1];
    top[p] = e;
  }
  for (int64_t m = 0; m < k; ++m) {
    dist[m] = top[m].first;
    idx[m] = top[m].second;
  }
}

// The rows that overflowed their candidate slots (crowds of near-duplicates), over every token:
// float32 Gram blocks of kRows rows through BLAS, float32 bounds (Gram rounding, far tighter than
// bfloat16's), then the same exact choice among what they leave.
void overflowed_rows(const Sample<float>& s, const std::vector<int64_t>& rows, int64_t k, bool include_self,
                     bool parallel, KnnLists<float>& lists) {
  constexpr int64_t kRows = 32, kCols = 512;
  const int64_t n = s.n, nr = static_cast<int64_t>(rows.size());
  const float inv_dim = 1.0f / float(s.dim);
  // |d2 - exact| <= (c2 (|x_i|^2 + |x_j|^2) + 2 (slack_i + slack_j)) / D: float32 Gram rounding,
  // with room for the float32 distance from differences; the slack for subnormal values.
  const float c2 = 2.0f * bf16_fp32_term(s.dim);
  maybe_parallel_for(parallel, (nr + kRows - 1) / kRows, 1, [&](int64_t begin, int64_t end, int64_t) {
    at::Tensor buf = at::empty({kRows * kCols}, s.x.options());
    std::vector<std::vector<std::pair<float, int64_t>>> cand(kRows);
    std::vector<float> ub(kRows * k);
    std::vector<size_t> limit(kRows);
    std::vector<std::pair<float, int64_t>> top(k);
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t r0 = chunk * kRows, nrc = std::min(kRows, nr - r0);
      at::Tensor rx = s.x.index_select(0, at::tensor(std::vector<int64_t>(rows.begin() + r0, rows.begin() + r0 + nrc), at::kLong));
      std::fill(ub.begin(), ub.end(), std::numeric_limits<float>::infinity());
      for (auto& v : cand) v.clear();
      std::fill(limit.begin(), limit.end(), 4 * static_cast<size_t>(k) + 64);
      for (int64_t j0 = 0; j0 < n; j0 += kCols) {
        const int64_t nj = std::min(kCols, n - j0);
        at::Tensor g = gram_tile(buf, rx, 0, nrc, s.x, j0, nj);
        const float* G = g.data_ptr<float>();
        for (int64_t a = 0; a < nrc; ++a) {
          const int64_t i = rows[r0 + a];
          float* U = ub.data() + a * k;
          auto& C = cand[a];
          for (int64_t b = 0; b < nj; ++b) {
            const int64_t j = j0 + b;
            if (j == i && !include_self) continue;
            const float d2 = j == i ? 0.0f : half_sum_sqdist(s.sqnorm[i], s.sqnorm[j], G[a * nj + b], inv_dim);
            const float e = j == i ? 0.0f : (c2 * (s.sqnorm[i] + s.sqnorm[j]) + 2.0f * (s.slack[i] + s.slack[j])) * inv_dim;
            if (!(d2 - e <= U[k - 1])) continue;
            insert_ascending(U, k, d2 + e);
            C.emplace_back(std::max(d2 - e, 0.0f), j);
            if (C.size() >= limit[a]) {  // drop what the bar passed; amortized: the limit doubles what is left
              C.erase(std::remove_if(C.begin(), C.end(), [&](const auto& c) { return c.first > U[k - 1]; }), C.end());
              limit[a] = std::max<size_t>(2 * C.size(), 4 * static_cast<size_t>(k) + 64);
            }
          }
        }
      }
      for (int64_t a = 0; a < nrc; ++a) {
        const int64_t i = rows[r0 + a];
        auto& C = cand[a];
        C.erase(std::remove_if(C.begin(), C.end(), [&](const auto& c) { return c.first > ub[a * k + k - 1]; }), C.end());
        keep_k_nearest(s, i, C.data(), static_cast<int64_t>(C.size()), k, top.data(), lists.dist.data() + i * k,
                       lists.idx.data() + i * k);
        lists.worst[i] = lists.dist[i * k + k - 1];
      }
    }
  });
}

int64_t env_filter() {  // -1 unset, 0 off, 1 on; read per sample, so tests can switch it
  const char* e = std::getenv("EMOLLM_CPU_BF16");
  if (e == nullptr || *e == '\0') return -1;
  return std::strcmp(e, "0") != 0;
}

bool cpu_has_bf16() {
#if defined(__GNUC__) && defined(__x86_64__)
  static const bool v = __builtin_cpu_supports("avx512bf16");
  return v;
#else
  return false;
#endif
}

int64_t capacity(int64_t k) { return std::max<int64_t>(24, 3 * k); }


// The filter's bound grows with ||x||^2 and the distances with the spread around the mean: when a
// common offset holds most of the norm (the Python prologue centres a sample past half), the
// intervals overlap, rows overflow and the filter costs more than it saves. Estimated from up to
// 16 evenly spaced rows: the squared norm of their mean over their mean squared norm.
bool mostly_offset(const Sample<float>& s) {
  const int64_t rows = std::min<int64_t>(16, s.n), D = s.dim;
  std::vector<float> sum(D, 0.0f);
  float sq = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = s.row(r * s.n / rows);
    simd::axpy(sum.data(), 1.0f, x, D);
    sq += simd::sqnorm(x, D);
  }
  return simd::sqnorm(sum.data(), D) > 0.5f * float(rows) * sq;  // |mean|^2 > mean ||x||^2 / 2, times rows^2
}

}  // namespace

bool prepare_filter(Sample<float>& s, int64_t k) {
  const int64_t forced = env_filter();
  // The bfloat16 GEMM only pays where it runs in hardware and the Gram tiles dominate: samples of
  // 128 tokens or more, with k small against them, and no large common offset.
  const bool on = s.n < (int64_t(1) << 31) &&
                  (forced >= 0 ? forced == 1
                               : cpu_has_bf16() && s.n >= 128 && capacity(k) * 4 <= s.n && !mostly_offset(s));
  if (!on) return false;
  const int64_t n = s.n, D = s.dim;
  s.filter = true;
  // The whole bfloat16 copy up to 2^23 values (16 MiB: N=8192 at D=1024), and always for the
  // n <= 1024 of dpc_cluster's kept Gram matrix; past that the scan rounds each tile's rows when it
  // computes the tile, so extra memory stays O(N k + tile D) per thread (EMOLLM_CPU_BF16_STREAM=1
  // forces that for n > 1024, for tests).
  const char* stream_env = std::getenv("EMOLLM_CPU_BF16_STREAM");
  const bool stream = n > 1024 && ((stream_env != nullptr && std::strcmp(stream_env, "1") == 0) ||
                                    n * D > (int64_t(1) << 23));
  std::vector<uint16_t> scratch(stream ? D : 0);
  if (!stream) s.xh = at::empty({n, D}, s.x.options().dtype(at::kBFloat16));
  uint16_t* h = stream ? nullptr : reinterpret_cast<uint16_t*>(s.xh.data_ptr<at::BFloat16>());
  s.hnorm.resize(n);
  s.rnorm.resize(n);
  s.norm.resize(n);
  s.slack.resize(n);
  // Norms rounded up: a float32 sum of D squares is within (D + 2) ulps of its value.
  const float up = 1.0f + 4.0f * float(D + 4) * std::ldexp(1.0f, -24);
  const float tiny = std::ldexp(1.0f, -126), sqrt_d = std::sqrt(float(D));
  for (int64_t i = 0; i < n; ++i) {
    float h_sq, r_sq;
    simd::round_bf16(s.row(i), stream ? scratch.data() : h + i * D, D, &s.sqnorm[i], &h_sq, &r_sq);
    s.hnorm[i] = std::sqrt(h_sq) * up;
    s.rnorm[i] = std::sqrt(r_sq) * up;
    s.norm[i] = std::sqrt(s.sqnorm[i]) * up;
    s.slack[i] = tiny * (sqrt_d * s.norm[i] + float(D));
  }
  return true;
}

KnnLists<float> knn_scan_filtered(const Sample<float>& s, int64_t k, bool include_self, bool parallel,
                                  const at::Tensor& gram) {
  const int64_t n = s.n, cap = capacity(k);
  const int64_t tiles = (n + s.tile - 1) / s.tile;
  const int64_t nthreads = threads_for(parallel);
  std::vector<Candidates> cands(nthreads, Candidates(n, k, cap));
  if (include_self)
    for (int64_t i = 0; i < n; ++i) cands[0].offer(i, 0.0f, 0.0f, i);
  auto bits = [](const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); };
  if (gram.defined()) {
    // Kept Gram matrix: one GEMM per row strip (tile I against every column from tile I on) into it,
    // fewer and larger BLAS calls than one per tile pair; then the strip's tile pairs are scanned.
    maybe_parallel_for(parallel, tiles, 1, [&](int64_t begin, int64_t end, int64_t tid) {
      std::vector<float> lo(s.tile), hi(s.tile);
      for (int64_t I = begin; I < end; ++I) {
        const int64_t i0 = I * s.tile, ni = std::min(s.tile, n - i0);
        {
          PhaseTimer timer(kGram);
          at::Tensor strip = gram.narrow(0, i0, ni).narrow(1, i0, n - i0);
          at::mm_out(strip, s.xh.narrow(0, i0, ni), s.xh.narrow(0, i0, n - i0).t());
        }
        for (int64_t J = I; J < tiles; ++J)
          scan_tile_pair(s, bits(gram) + i0 * n + J * s.tile, n, lo, hi, I, J, cands[tid]);
      }
    });
  } else {
    std::vector<std::pair<int64_t, int64_t>> pairs;
    for (int64_t I = 0; I < tiles; ++I)
      for (int64_t J = I; J < tiles; ++J) pairs.emplace_back(I, J);
    const int64_t tile_elems = std::min(s.tile, n) * std::min(s.tile, n);
    const auto bf16 = s.x.options().dtype(at::kBFloat16);
    maybe_parallel_for(parallel, static_cast<int64_t>(pairs.size()), 1, [&](int64_t begin, int64_t end, int64_t tid) {
      at::Tensor buf = at::empty({tile_elems}, bf16);
      // Without the whole copy: tile I's rows rounded once per run of pairs (I, J), tile J's per pair.
      at::Tensor rows_i, rows_j;
      int64_t rounded_i = -1;
      if (!s.xh.defined()) {
        rows_i = at::empty({std::min(s.tile, n), s.dim}, bf16);
        rows_j = at::empty({std::min(s.tile, n), s.dim}, bf16);
      }
      auto round_rows = [&](at::Tensor& out, int64_t r0, int64_t nr) {
        uint16_t* o = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
        float unused[3];
        for (int64_t r = 0; r < nr; ++r) simd::round_bf16(s.row(r0 + r), o + r * s.dim, s.dim, &unused[0], &unused[1], &unused[2]);
        return out.narrow(0, 0, nr);
      };
      std::vector<float> lo(s.tile), hi(s.tile);
      for (int64_t p = begin; p < end; ++p) {
        const auto [I, J] = pairs[p];
        const int64_t i0 = I * s.tile, j0 = J * s.tile;
        const int64_t ni = std::min(s.tile, n - i0), nj = std::min(s.tile, n - j0);
        at::Tensor g = buf.narrow(0, 0, ni * nj).view({ni, nj});
        {
          PhaseTimer timer(kGram);
          if (s.xh.defined()) {
            at::mm_out(g, s.xh.narrow(0, i0, ni), s.xh.narrow(0, j0, nj).t());
          } else {
            if (rounded_i != I) {
              round_rows(rows_i, i0, ni);
              rounded_i = I;
            }
            const at::Tensor a = rows_i.narrow(0, 0, ni);
            at::mm_out(g, a, (I == J ? a : round_rows(rows_j, j0, nj)).t());
          }
        }
        scan_tile_pair(s, bits(g), nj, lo, hi, I, J, cands[tid]);
      }
    });
  }
  for (int64_t t = 1; t < nthreads; ++t) cands[0].absorb(cands[t]);
  Candidates& c = cands[0];

  // The k nearest among each row's candidates, from differences; overflowed rows over every token.
  PhaseTimer timer(kDensity);
  KnnLists<float> lists(n, k);
  lists.exact = true;
  lists.max = c.max;
  std::vector<int64_t> overflowed;
  for (int64_t i = 0; i < n; ++i)
    if (c.overflow[i]) overflowed.push_back(i);
  maybe_parallel_for(parallel, n, 16, [&](int64_t begin, int64_t end, int64_t) {
    std::vector<std::pair<float, int64_t>> js(cap), top(k);
    for (int64_t i = begin; i < end; ++i) {
      if (c.overflow[i]) continue;
      int64_t nj = 0;
      for (int64_t e = i * cap, stop = e + c.count[i]; e < stop; ++e)
        if (c.entries[e].lo < c.bar[i]) js[nj++] = {std::max(c.entries[e].lo, 0.0f), c.entries[e].j};
      keep_k_nearest(s, i, js.data(), nj, k, top.data(), lists.dist.data() + i * k, lists.idx.data() + i * k);
      lists.worst[i] = lists.dist[i * k + k - 1];
    }
  });
  if (!overflowed.empty()) overflowed_rows(s, overflowed, k, include_self, parallel, lists);
  return lists;
}

}  // namespace emollm::cpu
