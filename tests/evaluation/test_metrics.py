import numpy as np
import pytest
from sklearn.metrics import f1_score

from emollm.data.records import EmoRecord
from emollm.evaluation import compute_metrics, is_correct, make_prediction, rescore
from emollm.evaluation.scores import UNPARSEABLE, bootstrap, resample_rng
from tests.evaluation.helpers import MELD, pred


def test_is_correct():
    assert is_correct("joy", "joy")
    assert not is_correct("fear", "joy")
    assert is_correct("pleasure", "peace", ["pleasure", "pain"])
    assert not is_correct(None, "joy", ["joy"])


ACCURACY_KEYS = ("accuracy", "count", "correct", "unparseable", "chance")


def _accuracy_part(group):
    return {key: group[key] for key in ACCURACY_KEYS}


def test_hand_worked_metrics(hand_predictions):
    m = compute_metrics(hand_predictions, resamples=0)
    # emo-c: m1 right, m2 wrong (its stored correct=True is not trusted), e1 right through accept,
    # e2 unparseable -> 2/4; sarcasm 1/2; intent 1/1.
    emo_c = m["tasks"]["emo-c"]
    assert _accuracy_part(emo_c) == {"accuracy": 0.5, "count": 4, "correct": 2, "unparseable": 1,
                                     "chance": pytest.approx((1 / 7 + 1 / 7 + 1 / 4 + 1 / 4) / 4)}
    assert {s: _accuracy_part(g) for s, g in emo_c["sources"].items()} == {
        "emotic": {"accuracy": 0.5, "count": 2, "correct": 1, "unparseable": 1, "chance": 0.25},
        "meld": {"accuracy": 0.5, "count": 2, "correct": 1, "unparseable": 0, "chance": pytest.approx(1 / 7)},
    }
    assert m["tasks"]["sarcasm"]["accuracy"] == 0.5 and m["tasks"]["sarcasm"]["chance"] == 0.5
    assert m["tasks"]["intent"]["accuracy"] == 1.0 and m["tasks"]["intent"]["chance"] == pytest.approx(0.2)
    assert list(m["tasks"]) == ["emo-c", "intent", "sarcasm"]  # the order of records.TASKS
    assert m["overall"] == {"micro": pytest.approx(4 / 7), "macro": pytest.approx((0.5 + 0.5 + 1.0) / 3),
                            "count": 7, "correct": 4, "unparseable": 1,
                            "chance": pytest.approx((2 / 7 + 2 / 4 + 2 / 2 + 1 / 5) / 7)}
    assert m["sources"]["meld"]["accuracy"] == 0.5
    assert m["sources"]["mmsd2"]["correct"] == 1
    assert m["sources"]["mintrec"]["accuracy"] == 1.0
    assert list(m["sources"]) == ["emotic", "meld", "mintrec", "mmsd2"]
    assert m["unparseable"] == [{"id": "e2", "task": "emo-c", "source": "emotic", "output": "no idea | really"}]
    assert "ci" not in emo_c and "bootstrap" not in m


def test_hand_worked_f1_and_per_class_scores(hand_predictions):
    emo_c = compute_metrics(hand_predictions, resamples=0)["tasks"]["emo-c"]
    # Pairs (true, predicted): (joy, joy), (anger, joy), (pleasure, pleasure) -- e1 named an
    # accepted label, so its true label is the one named -- and (pain, unparseable): a miss for pain
    # and no class of its own.
    assert emo_c["classes"] == {
        "anger": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "joy": {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1},
        "pain": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "pleasure": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }
    assert emo_c["macro_f1"] == pytest.approx((2 / 3 + 1) / 4)
    assert emo_c["weighted_f1"] == pytest.approx((2 / 3 + 1) / 4)  # every support is 1
    assert emo_c["confusion"] == {"labels": ["anger", "joy", "pain", "pleasure", UNPARSEABLE],
                                  "matrix": [[0, 1, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0],
                                             [0, 0, 0, 0, 0]]}


def test_f1_is_scikit_learns_weighted_and_macro():
    rng = np.random.default_rng(3)
    labels = ["anger", "joy", "sadness", "fear"]
    answers = [labels[i] for i in rng.integers(0, 4, 60)]
    parsed = [None if rng.random() < 0.1 else labels[i] for i in rng.integers(0, 4, 60)]
    pairs = enumerate(zip(answers, parsed, strict=True))
    preds = [pred(f"r{i}", "emo-c", "meld", labels, a, "x", p) for i, (a, p) in pairs]
    group = compute_metrics(preds, resamples=0)["tasks"]["emo-c"]
    y_pred = [p if p is not None else UNPARSEABLE for p in parsed]
    present = sorted(set(answers) | {p for p in parsed if p is not None})
    assert group["weighted_f1"] == pytest.approx(f1_score(answers, y_pred, labels=present, average="weighted"))
    assert group["macro_f1"] == pytest.approx(f1_score(answers, y_pred, labels=present, average="macro"))
    assert group["accuracy"] == pytest.approx(np.mean([a == p for a, p in zip(answers, parsed, strict=True)]))


