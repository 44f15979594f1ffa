"""Triton kernels, installed as ``emollm.kernels`` (the ``triton`` backend; see issue 3)."""
