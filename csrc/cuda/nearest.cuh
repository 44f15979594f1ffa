// The nearest of a set of candidate columns for every row, with exact near-ties: the scan behind
// dpc_delta (nearest denser token) and the assignment of dpc_cluster (nearest center).
//
// A block owns 64 rows of one sample and streams the candidate columns in Gram tiles; each warp
// owns 8 rows, and each lane keeps, per row, the best of the columns it saw (a Nearest). At the
// end the 32 lanes' states are merged by a butterfly of shuffles. Gram distances decide where
// they are clear of their rounding bound (gram_error_bound); within it (exact duplicates, for
// one) the two candidates' distances are recomputed from explicit differences, then compared by
// key. So a tie goes to the lowest key whatever tile or lane saw the candidates first, as on CPU.
#pragma once

#include "cuda/common.cuh"

namespace emollm::cuda {

// The best candidate of one row so far (tok < 0: none yet).
struct Nearest {
  float g = infinity();  // Gram squared distance, scaled by 1/D
  float e = -1.f;        // exact squared distance (unscaled), -1 until computed
  int32_t key = -1;      // what ties are broken by: the token (delta) or the center's rank
  int32_t tok = -1;      // the candidate's token index in the sample
  float norm = 0.f;      // its squared norm
};

// The row the candidates are offered to.
template <typename T>
struct NearestRow {
  const T* xs;  // the sample's tokens [N, D]
  const T* xi;  // the row's token
  int64_t D;
  float norm;   // ||x_i||^2
  float rel;    // gram_error_bound(D) / D
};

// Offers a candidate (e < 0: exact distance not known yet). Symmetric: offering a to a state
// holding b gives what offering b to a state holding a gives (the merge relies on it), since
// g - s.g is exactly antisymmetric and norm + s.norm commutative.
template <typename T>
EMOLLM_HD void offer(Nearest& s, const NearestRow<T>& row, float g, int32_t key, int32_t tok, float norm, float e) {
  if (tok < 0) return;
  const Nearest cand{g, e, key, tok, norm};
  if (s.tok < 0) {
    s = cand;
    return;
  }
  const float tol = row.rel * (2.f * row.norm + (norm + s.norm));
  const float diff = g - s.g;
  if (diff < -tol) {
    s = cand;
  } else if (diff <= tol) {
    if (s.e < 0.f) s.e = exact_sqdist(row.xi, row.xs + int64_t(s.tok) * row.D, row.D);
    const float ce = e >= 0.f ? e : exact_sqdist(row.xi, row.xs + int64_t(tok) * row.D, row.D);
    if (ce < s.e || (ce == s.e && key < s.key)) s = Nearest{g, ce, key, tok, norm};
  }
}

// Every lane ends with the best over the warp's lanes.
#pragma nv_exec_check_disable
template <typename Ctx, typename T>
EMOLLM_HD void warp_merge(const Ctx& ctx, Nearest& s, const NearestRow<T>& row) {
  for (int m = kWarpSize / 2; m > 0; m /= 2) {
    const float g = ctx.shfl_xor(s.g, m), e = ctx.shfl_xor(s.e, m), norm = ctx.shfl_xor(s.norm, m);
    const int32_t key = ctx.shfl_xor(s.key, m), tok = ctx.shfl_xor(s.tok, m);
    offer(s, row, g, key, tok, norm, e);
  }
}

// The farthest candidate of a row (delta's peak needs the sample's largest distance); ties to
// the lower token, so that merging is symmetric.
struct Farthest {
  float g = -1.f;
  int32_t tok = -1;

