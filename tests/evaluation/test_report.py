import json

import pytest

from emollm.evaluation import compute_metrics, format_report, write_report
from tests.evaluation.helpers import MELD, pred

matplotlib = pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_writes_the_three_files(hand_predictions, tmp_path):
    metrics = compute_metrics(hand_predictions)
    paths = write_report(metrics, tmp_path / "out", meta={"model": "m-dir"})
    assert set(paths) == {"metrics", "report", "plot"}
    saved = json.loads(paths["metrics"].read_text())
    assert saved["meta"] == {"model": "m-dir"}
    assert saved["overall"]["micro"] == pytest.approx(4 / 7)
    assert saved["tasks"]["emo-c"]["sources"]["emotic"]["unparseable"] == 1

    data = paths["plot"].read_bytes()
    assert data.startswith(PNG_MAGIC)
    image = matplotlib.image.imread(paths["plot"])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert "![accuracy per task, dashed: chance](accuracy.png)" in paths["report"].read_text()


def test_table2_row_and_per_source_rows(hand_predictions):
    text = format_report(compute_metrics(hand_predictions), meta={"model": "m-dir"})
    lines = text.splitlines()
    assert "- model: m-dir" in lines
    header = lines.index("| Emo-C | Emo-O | Intention | Hate | Humor | Sarcasm | Overall |")
    # emo-c 2/4, no emo-o, intent 1/1, no hate, no humor, sarcasm 1/2, overall 4/7 = 57.14 %.
    assert lines[header + 2] == "| 50.00 | – | 100.00 | – | – | 50.00 | 57.14 |"
    assert "the macro accuracy (mean over the 3 tasks present) is 66.67" in text
    assert "| **Emo-C** | 50.00 | 2 / 4 | 1 | 19.64 |" in lines  # chance (2/7 + 2/4) / 4
    assert "| &nbsp;&nbsp;emotic | 50.00 | 1 / 2 | 1 | 25.00 |" in lines
    assert "| &nbsp;&nbsp;meld | 50.00 | 1 / 2 | 0 | 14.29 |" in lines
    assert "| **Overall (micro)** | 57.14 | 4 / 7 | 1 | 28.37 |" in lines  # (2/7 + 2/4 + 2/2 + 1/5) / 7
    assert "| **Overall (macro)** | 66.67 | | | |" in lines
    # The unparseable answer is listed, its pipe escaped so the table keeps its columns.
    assert "| e2 | emo-c | no idea \\| really |" in lines


def test_unparseable_list_is_capped():
    preds = [pred(f"u{i}", "emo-c", "meld", MELD, "joy", f"out {i}\nsecond line\x15", None) for i in range(5)]
    text = format_report(compute_metrics(preds), max_unparseable=2)
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
