"""Turn a pytest-benchmark JSON into ``benchmarks/results/<device>.json``, a table and a plot.

    python -m pytest benchmarks --benchmark-json /tmp/bench.json
    python benchmarks/report.py /tmp/bench.json [--out-dir benchmarks/results]

Per group (one op at one shape) and provider: the median time, ``speedup_vs_chat_univi`` (the
peer baseline's median / this median: the "≥ 4× faster" targets of
docs/design.md#performance-targets), ``speedup_vs_reference`` and ``time_vs_bmm`` (this median /
bmm median: the "≤ 1.5× one bmm" targets), plus the benchmark's extra_info. Medians, because on
a shared 2-core machine a few rounds are slowed by other work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _machine when run as a script
from _machine import describe, file_safe

RESULTS = Path(__file__).resolve().parent / "results"


def summarize(raw: dict) -> dict:
    """``{group: {provider: {...}}}`` from pytest-benchmark's ``benchmarks`` list."""
    groups: dict[str, dict[str, dict]] = {}
    for bench in raw["benchmarks"]:
        info = dict(bench.get("extra_info", {}))
        provider = info.pop("provider", None) or bench.get("params", {}).get("provider") or bench["name"]
        groups.setdefault(bench["group"] or bench["name"], {})[provider] = {
            "median_ms": bench["stats"]["median"] * 1e3,
            "rounds": bench["stats"]["rounds"],
            "extra_info": info,
        }
    for rows in groups.values():
        peer = rows.get("chat-univi", {}).get("median_ms")
        ref = rows.get("reference", {}).get("median_ms")
        floor = rows.get("bmm", {}).get("median_ms")
        for row in rows.values():
            row["speedup_vs_chat_univi"] = peer / row["median_ms"] if peer else None
            row["speedup_vs_reference"] = ref / row["median_ms"] if ref else None
            row["time_vs_bmm"] = row["median_ms"] / floor if floor else None
    return groups


def provenance(raw: dict) -> dict:
    """Device, commit and versions: as recorded at measurement time, else from this machine."""
    here = raw.get("machine_info", {}).get("emollm") or describe()
    commit = raw.get("commit_info", {})
    return {
        **here,
        # pytest-benchmark records the commit when it measures; prefer that over HEAD now.
        "commit": {"id": commit["id"], "dirty": commit.get("dirty")} if commit.get("id") else here["commit"],
        "date": raw.get("datetime") or datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _write_whole(path: Path, text: str) -> None:
    """The file appears whole or not at all: a temporary sibling, then a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def table(groups: dict) -> str:
    lines = []
    for group, rows in groups.items():
        lines += ["", group, f"  {'provider':<16}{'median ms':>12}{'vs chat-univi':>14}{'× bmm':>8}{'extra MB':>10}"]
        for provider, row in sorted(rows.items(), key=lambda kv: kv[1]["median_ms"]):
            mb = row["extra_info"].get("extra_peak_mb")
            speedup = row["speedup_vs_chat_univi"] or row["speedup_vs_reference"]
            lines.append(
                f"  {provider:<16}{row['median_ms']:>12.2f}"
                f"{_fmt(speedup, '.2f') + '×':>14}"
                f"{_fmt(row['time_vs_bmm'], '.2f'):>8}{_fmt(mb, '.0f'):>10}"
            )
    return "\n".join(lines)


def plot(groups: dict, title: str, path: Path) -> bool:
    """One horizontal bar chart per group; False (and a message) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on CI or servers
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 1.1 + 1.0 * sum(len(r) for r in groups.values())),
                             squeeze=False, layout="constrained")
    for ax, (group, rows) in zip(axes[:, 0], groups.items(), strict=True):
        names = sorted(rows, key=lambda p: -rows[p]["median_ms"])  # slowest on top
        times = [rows[p]["median_ms"] for p in names]
        colors = ["tab:gray" if p in ("chat-univi", "reference", "bmm") else "tab:blue" for p in names]
        ax.barh(names, times, color=colors)
        for y, p in enumerate(names):
            speedup, vs_bmm = rows[p]["speedup_vs_chat_univi"], rows[p]["time_vs_bmm"]
            notes = [f"{speedup:.1f}× faster than Chat-UniVi"] if speedup and p != "chat-univi" else []
            notes += [f"{vs_bmm:.2f}× bmm time"] if vs_bmm and p != "bmm" else []
            mb = rows[p]["extra_info"].get("extra_peak_mb")
            notes += [f"+{mb:.0f} MB peak"] if mb is not None else []
            label = f" {times[y]:.1f} ms" + (f"  ({', '.join(notes)})" if notes else "")
            ax.text(times[y], y, label, va="center", fontsize=8)
        ax.set_title(group, fontsize=9, loc="left")
        ax.set_xlim(0, max(times) * 1.7)  # room for the labels
        ax.tick_params(labelsize=8)
    axes[-1, 0].set_xlabel("median time (ms)")
    fig.suptitle(title, fontsize=9)
    tmp = path.with_name(f".{path.name}.tmp.png")  # whole or not at all, as the JSON
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", type=Path, help="output of pytest --benchmark-json")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    raw = json.loads(args.json.read_text())
    if not raw.get("benchmarks"):
        print(f"{args.json}: no benchmarks in it (all skipped or deselected?)", file=sys.stderr)
        return 1
    groups = summarize(raw)
    meta = provenance(raw)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    # Not Path.with_suffix: CPU names such as "... @ 2.20GHz" keep a dot in the safe name.
    out_json, out_png = (args.out_dir / f"{file_safe(meta['device'])}.{ext}" for ext in ("json", "png"))
    _write_whole(out_json, json.dumps({**meta, "groups": groups}, indent=2) + "\n")

    commit = meta["commit"]["id"][:10] + ("+dirty" if meta["commit"]["dirty"] else "")
    title = " · ".join([meta["device"], f"torch {meta['torch']}", f"{meta['torch_threads']} threads", commit,
                        meta["date"][:10]])
    print(title + table(groups))
    print(f"\nwrote {out_json}")
    if plot(groups, title, out_png):
        print(f"wrote {out_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