  EMOLLM_HD void offer(float cg, int32_t ctok) {
    if (cg > g || (cg == g && ctok < tok)) {
      g = cg;
      tok = ctok;
    }
  }
};

#pragma nv_exec_check_disable
template <typename Ctx>
EMOLLM_HD void warp_merge(const Ctx& ctx, Farthest& f) {
  for (int m = kWarpSize / 2; m > 0; m /= 2) {
    const float g = ctx.shfl_xor(f.g, m);
    const int32_t tok = ctx.shfl_xor(f.tok, m);
    if (tok >= 0) f.offer(g, tok);
  }
}

// dpc_delta's candidates are the denser tokens: j is denser than i iff rho_j > rho_i, or equal
// and j < i.
EMOLLM_HD bool denser(float rho_j, int32_t j, float rho_i, int32_t i) { return rho_j > rho_i || (rho_j == rho_i && j < i); }

enum class Scan { kDenser, kCenters };

template <typename T>
struct NearestArgs {
  const T* x;                // [B, N, D]
  const uint8_t* mask;       // [B, N] or nullptr
  const float* sqnorm;       // [B, N]
  const float* rho;          // kDenser: [B, N] densities
  const int64_t* centers;    // kCenters: [B, C] token indices
  int64_t N, D, C;
  // kDenser outputs: delta (-1 marks a peak, for the finishing kernel), parent, and each row's
  // farthest token with its Gram distance (-1 for none).
  float* delta;
  int64_t* parent;
  float* row_max;
  int32_t* row_max_tok;
  // kCenters output: the nearest center's rank (-1 for padded tokens).
  int64_t* assign;
};

struct NearestShared {
  TileShared tile;
  float row_rho[kRows];
  float col_rho[kCols];
};

#pragma nv_exec_check_disable
template <Scan kScan, typename Ctx, typename T>
EMOLLM_HD void nearest_block(const Ctx& ctx, NearestShared& sh, const NearestArgs<T>& a) {
  constexpr bool kDenser = kScan == Scan::kDenser;
  TileShared& tile = sh.tile;
  int64_t b, i0;
  block_rows(ctx.block(), a.N, b, i0);
  const T* xs = a.x + b * a.N * a.D;
  const uint8_t* valid = a.mask ? a.mask + b * a.N : nullptr;
  const float* norms = a.sqnorm + b * a.N;
  set_rows(ctx, tile, i0, a.N, valid, norms);
  if (kDenser)
    for (int r = ctx.thread(); r < kRows; r += kThreads) sh.row_rho[r] = i0 + r < a.N ? a.rho[b * a.N + i0 + r] : 0.f;
  ctx.sync();

  const int lane = ctx.lane(), w = ctx.warp();
  const float rel = gram_error_bound(a.D) / float(a.D);
  Nearest best[kRowsPerWarp];
  Farthest far[kRowsPerWarp];
  const int64_t columns = kDenser ? a.N : a.C;
  for (int64_t j0 = 0; j0 < columns; j0 += kCols) {
    for (int c = ctx.thread(); c < kCols; c += kThreads) {
      const int64_t j = j0 + c;
      int64_t tok = -1;
      if (j < columns) tok = kDenser ? j : a.centers[b * a.C + j];
      if (kDenser && tok >= 0 && valid != nullptr && !valid[tok]) tok = -1;
      tile.col_tok[c] = static_cast<int32_t>(tok);
      tile.col_norm[c] = tok >= 0 ? norms[tok] : 0.f;
      if (kDenser) sh.col_rho[c] = tok >= 0 ? a.rho[b * a.N + tok] : 0.f;
    }
    ctx.sync();
    gram_tile(ctx, tile, xs, a.D, /*skip_self=*/kDenser);
    for (int q = 0; q < kRowsPerWarp; ++q) {
      const int r = w * kRowsPerWarp + q;
      const int32_t i = tile.row_tok[r];
      if (i < 0) continue;
      const NearestRow<T> row{xs, xs + int64_t(i) * a.D, a.D, tile.row_norm[r], rel};
      for (int c = lane; c < kCols; c += kWarpSize) {
        const int32_t tok = tile.col_tok[c];
        const float g = tile.d2[r][c];
        if (tok < 0 || !(g < infinity())) continue;  // none, or the row itself
        if (kDenser) {
          far[q].offer(g, tok);
          if (denser(sh.col_rho[c], tok, sh.row_rho[r], i)) offer(best[q], row, g, tok, tok, tile.col_norm[c], -1.f);
        } else {
          offer(best[q], row, g, static_cast<int32_t>(j0 + c), tok, tile.col_norm[c], -1.f);
        }
      }
    }
    ctx.sync();  // the next tile overwrites the shared memory
  }

  for (int q = 0; q < kRowsPerWarp; ++q) {
    const int r = w * kRowsPerWarp + q;
    const int64_t i = i0 + r, out = b * a.N + i;
    if (i >= a.N) continue;
    const int32_t tok = tile.row_tok[r];
    if (tok < 0) {  // padded: delta 0 and itself, or cluster -1
      if (lane == 0 && kDenser) {
        a.delta[out] = 0.f;
        a.parent[out] = i;
        a.row_max[out] = -1.f;
        a.row_max_tok[out] = -1;
      }
      if (lane == 0 && !kDenser) a.assign[out] = -1;
      continue;
    }
    const NearestRow<T> row{xs, xs + i * a.D, a.D, tile.row_norm[r], rel};
    warp_merge(ctx, best[q], row);
    if (kDenser) warp_merge(ctx, far[q]);
    if (lane != 0) continue;
    if (!kDenser) {
      a.assign[out] = best[q].key;
    } else if (best[q].tok < 0) {  // the peak: delta filled in by the finishing kernel
      a.delta[out] = -1.f;
      a.parent[out] = i;
    } else {
      const Nearest& s = best[q];
      const float e = s.e >= 0.f ? s.e : exact_sqdist(row.xi, xs + int64_t(s.tok) * a.D, a.D);
      a.delta[out] = sqrtf(e / float(a.D));
      a.parent[out] = s.tok;
    }
    if (kDenser) {
      a.row_max[out] = far[q].g;
      a.row_max_tok[out] = far[q].tok;
    }
  }
}

}  // namespace emollm::cuda
