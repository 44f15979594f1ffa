"""Triton kernels, installed as ``emollm.kernels``: the ``triton`` backend's kernels.

Each module ``kernels/<op>.py`` holds the kernels of one op and registers its launcher with
``emollm.ops._backend.register(op, "triton")``, taking the op's arguments in the op's order.
``emollm/ops/_triton.py`` declares the backend and imports every module here. They run on CUDA
tensors, and on CPU tensors under ``TRITON_INTERPRET=1`` (set before the first import of triton:
that is how CI checks them without a GPU). How they work: docs/kernels.md.

Importing this package does nothing else: run from the repository root, it is also importable as
a top-level ``kernels`` (transformers probes for a package of that name).
"""
