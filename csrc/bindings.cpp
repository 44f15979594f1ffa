// emollm._C: the compiled kernels, as torch.ops.emollm_C.<op>. Each csrc/cpu/<op>.cpp defines its
// op's schema and CPU kernel (TORCH_LIBRARY_FRAGMENT + TORCH_LIBRARY_IMPL at its bottom);
// csrc/cuda_ops.cpp adds the CUDA kernels under the same names when built with EMOLLM_WITH_CUDA.
// This file owns the namespace and exposes build facts to Python. Inputs are detached in the
// kernels' registrations: they call ATen (mm_out) from OpenMP workers, where no autograd guard
// reaches; the gradients are registered on the emollm:: ops in Python.
#include <pybind11/pybind11.h>
#include <torch/library.h>

#include "cpu/common.h"

TORCH_LIBRARY(emollm_C, m) {}

PYBIND11_MODULE(_C, m) {
  m.doc() = "emollm compiled kernels; the ops live in torch.ops.emollm_C";
#ifdef EMOLLM_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  m.def("tile_rows", &emollm::cpu::tile_rows, "rows per Gram tile for a sample of n tokens");
  m.def(
      "profile",
      [](bool reset) {
        pybind11::dict out;
        for (const auto& [name, seconds] : emollm::cpu::phase_seconds(reset)) out[name] = seconds;
        return out;
      },
      pybind11::arg("reset") = true,
      "CPU seconds per phase of the CPU kernels since the last reset, summed over threads; counted "
      "only when EMOLLM_CPU_PROFILE=1 was set before the first kernel ran (docs/cpu-profile.md)");
}