def test_bootstrap_intervals_are_seeded_and_hold_the_estimate():
    rng = np.random.default_rng(0)
    preds = [pred(f"r{i}", "emo-c", "meld", MELD, a, "x", a if rng.random() < 0.6 else "fear")
             for i, a in enumerate(MELD[i % 7] for i in range(70))]
    a = compute_metrics(preds, resamples=200, seed=1)
    assert a == compute_metrics(preds, resamples=200, seed=1)  # same seed, same intervals
    assert a["tasks"]["emo-c"]["ci"] != compute_metrics(preds, resamples=200, seed=2)["tasks"]["emo-c"]["ci"]
    assert a["bootstrap"] == {"resamples": 200, "seed": 1, "confidence": 0.95, "method": "percentile"}
    group = a["tasks"]["emo-c"]
    for name in ("accuracy", "macro_f1", "weighted_f1"):
        lo, hi = group["ci"][name]
        assert 0 <= lo < group[name] < hi <= 1, name
        assert hi - lo < 0.4  # 70 answers: a few tens of points wide, not [0, 1]
    lo, hi = a["overall"]["ci"]["micro"]
    assert lo < a["overall"]["micro"] < hi
    assert a["overall"]["ci"]["macro"] == pytest.approx(group["ci"]["accuracy"])  # one task: macro is its accuracy


def test_each_resample_scores_as_scikit_learn_would():
    # The stacked call (many resamples in one precision_recall_fscore_support) must give, per
    # resample, what f1_score gives on that resample alone.
    rng = np.random.default_rng(5)
    labels = ["a", "b", "c"]
    y_true = [labels[i] for i in rng.integers(0, 3, 25)]
    y_pred = [UNPARSEABLE if rng.random() < 0.2 else labels[i] for i in rng.integers(0, 3, 25)]
    out = bootstrap(y_true, y_pred, 7, resample_rng(0, "g"))
    draws = resample_rng(0, "g").integers(0, 25, size=(7, 25))
    for b, idx in enumerate(draws):
        t, p = [y_true[i] for i in idx], [y_pred[i] for i in idx]
        present = sorted((set(t) | set(p)) - {UNPARSEABLE})
        assert out["accuracy"][b] == pytest.approx(np.mean([x == y for x, y in zip(t, p, strict=True)]))
        assert out["macro_f1"][b] == pytest.approx(f1_score(t, p, labels=present, average="macro", zero_division=0))
        assert out["weighted_f1"][b] == pytest.approx(f1_score(t, p, labels=present, average="weighted",
                                                               zero_division=0))


def test_macro_is_not_micro():
    # 9 of 10 right on one task, 0 of 1 on another: micro 9/11, macro (0.9 + 0) / 2.
    preds = [pred(f"a{i}", "emo-c", "meld", MELD, "joy", "joy", "joy" if i < 9 else "fear") for i in range(10)]
    preds.append(pred("h", "hate", "mmhs150k", ["yes", "no"], "yes", "no", "no"))
    m = compute_metrics(preds)
    assert m["overall"]["micro"] == pytest.approx(9 / 11)
    assert m["overall"]["macro"] == pytest.approx(0.45)


def test_make_prediction_parses_and_scores():
    record = EmoRecord(id="r", task="emo-c", source="meld", label_set=MELD, answer="sadness", accept=["fear"],
                       conversations=[{"from": "human", "value": "q"}, {"from": "gpt", "value": "sadness"}])
    p = make_prediction(record, "She looks scared.")
    assert p == {"id": "r", "task": "emo-c", "source": "meld", "label_set": MELD, "answer": "sadness",
                 "accept": ["fear"], "output": "She looks scared.", "parsed": "fear", "correct": True}
    assert make_prediction(record, "no clue")["parsed"] is None
    assert make_prediction(record, "no clue")["correct"] is False


def test_rescore_uses_the_output_not_the_stored_parse():
    stale = pred("x", "emo-c", "meld", MELD, "joy", "The man is glad", None, correct=False)
    fresh = rescore(stale)
    assert fresh["parsed"] == "joy" and fresh["correct"] is True
    assert stale["parsed"] is None  # the input is left alone


@pytest.mark.parametrize(("preds", "error", "match"), [
    ([], ValueError, "empty"),
    ([{"id": "a", "task": "emo-c"}], ValueError, "lacks field"),
    ([pred("a", "feelings", "s", MELD, "joy", "joy", "joy")], ValueError, "unknown task"),
    (["not a dict"], TypeError, "must be a mapping"),
])
def test_bad_predictions(preds, error, match):
    with pytest.raises(error, match=match):
        compute_metrics(preds)


def test_bad_bootstrap_settings():
    one = [pred("a", "emo-c", "meld", MELD, "joy", "joy", "joy")]
    with pytest.raises(ValueError, match="resamples"):
        compute_metrics(one, resamples=-1)
    with pytest.raises(ValueError, match="confidence"):
        compute_metrics(one, confidence=1.0)
