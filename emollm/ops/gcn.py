"""``gcn_adjacency`` and ``gcn_propagate``: the τ-graph over cluster centers and its normalized
propagation ``D^-1/2 Â D^-1/2 h`` (paper eqs. 4-6)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from emollm.ops import _backend, _checks

_backend.define(_backend.OpContract("gcn_adjacency", tokens="z", mask="mask"))
# Checked for NaN/Inf on every backend: they would spread a NaN to different nodes.
_backend.define(_backend.OpContract("gcn_propagate", tokens="h"))


class GCNGraph(NamedTuple):
    """Compact normalized graph from :func:`gcn_adjacency`.

    Attributes:
        bits: ``[B,C,ceil(C/64)]`` int64; bit ``j % 64`` of word ``j // 64`` in row i is
            ``Â_ij`` (self-loops included, padded nodes have no bits).
        dinv: ``[B,C]`` float32, ``deg(Â)^-1/2`` (0 for padded nodes).
    """

    bits: Tensor
    dinv: Tensor

    @property
    def num_nodes(self) -> int:
        return self.dinv.shape[-1]

    def dense(self) -> Tensor:
        """``D^-1/2 Â D^-1/2`` as a dense float32 ``[B,C,C]`` (for inspection and plots)."""
        a_hat = unpack_bits(self.bits, self.num_nodes).float()
        return self.dinv[..., :, None] * a_hat * self.dinv[..., None, :]


def unpack_bits(bits: Tensor, num_nodes: int) -> Tensor:
    """``Â`` as a bool ``[..., C, C]`` from the bitmask ``[..., C, ceil(C/64)]``."""
    shifts = torch.arange(64, device=bits.device)
    return ((bits[..., None] >> shifts) & 1).flatten(-2)[..., :num_nodes].bool()


@torch.library.custom_op("emollm::gcn_adjacency", mutates_args=())
def _gcn_adjacency(z: Tensor, tau: float, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    # The graph depends on distance ratios only: a sample of subnormal or huge nodes is scaled by a
    # power of two (exact) so that its nodes neither underflow to one point nor overflow.
    acc = torch.float64 if z.dtype == torch.float64 else torch.float32
    z = _checks.scaled_if_needed(z, mask, acc)
    return _backend.call("gcn_adjacency", z=z, tau=tau, mask=mask)


@_gcn_adjacency.register_fake
def _(z, tau, mask):
    b, c = z.shape[:2]
    return z.new_empty((b, c, (c + 63) // 64), dtype=torch.int64), z.new_empty((b, c), dtype=torch.float32)


def _adjacency_backward(ctx, grad_bits, grad_dinv):
    # The graph is piecewise constant in z (a threshold on distances): its gradient is 0 almost
    # everywhere. Registering it lets z carry gradients from elsewhere (the merge) under autograd.
    return None, None, None


_gcn_adjacency.register_autograd(_adjacency_backward, setup_context=lambda ctx, inputs, output: None)


def _check_graph(bits: Tensor, dinv: Tensor) -> None:
    """What gcn_adjacency guarantees and propagation relies on: ``dinv`` finite and >= 0, and Â
    symmetric (the backward multiplies by the same matrix, as its own transpose). A graph built
    by hand that breaks either would give NaN or a wrong gradient silently. O(B·C²) bits, every
    call (0.3 ms at B=64, C=64: a cache keyed on the tensor's version missed writes through
    ``.numpy()`` or ``.data``, which do not bump it)."""
    if not _checks.data_checks_on(dinv):
        return
    if not bool(torch.isfinite(dinv).all()) or bool((dinv < 0).any()):
        raise ValueError("adj.dinv must be finite and >= 0 (deg^-1/2 of the graph from gcn_adjacency)")
    dense = unpack_bits(bits, dinv.shape[-1])
    if not torch.equal(dense, dense.transpose(-1, -2)):
        raise ValueError("adj.bits is not symmetric: gcn_propagate takes the graph from gcn_adjacency, "
                         "whose edges go both ways")


@torch.library.custom_op("emollm::gcn_propagate", mutates_args=())
def _gcn_propagate(bits: Tensor, dinv: Tensor, h: Tensor) -> Tensor:
    _check_graph(bits, dinv)  # here, not in gcn_propagate: data checks stay out of compiled graphs
    return _backend.call("gcn_propagate", bits=bits, dinv=dinv, h=h)


@_gcn_propagate.register_fake
def _(bits, dinv, h):
    return torch.empty_like(h)


def _propagate_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1])


def _propagate_backward(ctx, grad):
    # Â is symmetric, so the transpose of D^-1/2 Â D^-1/2 is itself.
    bits, dinv = ctx.saved_tensors
    return None, None, torch.ops.emollm.gcn_propagate(bits, dinv, grad.contiguous())


_gcn_propagate.register_autograd(_propagate_backward, setup_context=_propagate_setup)


def gcn_adjacency(z: Tensor, tau: float, *, mask: Tensor | None = None) -> GCNGraph:
    """Threshold graph over nodes z.

    ``d_ij = ||z_i - z_j||₂`` min-max normalized over the sample (``d / max d``; all-equal nodes
    give 0), ``A_ij = 1[d̃_ij <= tau]`` for i != j, ``Â = A + I``.

    Args:
        z: ``[B,C,F]`` or ``[C,F]`` node features (e.g. merged tokens).
        tau: threshold in ``[0, 1]`` (the paper's best is 0.1).
        mask: optional ``[B,C]`` bool, True = real node.

    Returns:
        :class:`GCNGraph` (bitmask + ``deg^-1/2``), unbatched for 2-D z.
    """
    zb, squeeze = _checks.as_batched(z, "z")
    mask = _checks.as_batched_mask(mask, zb, squeeze)
    if isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise TypeError(f"tau must be a float, got {type(tau).__name__}")
    if not 0.0 <= float(tau) <= 1.0:
        raise ValueError(f"tau must lie in [0, 1] (distances are min-max normalized), got {tau}")
    bits, dinv = torch.ops.emollm.gcn_adjacency(zb, float(tau), mask)
    return GCNGraph(bits.squeeze(0), dinv.squeeze(0)) if squeeze else GCNGraph(bits, dinv)


def gcn_propagate(adj: GCNGraph, h: Tensor) -> Tensor:
    """``D^-1/2 Â D^-1/2 h`` for the graph from :func:`gcn_adjacency`; differentiable in h.

    A GCN layer is ``act(gcn_propagate(adj, h) @ W)``.

    Args:
        adj: :class:`GCNGraph` over C nodes.
        h: ``[B,C,F]`` (or ``[C,F]`` with an unbatched graph) node features.

    Returns:
        ``[B,C,F]`` in h's dtype (accumulated in float32, float64 for float64).
    """
    if not isinstance(adj, tuple) or len(adj) != 2:
        raise TypeError("adj must be the GCNGraph returned by gcn_adjacency")
    bits, dinv = adj
    if not isinstance(bits, Tensor) or not isinstance(dinv, Tensor):
        raise TypeError("adj must be the GCNGraph returned by gcn_adjacency (two tensors, bits and dinv)")
    hb, squeeze = _checks.as_batched(h, "h")
    if squeeze:
        bits, dinv = bits.unsqueeze(0), dinv.unsqueeze(0)
    b, c = hb.shape[:2]
    if bits.dtype != torch.int64 or tuple(bits.shape) != (b, c, (c + 63) // 64):
        raise ValueError(f"adj.bits must be int64 of shape {(b, c, (c + 63) // 64)} to match h "
                         f"{tuple(h.shape)}, got {tuple(bits.shape)} {bits.dtype}")
    if tuple(dinv.shape) != (b, c):
        raise ValueError(f"adj.dinv must have shape {(b, c)} to match h {tuple(h.shape)}, got {tuple(dinv.shape)}")
    if not dinv.is_floating_point():
        raise TypeError(f"adj.dinv must be a floating-point tensor, got {dinv.dtype}")
    _checks.same_device(bits, hb, "adj")
    _checks.same_device(dinv, hb, "adj.dinv")
    out = torch.ops.emollm.gcn_propagate(bits, dinv.float(), hb.contiguous())
    return out.squeeze(0) if squeeze else out
