// Runs the CUDA kernels of csrc/cuda on the CPU, for tests on machines without a GPU.
//
// The kernels' block bodies are templates over an execution context (csrc/cuda/common.cuh). Here
// HostExec runs each block as 256 fibers (ucontext, one OS thread, one fiber per CUDA thread):
// __syncthreads is a barrier of the block's fibers, and every warp collective (ballot, shuffles)
// a barrier of the warp's 32 lanes around an exchange of values. So the very code of the kernels,
// launch sequences included, runs with CUDA's semantics for everything but timing and memory
// ordering between warps without a barrier; a collective or barrier that not all of its threads
// reach deadlocks as on a GPU, and is reported here.
//
// Usage: cuda_emulator IN OUT. IN holds nine int64 (op, dtype, B, N, D, k, include_self,
// has_mask, C), then x [B,N,D] in dtype, mask [B,N] bytes if has_mask, then rho [B,N] float32
// (op 1) or centers [B,C] int64 (op 2). OUT gets rho [B,N] float32 (op 0: knn_density),
// delta [B,N] float32 + parent [B,N] int64 (op 1: dpc_delta) or assign [B,N] int64 (op 2).
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <vector>

#include "cuda/dpc_cluster.cu"
#include "cuda/dpc_delta.cu"
#include "cuda/knn_density.cu"

namespace {

using namespace emollm::cuda;

// A barrier of `size` fibers.
struct Group {
  int size;
  int arrived = 0;
  long generation = 0;
};

// Runs fn(t) for t in [0, n) as fibers on the calling thread; a fiber runs until it waits at a
// barrier or ends, then the next runnable one (round robin) takes over.
class Fibers {
 public:
  Fibers(int n, std::function<void(int)> fn) : fn_(std::move(fn)), fibers_(n) {
    for (int t = 0; t < n; ++t) {
      Fiber& f = fibers_[t];
      f.stack.reset(new char[kStack]);
      getcontext(&f.uc);
      f.uc.uc_stack.ss_sp = f.stack.get();
      f.uc.uc_stack.ss_size = kStack;
      f.uc.uc_link = &main_;
      makecontext(&f.uc, &Fibers::entry, 0);
    }
  }

  void run() {
    active_ = this;
    current_ = 0;
    swapcontext(&main_, &fibers_[0].uc);
    for (const Fiber& f : fibers_)
      if (!f.done) {
        std::fprintf(stderr, "deadlock: not every thread of a block or warp reached a barrier or collective\n");
        std::abort();
      }
  }

  void wait(Group& g) {
    if (++g.arrived == g.size) {  // the last to arrive releases the others and goes on
      g.arrived = 0;
      ++g.generation;
      return;
    }
    Fiber& f = fibers_[current_];
    f.waiting = &g;
    f.generation = g.generation;
    switch_away();
    f.waiting = nullptr;
  }

 private:
  static constexpr size_t kStack = 256 * 1024;

  struct Fiber {
    ucontext_t uc;
    std::unique_ptr<char[]> stack;
    bool done = false;
    Group* waiting = nullptr;
    long generation = 0;

    bool runnable() const { return !done && (waiting == nullptr || waiting->generation != generation); }
  };

  static void entry() {
    Fibers* self = active_;
    self->fn_(self->current_);
    self->fibers_[self->current_].done = true;
    self->switch_away();
  }

  // To the next runnable fiber, or back to run() when there is none (all done, or deadlock).
  void switch_away() {
    const int n = static_cast<int>(fibers_.size());
    for (int step = 1; step <= n; ++step) {
      const int next = (current_ + step) % n;
      if (next != current_ && fibers_[next].runnable()) {
        const int prev = current_;
        current_ = next;
        swapcontext(&fibers_[prev].uc, &fibers_[next].uc);
        return;
      }
    }
    swapcontext(&fibers_[current_].uc, &main_);
  }

  static inline Fibers* active_ = nullptr;
  std::function<void(int)> fn_;
  std::vector<Fiber> fibers_;
  ucontext_t main_;
  int current_ = 0;
};

struct BlockState {
  int64_t index = 0;
  Fibers* fibers = nullptr;
  Group block{kThreads};
  Group warps[kWarps] = {{kWarpSize}, {kWarpSize}, {kWarpSize}, {kWarpSize},
                         {kWarpSize}, {kWarpSize}, {kWarpSize}, {kWarpSize}};
  // Two exchange buffers used alternately: a lane can run at most one collective ahead of the
  // others (the next barrier stops it), so one barrier per collective suffices.
  uint64_t slots[2][kWarps][kWarpSize] = {};
};
static_assert(kWarps == 8, "BlockState lists one Group per warp");

// The context of one emulated thread.
struct HostCtx {
  BlockState* st;
  int tid;
  mutable int parity = 0;

