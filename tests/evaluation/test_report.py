import json

import pytest

from emollm.evaluation import compute_metrics, format_report, write_report
from tests.evaluation.helpers import MELD, pred

matplotlib = pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_writes_the_files(hand_predictions, tmp_path):
    metrics = compute_metrics(hand_predictions, resamples=50)
    paths = write_report(metrics, tmp_path / "out", meta={"model": "m-dir"})
    assert set(paths) == {"metrics", "report", "plot", "confusion-emo-c", "confusion-intent", "confusion-sarcasm"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [  # no temporary file is left behind
        "accuracy.png", "confusion-emo-c.png", "confusion-intent.png", "confusion-sarcasm.png", "metrics.json",
        "report.md"]
    saved = json.loads(paths["metrics"].read_text())
    assert saved["meta"] == {"model": "m-dir"}
    assert saved["overall"]["micro"] == pytest.approx(4 / 7)
    assert saved["tasks"]["emo-c"]["sources"]["emotic"]["unparseable"] == 1

    data = paths["plot"].read_bytes()
    assert data.startswith(PNG_MAGIC)
    image = matplotlib.image.imread(paths["plot"])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    report = paths["report"].read_text()
    assert "![accuracy per task, dashed: chance](accuracy.png)" in report
    assert "![Emo-C confusion matrix (rows: true label, columns: predicted)](confusion-emo-c.png)" in report
    confusion = matplotlib.image.imread(paths["confusion-emo-c"])
    assert confusion.ndim == 3 and min(confusion.shape[:2]) > 300


def test_table2_row_and_per_source_rows(hand_predictions):
    text = format_report(compute_metrics(hand_predictions, resamples=0), meta={"model": "m-dir"})
    lines = text.splitlines()
    assert "- model: m-dir" in lines
    header = lines.index("| | Emo-C | Emo-O | Intention | Hate | Humor | Sarcasm | Overall |")
    # emo-c 2/4, no emo-o, intent 1/1, no hate, no humor, sarcasm 1/2, overall 4/7 = 57.14 %.
    assert lines[header + 2] == "| accuracy | 50.00 | – | 100.00 | – | – | 50.00 | 57.14 |"
    assert "the macro accuracy (mean over the 3 tasks present) is 66.67" in text
    # accuracy, macro-F1, weighted-F1 ((2/3 + 1) / 4 = 41.67), correct / count, unparseable, chance (2/7 + 2/4) / 4
    assert "| **Emo-C** | 50.00 | 41.67 | 41.67 | 2 / 4 | 1 | 19.64 |" in lines
    assert "| &nbsp;&nbsp;emotic | 50.00 | 50.00 | 50.00 | 1 / 2 | 1 | 25.00 |" in lines
    assert "| &nbsp;&nbsp;meld | 50.00 | 33.33 | 33.33 | 1 / 2 | 0 | 14.29 |" in lines
    assert "| **Overall (micro)** | 57.14 | | | 4 / 7 | 1 | 28.37 |" in lines  # (2/7 + 2/4 + 2/2 + 1/5) / 7
    assert "| **Overall (macro)** | 66.67 | | | | | |" in lines
    assert "| mintrec | 100.00 | 100.00 | 100.00 | 1 / 1 | 0 | 20.00 |" in lines  # per source, all its tasks
    assert "| joy | 50.00 | 100.00 | 66.67 | 1 |" in lines  # per class: precision, recall, F1, support
    assert "95% interval" not in text  # no bootstrap, no interval row
    # The unparseable answer is listed, its pipe escaped so the table keeps its columns.
    assert "| e2 | emo-c | no idea \\| really |" in lines


def test_every_accuracy_and_f1_has_its_interval(hand_predictions):
    metrics = compute_metrics(hand_predictions, resamples=100, seed=0)
    lines = format_report(metrics).splitlines()
    interval_row = next(line for line in lines if line.startswith("| 95% interval |"))
    assert interval_row.count("[") == 4  # three tasks present and overall
    emo_c = next(line for line in lines if line.startswith("| **Emo-C** |"))
    lo, hi = metrics["tasks"]["emo-c"]["ci"]["weighted_f1"]
    assert emo_c.count("[") == 3 and f"41.67 [{100 * lo:.1f}, {100 * hi:.1f}]" in emo_c
    assert "Intervals: 95% percentile bootstrap over 100 resamples of each group's answers (seed 0)." in lines[
        lines.index(interval_row) + 4]


def test_unparseable_list_is_capped():
    preds = [pred(f"u{i}", "emo-c", "meld", MELD, "joy", f"out {i}\nsecond line\x15", None) for i in range(5)]
    text = format_report(compute_metrics(preds, resamples=0), max_unparseable=2)
    assert "## Unparseable answers (5)" in text
    assert "The first 2 of 5; all are in metrics.json." in text
    assert "| u1 | emo-c | out 1 second line |" in text  # one line, control character dropped
    assert "u2" not in text
    parsed = [pred("ok", "emo-c", "meld", MELD, "joy", "joy", "joy")]
    assert "None: every answer named a label." in format_report(compute_metrics(parsed))
    with pytest.raises(ValueError, match="max_unparseable"):
        format_report(compute_metrics(preds), max_unparseable=-1)


def test_long_outputs_are_cut():
    text = format_report(compute_metrics([pred("long", "emo-c", "meld", MELD, "joy", "x" * 1000, None)]))
    row = next(line for line in text.splitlines() if line.startswith("| long |"))
    assert len(row) < 260 and row.endswith("… |")
