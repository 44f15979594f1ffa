"""The MVP projector's settings: one frozen, validated, JSON-friendly record."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any, Literal

__all__ = ["PAPER_STAGES", "MVPConfig", "stage_k"]

PAPER_STAGES: tuple[tuple[int, int], ...] = ((64, 5), (32, 3), (16, 3))
"""The paper's three DPC-KNN stages, ``(num_clusters, k)`` each: 64 + 32 + 16 = 112 tokens."""


def stage_k(num_clusters: int, k: int) -> int:
    """Chat-UniVi's rule for small stages: a k above the cluster count becomes min(3, max(C//2, 1))."""
    return min(3, max(num_clusters // 2, 1)) if k > num_clusters else k


def _is_int(value: Any) -> bool:
    # bool is an Integral too, but True as a cluster count or depth is a mistake, not a 1.
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _stages(stages: Any) -> tuple[tuple[int, int], ...]:
    """``stages`` as given (tuples, or lists from JSON) -> validated ``((C, k), ...)`` of ints,
    each k already through :func:`stage_k`."""
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence):
        raise TypeError(f"stages must be a sequence of (num_clusters, k) pairs, got {stages!r}")
    if not stages:
        raise ValueError("stages must name at least one (num_clusters, k)")
    out = []
    for stage in stages:
        if (isinstance(stage, (str, bytes)) or not isinstance(stage, Sequence) or len(stage) != 2
                or not all(_is_int(v) for v in stage)):
            raise TypeError(f"every stage must be a (num_clusters, k) pair of ints, got {stage!r}")
        c, k = int(stage[0]), int(stage[1])
        if c < 1 or k < 1:
            raise ValueError(f"every stage needs num_clusters >= 1 and k >= 1, got {(c, k)}")
        out.append((c, stage_k(c, k)))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class MVPConfig:
    """Settings of an :class:`~emollm.projector.MVPProjector` (everything but its in/out dims).

    Fields:
        stages: ``(num_clusters, k)`` per cascaded DPC-KNN stage, ints; lists (as JSON gives
            them) are accepted and stored as tuples. A stage whose k exceeds its cluster count is
            stored with the k it runs with (:func:`stage_k`), so the config always describes the
            projector as it runs and two configs that build the same projector compare equal.
        tau: similarity threshold of the relation branch's τ-graph, finite, in [0, 1].
        alpha: weight of the content branch, finite.
        gcn_layers: graph convolutions per stage in the relation branch, >= 1.
        combine: ``"sum"`` (``alpha * content + relation``, ``sum(C_s)`` tokens) or ``"concat"``
            (both side by side, twice as many tokens).

    Invalid values raise ``TypeError`` (wrong type) or ``ValueError`` (out of range) on
    construction. :meth:`to_dict` / :meth:`from_dict` go through JSON unchanged.
    """

    stages: tuple[tuple[int, int], ...] = PAPER_STAGES
    tau: float = 0.1
    alpha: float = 1.0
    gcn_layers: int = 2
    combine: Literal["sum", "concat"] = "sum"

    def __post_init__(self) -> None:
        # Frozen: normalised values go in through object.__setattr__, once, here.
        object.__setattr__(self, "stages", _stages(self.stages))
        if not _is_real(self.tau):
            raise TypeError(f"tau must be a real number, got {self.tau!r}")
        if not 0.0 <= self.tau <= 1.0:  # also rejects nan
            raise ValueError(f"tau must lie in [0, 1], got {self.tau}")
        if not _is_real(self.alpha):
            raise TypeError(f"alpha must be a real number, got {self.alpha!r}")
        if not math.isfinite(self.alpha):
            raise ValueError(f"alpha must be finite, got {self.alpha}")
        if not _is_int(self.gcn_layers):
            raise TypeError(f"gcn_layers must be an int, got {self.gcn_layers!r}")
        if self.gcn_layers < 1:
            raise ValueError(f"gcn_layers must be >= 1, got {self.gcn_layers}")
        if self.combine not in ("sum", "concat"):
            raise ValueError(f"combine must be 'sum' or 'concat', got {self.combine!r}")
        object.__setattr__(self, "tau", float(self.tau))
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "gcn_layers", int(self.gcn_layers))

    @property
    def num_tokens(self) -> int:
        """Output tokens per image (and per video event): ``sum(C_s)``, doubled for ``combine="concat"``."""
        n = sum(c for c, _ in self.stages)
        return 2 * n if self.combine == "concat" else n

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-friendly: ``stages`` as a list of ``[num_clusters, k]`` lists."""
        return {"stages": [[c, k] for c, k in self.stages], "tau": self.tau, "alpha": self.alpha,
                "gcn_layers": self.gcn_layers, "combine": self.combine}

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> MVPConfig:
        """The config of ``settings`` (e.g. :meth:`to_dict`'s output, or an older, partial one):
        missing keys take the defaults; an unknown key is a ``ValueError`` naming it."""
        if not isinstance(settings, Mapping):
            raise TypeError(f"MVP settings must be a mapping, got {type(settings).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(settings) - set(known), key=str)
        if unknown:
            raise ValueError(f"unknown MVPProjector settings {unknown}; known: {', '.join(known)}")
        return cls(**settings)