  int thread() const { return tid; }
  int64_t block() const { return st->index; }
  int lane() const { return tid % kWarpSize; }
  int warp() const { return tid / kWarpSize; }
  void sync() const { st->fibers->wait(st->block); }

  // Every lane posts v, then reads what lane `src` posted.
  template <typename V>
  V exchange(V v, int src) const {
    static_assert(sizeof(V) <= sizeof(uint64_t), "warp exchange of at most 8 bytes");
    uint64_t* slot = st->slots[parity][warp()];
    parity ^= 1;
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(V));
    slot[lane()] = bits;
    st->fibers->wait(st->warps[warp()]);
    V out;
    std::memcpy(&out, &slot[src], sizeof(V));
    return out;
  }

  unsigned ballot(bool p) const {
    const uint64_t* slot = st->slots[parity][warp()];
    exchange<uint64_t>(p ? 1 : 0, 0);
    unsigned mask = 0;
    for (int l = 0; l < kWarpSize; ++l) mask |= unsigned(slot[l] != 0) << l;
    return mask;
  }
  template <typename V>
  V shfl(V v, int src) const { return exchange(v, src % kWarpSize); }
  template <typename V>
  V shfl_xor(V v, int mask) const { return exchange(v, lane() ^ mask); }
  template <typename V>
  V shfl_up(V v, int delta) const { return exchange(v, lane() >= delta ? lane() - delta : lane()); }
};

struct HostExec {
  template <typename Kernel, typename Args>
  cudaError_t launch(int64_t blocks, const Args& args) {
    for (int64_t blk = 0; blk < blocks; ++blk) {
      BlockState st;
      st.index = blk;
      auto sh = std::make_unique<typename Kernel::Shared>();
      Fibers fibers(kThreads, [&](int t) { Kernel::run(HostCtx{&st, t}, *sh, args); });
      st.fibers = &fibers;
      fibers.run();
    }
    return cudaSuccess;
  }
};

template <typename V>
std::vector<V> read_array(std::ifstream& in, int64_t count) {
  std::vector<V> v(count);
  in.read(reinterpret_cast<char*>(v.data()), count * sizeof(V));
  if (!in) {
    std::fprintf(stderr, "input too short\n");
    std::exit(2);
  }
  return v;
}

template <typename V>
void write_array(std::ofstream& out, const std::vector<V>& v) {
  out.write(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(V));
}

template <typename T>
int run(std::ifstream& in, std::ofstream& out, const int64_t* h) {
  const int64_t op = h[0], B = h[2], N = h[3], D = h[4], k = h[5], include_self = h[6], has_mask = h[7], C = h[8];
  std::vector<T> x = read_array<T>(in, B * N * D);
  std::vector<uint8_t> mask = has_mask ? read_array<uint8_t>(in, B * N) : std::vector<uint8_t>();
  const uint8_t* m = has_mask ? mask.data() : nullptr;
  std::vector<float> sqnorm(B * N);
  HostExec exec;
  cudaError_t err = cudaErrorInvalidValue;
  if (op == 0) {
    std::vector<float> rho(B * N, -7.f);  // a value no kernel writes: rows left unwritten show
    err = knn_density(exec, x.data(), m, B, N, D, int(k), include_self != 0, sqnorm.data(), rho.data());
    write_array(out, rho);
  } else if (op == 1) {
    std::vector<float> rho = read_array<float>(in, B * N), row_max(B * N), delta(B * N, -7.f);
    std::vector<int32_t> row_max_tok(B * N);
    std::vector<int64_t> parent(B * N, -7);
    err = dpc_delta(exec, x.data(), m, rho.data(), B, N, D, sqnorm.data(), row_max.data(), row_max_tok.data(),
                    delta.data(), parent.data());
    write_array(out, delta);
    write_array(out, parent);
  } else if (op == 2) {
    std::vector<int64_t> centers = read_array<int64_t>(in, B * C), assign(B * N, -7);
    err = nearest_center(exec, x.data(), m, centers.data(), B, N, D, C, sqnorm.data(), assign.data());
    write_array(out, assign);
  }
  if (err != cudaSuccess) {
    std::fprintf(stderr, "launch sequence failed: error %d\n", int(err));
    return 3;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IN OUT\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::ofstream out(argv[2], std::ios::binary);
  int64_t h[9];
  in.read(reinterpret_cast<char*>(h), sizeof(h));
  if (!in || !out) {
    std::fprintf(stderr, "cannot read %s or write %s\n", argv[1], argv[2]);
    return 2;
  }
  switch (h[1]) {
    case EMOLLM_FLOAT32: return run<float>(in, out, h);
    case EMOLLM_FLOAT16: return run<__half>(in, out, h);
    case EMOLLM_BFLOAT16: return run<__nv_bfloat16>(in, out, h);
    default: std::fprintf(stderr, "unknown dtype %lld\n", static_cast<long long>(h[1])); return 2;
  }
}
