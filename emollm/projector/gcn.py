"""GCN over the τ-graph of merged tokens (paper eq. 6): ``H' = σ(D^-1/2 Â D^-1/2 H W)``."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from emollm import ops


class GCN(nn.Module):
    """``layers`` graph convolutions, ``in_dim -> out_dim`` then ``out_dim -> out_dim``, GELU
    between layers (not after the last).

    Each layer multiplies by W before propagating: ``Â(HW) = (ÂH)W``, and W usually shrinks
    nothing here, but the bias must come after the propagation (the rows of the normalized Â do
    not sum to 1), so it is kept apart from the Linear.
    """

    def __init__(self, in_dim: int, out_dim: int, layers: int = 2):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        dims = [in_dim] + [out_dim] * layers
        self.weights = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(dims))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(out_dim)) for _ in range(layers))
        self.act = nn.GELU()

    def forward(self, adj: ops.GCNGraph, h: Tensor) -> Tensor:
        """``adj`` over C nodes, ``h`` ``[B,C,in_dim]`` -> ``[B,C,out_dim]``."""
        for i, (linear, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = ops.gcn_propagate(adj, linear(h)) + bias
            if i < len(self.weights) - 1:
                h = self.act(h)
        return h
