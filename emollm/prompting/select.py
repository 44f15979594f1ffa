"""Choosing the exemplar that goes into a query's prompt, and the text that is inserted.

Methods:

- ``random`` (the paper, §4.4): an exemplar of the query's task, drawn with a generator seeded by
  ``(seed, record id)``, so a record gets the same exemplar in every process, epoch and worker
  order; never the exemplar made from the query record itself.
- ``nearest``: the exemplars of the query's task whose embeddings are closest to the query's, by
  exact FAISS search (``IndexFlatIP`` / ``IndexFlatL2``). Needs the ``faiss`` extra
  (``pip install 'emollm[faiss]'``).
- ``nearest-torch``: the same exact search as a matrix product in PyTorch, no extra needed. It
  scores every exemplar of the task per query, O(exemplars × dim): fine for stores of a few
  hundred per task (the paper's size), slow for millions.

Embeddings: each exemplar's stored ``embedding``, or ``embed(exemplar)`` where it has none; the
query's is passed to :meth:`ExemplarSelector.select` or computed as ``embed(record)``. ``embed`` is
any callable from an :class:`~emollm.data.records.EmoRecord` or :class:`Exemplar` (both have
``task``, ``media`` and ``question``) to a 1-D vector, e.g. the mean CLIP patch token of the
first image. Metrics: ``cosine`` (default), ``ip`` (inner product), ``l2``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

from emollm.prompting.store import Exemplar

METHODS = ("random", "nearest", "nearest-torch")
METRICS = ("cosine", "ip", "l2")
Embedder = Callable[[Any], Sequence[float] | torch.Tensor]
FAISS_HINT = ("method='nearest' searches with FAISS, which is not installed: pip install 'emollm[faiss]' "
              "(or use method='nearest-torch', the same exact search in PyTorch, fine for small stores)")


def format_exemplar(exemplar: Exemplar) -> str:
    """The text put before a query's question: the exemplar's question, reasoning and answer."""
    return (f"Here is an example of reasoning step by step, about another sample:\n"
            f"Question: {exemplar.question}\n"
            f"Reasoning: {exemplar.rationale}\n"
            f"Answer: {exemplar.label}\n"
            f"Now reason the same way about this sample.")


def _vector(value: Sequence[float] | torch.Tensor, what: str) -> torch.Tensor:
    v = torch.as_tensor(value, dtype=torch.float32).detach().cpu()
    if v.dim() != 1 or v.numel() == 0:
        raise ValueError(f"{what} must be a non-empty 1-D vector, got shape {tuple(v.shape)}")
    if not torch.isfinite(v).all():
        raise ValueError(f"{what} has non-finite values")
    return v


class _TaskIndex:
    """The embeddings of one task's exemplars, searched exactly."""

    def __init__(self, vectors: torch.Tensor, metric: str, use_faiss: bool):
        self.metric, self.dim = metric, vectors.shape[1]
        self.vectors = self._prepare(vectors)
        self.faiss_index = None
        if use_faiss:
            import faiss

            self.faiss_index = (faiss.IndexFlatL2 if metric == "l2" else faiss.IndexFlatIP)(self.dim)
            self.faiss_index.add(self.vectors.numpy())

    def _prepare(self, v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(v, dim=-1) if self.metric == "cosine" else v.contiguous()

    def search(self, query: torch.Tensor, k: int) -> list[int]:
        """Positions of the ``k`` best exemplars, best first (ties: the lower position in torch)."""
        q = self._prepare(query[None])
        k = min(k, self.vectors.shape[0])
        if self.faiss_index is not None:
            _, idx = self.faiss_index.search(q.numpy(), k)
            return [int(i) for i in idx[0] if i >= 0]
        if self.metric == "l2":
            score = -(self.vectors - q).pow(2).sum(-1)
        else:
            score = self.vectors @ q[0]
        return torch.sort(score, descending=True, stable=True).indices[:k].tolist()


class ExemplarSelector:
    """Picks exemplars of a query's task from a store (see the module docstring for the methods).

    Args:
        exemplars: the store (:func:`~emollm.prompting.store.load_store`).
        method: ``random``, ``nearest`` or ``nearest-torch``.
        seed: the seed of ``random``.
        embed: for the nearest methods: embeds exemplars without a stored embedding and queries
            whose embedding is not passed to :meth:`select`.
        metric: for the nearest methods: ``cosine``, ``ip`` or ``l2``.
    """

    def __init__(self, exemplars: Sequence[Exemplar], method: str = "random", *, seed: int = 0,
                 embed: Embedder | None = None, metric: str = "cosine"):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.method, self.seed, self.embed, self.metric = method, seed, embed, metric
        self.by_task: dict[str, list[Exemplar]] = {}
        for e in sorted(exemplars, key=lambda e: e.id):  # by id: a draw does not depend on the store's line order
            self.by_task.setdefault(e.task, []).append(e)
        self._indexes: dict[str, _TaskIndex] = {}
        if method != "random":
            self._build_indexes(use_faiss=method == "nearest")

    @property
    def tasks(self) -> list[str]:
        """The tasks that have exemplars."""
        return sorted(self.by_task)

    def _build_indexes(self, use_faiss: bool) -> None:
        if use_faiss:
            try:
                import faiss  # noqa: F401
            except ImportError:
                raise ImportError(FAISS_HINT) from None
        dim = None
        for task, group in self.by_task.items():
            rows = []
            for e in group:
                if e.embedding is None and self.embed is None:
                    raise ValueError(f"exemplar {e.id!r} has no embedding and no 'embed' function was given")
                rows.append(_vector(e.embedding if e.embedding is not None else self.embed(e),
                                    f"the embedding of exemplar {e.id!r}"))
                dim = dim or rows[0].numel()
                if rows[-1].numel() != dim:
                    raise ValueError(f"the embedding of exemplar {e.id!r} has {rows[-1].numel()} values, others {dim}")
            self._indexes[task] = _TaskIndex(torch.stack(rows), self.metric, use_faiss)

    def select(self, record: Any, k: int = 1, *, query_embedding: Sequence[float] | torch.Tensor | None = None,
               ) -> list[Exemplar]:
        """``k`` exemplars of ``record.task``, none made from ``record`` itself (same id).

        ``record``: an :class:`~emollm.data.records.EmoRecord` (anything with ``id`` and ``task``;
        for the nearest methods also what ``embed`` reads). ``query_embedding``: the record's
        embedding, when it is already at hand (else ``embed(record)``). Nearest methods return the
        closest first. Raises ``ValueError`` when the task has fewer than ``k`` candidates.
        """
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        group = self.by_task.get(record.task, [])
        n_candidates = sum(e.id != record.id for e in group)
        if n_candidates < k:
            raise ValueError(f"k={k} exemplars asked for task {record.task!r} (record {record.id!r}) but the "
                             f"store has {n_candidates} other than the record itself; tasks stored: {self.tasks}")
        if self.method == "random":
            rng = random.Random(f"{self.seed}:{record.id}")  # str seeds hash with SHA-512: same in every process
            return rng.sample([e for e in group if e.id != record.id], k)
        if query_embedding is None:
            if self.embed is None:
                raise ValueError("nearest selection needs query_embedding or an 'embed' function")
            query_embedding = self.embed(record)
        index = self._indexes[record.task]
        query = _vector(query_embedding, "query_embedding")
        if query.numel() != index.dim:
            raise ValueError(f"query_embedding has {query.numel()} values but the stored embeddings {index.dim}")
        # One more than asked for: the record's own exemplar may be among the nearest.
        picked = [group[i] for i in index.search(query, k + 1) if group[i].id != record.id]
        return picked[:k]

    def exemplar_text(self, record: Any, k: int = 1, **kwargs: Any) -> str | None:
        """The text to insert before ``record``'s question (``k`` exemplars, blank-line separated),
        or None when the store has no exemplar of ``record.task`` other than ``record``'s own (that
        prompt goes without one)."""
        if all(e.id == record.id for e in self.by_task.get(record.task, [])):
            return None
        return "\n\n".join(format_exemplar(e) for e in self.select(record, k, **kwargs))
