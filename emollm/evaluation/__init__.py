"""EmoBench evaluation (paper §5, Table 2): answer parsing, accuracy, reports, the prediction loop.

- :func:`parse_answer` maps a model's free-text answer to a label of the record's label set
  (closed set, open set through a synonym lexicon, yes/no), or ``None``;
- :func:`compute_metrics` gives accuracy, macro- and weighted-F1 (scikit-learn) per task, per source
  and overall, per-class precision and recall, with seeded bootstrap intervals;
- :func:`write_report` writes ``metrics.json``, a Table-2-style ``report.md``, ``accuracy.png`` and a
  confusion matrix per task;
- :func:`predict` answers records with a model (greedy, batched) and writes ``predictions.jsonl``.

``emollm eval`` (:mod:`emollm.evaluation.cli`) runs them in a row.
"""

from emollm.evaluation.metrics import compute_metrics, is_correct, make_prediction, rescore
from emollm.evaluation.parse import parse_answer
from emollm.evaluation.plots import plot_accuracy, plot_confusion
from emollm.evaluation.predict import predict, read_predictions
from emollm.evaluation.report import format_report, write_report

__all__ = ["compute_metrics", "format_report", "is_correct", "make_prediction", "parse_answer", "plot_accuracy",
           "plot_confusion", "predict", "read_predictions", "rescore", "write_report"]

