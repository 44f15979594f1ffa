import pytest

from emollm.data.records import EmoRecord
from emollm.evaluation import compute_metrics, is_correct, make_prediction, rescore
from tests.evaluation.helpers import MELD, pred


def test_is_correct():
    assert is_correct("joy", "joy")
    assert not is_correct("fear", "joy")
    assert is_correct("pleasure", "peace", ["pleasure", "pain"])
    assert not is_correct(None, "joy", ["joy"])


def test_hand_worked_metrics(hand_predictions):
    m = compute_metrics(hand_predictions)
    # emo-c: m1 right, m2 wrong (its stored correct=True is not trusted), e1 right through accept,
    # e2 unparseable -> 2/4; sarcasm 1/2; intent 1/1.
    assert m["tasks"]["emo-c"] == {
        "accuracy": 0.5, "count": 4, "correct": 2, "unparseable": 1,
        "chance": pytest.approx((1 / 7 + 1 / 7 + 1 / 4 + 1 / 4) / 4),
        "sources": {
            "emotic": {"accuracy": 0.5, "count": 2, "correct": 1, "unparseable": 1, "chance": 0.25},
            "meld": {"accuracy": 0.5, "count": 2, "correct": 1, "unparseable": 0, "chance": pytest.approx(1 / 7)},
        },
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
