"""Video through the MVP: events from DPC-KNN over frames, then the stages per event (paper §4.3).

Frames of one sample are clustered into ``ceil(T/16)`` events by :func:`emollm.ops.dpc_cluster`
over the frame means (a frame's mean token); events are ordered by their first frame, so the
output keeps time order. Two modes:

- ``"expand"`` (the paper): all raw tokens of an event's frames go through the three stages
  together, so density and distance are measured across the event's frames (eq. 2 "expanded over
  frames"). An event of 16 frames of 256 tokens is 4096 tokens: the fused kernels matter here.
- ``"hierarchical"`` (Chat-UniVi): each frame is first reduced by the first stage alone, then
  the event's per-frame clusters go through all the stages; cheaper for long events.

Samples with different frame counts are padded; ``frame_mask`` marks the real frames. Every
event of every sample runs in one batched projector call, padded with a token mask.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from emollm import ops
from emollm.profiling import nvtx_range

EVENT_K = 3  # neighbours for the frame density; a frame clip is short, as are the later stages


def segment_events(frame_means: Tensor, num_frames: int, frames_per_event: int = 16) -> list[list[int]]:
    """Frames ``[0, num_frames)`` of one sample (``frame_means`` ``[T,D]``) grouped into
    ``ceil(num_frames / frames_per_event)`` events, each a sorted list of frame indices, the
    events ordered by their first frame."""
    num_events = math.ceil(num_frames / frames_per_event)
    if num_events == 1:
        return [list(range(num_frames))]
    _, assign = ops.dpc_cluster(frame_means[:num_frames], num_events, min(EVENT_K, num_frames))
    events = [sorted(torch.nonzero(assign == e).flatten().tolist()) for e in range(num_events)]
    return sorted(events, key=lambda frames: frames[0])


def _pack(groups: list[Tensor], dim: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Token sets of different lengths -> ``([G, L, D] padded, [G, L] mask)``."""
    longest = max(g.shape[0] for g in groups)
    out = like.new_zeros(len(groups), longest, dim)
    mask = torch.zeros(len(groups), longest, dtype=torch.bool, device=like.device)
    for i, g in enumerate(groups):
        out[i, : g.shape[0]] = g
        mask[i, : g.shape[0]] = True
    return out, mask


def forward_video(projector, frames: Tensor, frame_mask: Tensor | None = None, mode: str = "expand",
                  frames_per_event: int = 16) -> tuple[Tensor, Tensor]:
    """``frames`` ``[B,T,N,D]`` (``frame_mask`` ``[B,T]`` bool, True = real frame; real frames
    first) -> ``(tokens [B, E*P, out_dim], mask [B, E*P])`` where P = ``projector.num_tokens``
    and E the largest event count in the batch; sample b's events fill its first ``E_b*P`` slots.
    """
    if mode not in ("expand", "hierarchical"):
        raise ValueError(f"mode must be 'expand' or 'hierarchical', got {mode!r}")
    if frames.dim() != 4:
        raise ValueError(f"frames must be [B,T,N,D], got shape {tuple(frames.shape)}")
    b, t, _, d = frames.shape
    if frames_per_event < 1:
        raise ValueError(f"frames_per_event must be >= 1, got {frames_per_event}")
    if frame_mask is None:
        counts = [t] * b
    else:
        if frame_mask.dtype != torch.bool or tuple(frame_mask.shape) != (b, t):
            raise ValueError(f"frame_mask must be a bool tensor of shape {(b, t)}, got {tuple(frame_mask.shape)} "
                             f"{frame_mask.dtype}")
        counts = frame_mask.sum(1).tolist()
        if any(not bool(frame_mask[i, :c].all()) for i, c in enumerate(counts)):
            raise ValueError("frame_mask must mark each sample's real frames first (a prefix of True)")
        if min(counts) < 1:
            raise ValueError("every sample needs at least one real frame")

    means = frames.float().mean(2)  # [B,T,D]
    with nvtx_range("emollm.mvp.events"):
        events = [segment_events(means[i], counts[i], frames_per_event) for i in range(b)]

    if mode == "expand":
        groups = [frames[i, ev].reshape(-1, d) for i in range(b) for ev in events[i]]
    else:
        c1, k1 = projector.stages[0]
        real = torch.cat([frames[i, : counts[i]] for i in range(b)])  # every real frame
        _, _, per_frame = ops.dpc_cluster_merge(real, c1, k1)  # [sum T_b, C1, D]
        offsets = [sum(counts[:i]) for i in range(b)]
        groups = [per_frame[[offsets[i] + f for f in ev]].reshape(-1, d) for i in range(b) for ev in events[i]]

    tokens, token_mask = _pack(groups, d, frames)
    per_event = projector(tokens, token_mask)  # [sum E_b, P, out_dim]
    p = per_event.shape[1]
    most = max(len(ev) for ev in events)
    out = per_event.new_zeros(b, most * p, per_event.shape[-1])
    mask = torch.zeros(b, most * p, dtype=torch.bool, device=frames.device)
    start = 0
    for i in range(b):
        e = len(events[i])
        out[i, : e * p] = per_event[start : start + e].reshape(e * p, -1)
        mask[i, : e * p] = True
        start += e
    return out, mask
