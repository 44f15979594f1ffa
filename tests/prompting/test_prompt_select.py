import importlib.util
import sys
from collections import Counter

import pytest

from emollm.prompting.select import ExemplarSelector, format_exemplar
from emollm.prompting.store import Exemplar
from tests.prompting.helpers import make_record


def exemplar(id: str, task: str = "emo-c", embedding: list[float] | None = None) -> Exemplar:
    return Exemplar(id=id, task=task, source="src", question=f"question of {id}", label="joy",
                    rationale=f"rationale of {id}", embedding=embedding)


STORE = [exemplar(f"c{i}") for i in range(4)] + [exemplar(f"s{i}", "sarcasm") for i in range(3)]


def test_random_picks_the_query_task_and_never_the_query_itself():
    selector = ExemplarSelector(STORE, "random", seed=1)
    counts = Counter()
    for i in range(60):
        query = make_record("c2" if i == 0 else f"q{i}")  # "c2": the store holds its own exemplar
        (picked,) = selector.select(query)
        assert picked.task == "emo-c"
        assert picked.id != query.id
        counts[picked.id] += 1
    assert set(counts) == {"c0", "c1", "c2", "c3"}  # every candidate gets drawn for some query
    for seed in range(40):  # a draw that ignored the query's id would pick "c1" about once in four
        three = ExemplarSelector(STORE, seed=seed).select(make_record("c1"), k=3)
        assert sorted(e.id for e in three) == ["c0", "c2", "c3"]


def test_random_is_seed_deterministic_per_record():
    queries = [make_record(f"q{i}") for i in range(20)]
    first = [ExemplarSelector(STORE, seed=7).select(q)[0].id for q in queries]
    again = ExemplarSelector(list(reversed(STORE)), seed=7)  # neither store order nor query order matters
    assert [again.select(q)[0].id for q in reversed(queries)] == first[::-1]
    assert [ExemplarSelector(STORE, seed=8).select(q)[0].id for q in queries] != first


def test_too_few_candidates_is_an_error_and_a_missing_task_gives_no_text():
    selector = ExemplarSelector(STORE)
    with pytest.raises(ValueError, match=r"k=3 exemplars asked for task 'sarcasm'.*has 2 other than"):
        selector.select(make_record("s0", task="sarcasm", answer="no"), k=3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        selector.select(make_record("q"), k=0)
    assert selector.exemplar_text(make_record("h", task="humor", answer="no")) is None
    lonely = ExemplarSelector([exemplar("h0", "humor")])
    assert lonely.exemplar_text(make_record("h0", task="humor", answer="no")) is None  # only its own exemplar


# Three metrics, three different orders (checked by hand): for q = (1, 0.2),
#   cosine: a 0.981, b 0.832, c 0.196 -> a, b, c
#   ip:     a 1.0,   b 3.6,   c 0.2   -> b, a, c
#   l2²:    a 0.04,  b 11.84, c 1.64  -> a, c, b
VECTORS = {"a": [1.0, 0.0], "b": [3.0, 3.0], "c": [0.0, 1.0]}
EXPECTED = {"cosine": ["a", "b", "c"], "ip": ["b", "a", "c"], "l2": ["a", "c", "b"]}
HAS_FAISS = importlib.util.find_spec("faiss") is not None
NEAREST = ["nearest-torch",
           pytest.param("nearest", marks=pytest.mark.skipif(not HAS_FAISS, reason="faiss is not installed"))]


@pytest.mark.parametrize("method", NEAREST)
@pytest.mark.parametrize("metric", sorted(EXPECTED))
def test_nearest_orders_by_the_metric(method, metric):
    store = [exemplar(k, embedding=v) for k, v in VECTORS.items()]
    store.append(exemplar("far-task", "sarcasm", [1.0, 0.2]))  # identical to the query, other task
    selector = ExemplarSelector(store, method, metric=metric)
    picked = selector.select(make_record("q"), k=3, query_embedding=[1.0, 0.2])
    assert [e.id for e in picked] == EXPECTED[metric]
    # The query's own exemplar is skipped even when it is the nearest; the rest keep their order.
    own = selector.select(make_record(EXPECTED[metric][0]), k=2, query_embedding=[1.0, 0.2])
    assert [e.id for e in own] == EXPECTED[metric][1:]


@pytest.mark.parametrize("method", NEAREST)
def test_nearest_with_an_embedder(method):
    """Exemplars without a stored embedding and queries without one go through ``embed``."""
    table = {"question of a": [1.0, 0.0], "question of b": [0.0, 1.0], "Which one, q?": [0.2, 0.9]}
    calls = []

    def embed(item):
        calls.append(item.id)
        return table[item.question]

    store = [exemplar("a"), exemplar("b"), exemplar("c", embedding=[0.7, 0.7])]
    selector = ExemplarSelector(store, method, embed=embed)
    assert calls == ["a", "b"]  # c's stored embedding is used as is
    query = make_record("q", question="Which one, q?")
    assert [e.id for e in selector.select(query, k=3)] == ["b", "c", "a"]  # cosine 0.976, 0.857, 0.217
    assert calls[-1] == "q"


def test_nearest_input_errors():
    store = [exemplar("a", embedding=[1.0, 0.0]), exemplar("b")]
    with pytest.raises(ValueError, match="exemplar 'b' has no embedding and no 'embed' function"):
        ExemplarSelector(store, "nearest-torch")
    selector = ExemplarSelector([store[0], exemplar("b", embedding=[0.0, 1.0])], "nearest-torch")
    with pytest.raises(ValueError, match="query_embedding has 3 values but the stored embeddings 2"):
        selector.select(make_record("q"), query_embedding=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="needs query_embedding or an 'embed' function"):
        selector.select(make_record("q"))
    with pytest.raises(ValueError, match="non-finite"):
        selector.select(make_record("q"), query_embedding=[float("inf"), 0.0])
    with pytest.raises(ValueError, match="method must be one of"):
        ExemplarSelector(store, "closest")
    with pytest.raises(ValueError, match="metric must be one of"):
        ExemplarSelector(store, "random", metric="manhattan")


def test_nearest_without_faiss_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    with pytest.raises(ImportError, match=r"pip install 'emollm\[faiss\]'.*nearest-torch"):
        ExemplarSelector([exemplar("a", embedding=[1.0])], "nearest")


def test_format_exemplar_and_exemplar_text():
    e = Exemplar(id="x", task="emo-c", source="s", question="Which emotion does she show?", label="sadness",
                 rationale="Her eyes are wet and her shoulders drop, so she is sad.")
    text = format_exemplar(e)
    q, r, a = (text.index(s) for s in ("Question: Which emotion", "Reasoning: Her eyes", "Answer: sadness"))
    assert q < r < a
    assert "<image>" not in text
    selector = ExemplarSelector([e, exemplar("y")])
    assert selector.exemplar_text(make_record("q")) in (text, format_exemplar(selector.by_task["emo-c"][1]))
    both = selector.exemplar_text(make_record("q"), k=2)
    assert both.count("Question: ") == 2 and "\n\n" in both
