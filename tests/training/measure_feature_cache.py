"""Measures the training step of emollm-tiny on CPU with and without the feature cache.

    python tests/training/measure_feature_cache.py [--records 320] [--steps 30] [--batch-size 8]

Builds a synthetic EmoBench, fills a feature cache, then times whole training steps (load the
media or read the cache, collate, forward, backward, AdamW) in steady state, the two kinds
alternating in blocks so that machine load hits both alike; prints the medians (not a test).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from emollm.data.collator import EmoBenchCollator
from emollm.data.dataset import EmoBenchDataset
from emollm.data.synth import write_synthetic
from emollm.model import from_named
from emollm.training.cached_data import CachedFeatureCollator, CachedFeatureDataset, open_feature_cache


def _step(model, optimizer, dataset, collator, indices) -> tuple[float, float]:
    t0 = time.perf_counter()
    batch = collator([dataset[i] for i in indices])
    t1 = time.perf_counter()
    model(**batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=320)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = write_synthetic(Path(tmp) / "synth", n_train=args.records, n_test=1, seed=0)["train"]
        model, processor = from_named("emollm-tiny")
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        plain = EmoBenchDataset(data)
        t0 = time.perf_counter()
        cache, digests = open_feature_cache(Path(tmp) / "cache", model, processor, [(plain.records, plain.base_dir)],
                                            fps=1.0, max_frames=64)
        fill = time.perf_counter() - t0
        kinds = {"media": (plain, EmoBenchCollator(processor)),
                 "cache": (CachedFeatureDataset(plain, cache, digests), CachedFeatureCollator(processor))}
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
        batches = args.records // args.batch_size
        for block in range(-1, args.steps // 5):  # block -1: warm-up, not counted
            for kind, (dataset, collator) in kinds.items():
                for j in range(5):
                    start = ((block + 1) * 5 + j) % batches * args.batch_size
                    t = _step(model, optimizer, dataset, collator, range(start, start + args.batch_size))
                    if block >= 0:
                        times[kind].append(t)
    print(f"emollm-tiny, batch {args.batch_size}, {torch.get_num_threads()} threads; cache filled in {fill:.1f} s "
          f"for {args.records} records")
    for kind, ts in times.items():
        data_ms, compute_ms = (1e3 * statistics.median(t[i] for t in ts) for i in (0, 1))
        total = 1e3 * statistics.median(a + b for a, b in ts)
        print(f"{kind}: step {total:.1f} ms (data {data_ms:.1f} ms, forward+backward+AdamW {compute_ms:.1f} ms)")
    ratio = statistics.median(a + b for a, b in times["media"]) / statistics.median(a + b for a, b in times["cache"])
    print(f"speed-up {ratio:.2f}x")


if __name__ == "__main__":
    main()
