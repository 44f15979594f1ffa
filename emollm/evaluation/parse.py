"""Answer parsing: a model's free-text answer -> a label of the record's label set, or ``None``.

Rules (the same for every model, so that accuracies compare):

- **Closed set** (``emo-c``, ``intent``): the first label named in the answer, matched
  case-insensitively on word boundaries (``"joy"`` is not found in ``"enjoy"``); multi-word labels
  (``"ask for help"``) match across any whitespace; a slash label (``"doubt/confusion"``) is named
  by its full text or by any one part. A label is also named by its synonyms in
  :mod:`emollm.evaluation.lexicon` (``"happy"``, ``"glad"`` -> ``joy``); a label's own name wins
  over another label's synonym, and a word that is a synonym of two labels of the set names neither.
- **Open set** (``emo-o``): the same, and a fine emotion the set lacks maps to its broader one
  (:data:`~emollm.evaluation.lexicon.BROADER`: "annoyed" -> ``anger`` when the set has no
  ``annoyance``). The question gives no list, so any emotion word is an answer to map.
- **Yes/no** (``humor``, ``hate``, ``sarcasm``): the first of an explicit yes/no word (yes, yeah,
  yep, yup / no, nope) or a mention of the task's trait ("it is sarcastic" -> yes, "this is not
  funny" -> no). Nothing else is guessed ("I think so" is unparseable). An echo of the question's
  "yes or no" is ignored.
- **Negation**: a mention preceded in its clause, within three words, by a negator (not, no, never,
  without, nor, neither, hardly, non-, a word ending in n't, ...) does not name its label: "not
  happy" names nothing, so "not happy but sad" is ``sadness`` and "she is not happy" is ``None``
  (a closed-set answer that only rules labels out has not chosen one). Clauses end at
  punctuation and at "but", "rather", "instead", "however", "though", "although".
- **Answer marker**: when the text says "answer:" / "the answer is" / "final answer" (as a
  chain-of-thought answer from EmoPrompt ends), the text after the last marker is parsed first, the
  whole text only if that names nothing.
- ``None`` when nothing is named; it counts as wrong (:mod:`emollm.evaluation.metrics`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from emollm.data.records import TASKS, YES_NO
from emollm.evaluation.lexicon import BROADER, CONCEPTS, NEGATORS, NO_FORMS, TRAIT_FORMS, YES_FORMS

__all__ = ["OPEN_SET_TASKS", "YES_NO_TASKS", "check_label_set", "parse_answer"]

YES_NO_TASKS = ("humor", "hate", "sarcasm")
OPEN_SET_TASKS = ("emo-o",)

_NEGATION_WINDOW = 3  # words before a mention that may negate it
_CLAUSE_BREAK = re.compile(r"[.,;:!?()\[\]\n]|\b(?:but|rather|instead|however|though|although|whereas)\b")
_WORD = re.compile(r"[a-z0-9']+")
_ANSWER_MARKER = re.compile(r"(?<![a-z])(?:(?:final\s+)?answer\s*(?:is\b|:)|final\s+answer\b)")
_QUESTION_ECHO = re.compile(r"(?<![a-z])yes\s*(?:or|/)\s*no(?![a-z])")
_YES, _NO = YES_NO


def _norm(text: str) -> str:
    """Lower case, typographic apostrophes straightened, ``_`` as a space, whitespace collapsed."""
    return " ".join(text.lower().replace("\u2019", "'").replace("_", " ").split())


def _keys(label: str) -> set[str]:
    """The names of a label: its full text and, for a slash label, each part."""
    name = _norm(label)
    return {name} | {part.strip() for part in name.split("/") if part.strip()}


def _form_pattern(form: str) -> str:
    return r"\s+".join(re.escape(word) for word in form.split())


class _Matcher:
    """The forms that name each label of one label set, as one regex (longest form first)."""

    def __init__(self, table: dict[str, tuple[str, bool]]):
        # table: form -> (label, negatable)
        self.table = table
        forms = sorted(table, key=len, reverse=True)
        self.regex = re.compile(r"(?<![a-z0-9])(?:" + "|".join(map(_form_pattern, forms)) + r")(?![a-z0-9])")

    def first(self, text: str, negate_to: str | None = None) -> str | None:
        """The label of the first mention in ``text`` (normalized); a negated mention names
        ``negate_to`` (yes/no: "not sarcastic" -> no) or nothing."""
        for m in self.regex.finditer(text):
            label, negatable = self.table[" ".join(m.group().split())]
            if negatable and _negated(text, m.start()):
                if negate_to is not None:
                    return negate_to
                continue
            return label
        return None


def _negated(text: str, start: int) -> bool:
    """Whether a negator stands within ``_NEGATION_WINDOW`` words before ``start``, in its clause."""
    before = text[:start]
    breaks = list(_CLAUSE_BREAK.finditer(before))
    clause = before[breaks[-1].end():] if breaks else before
    words = _WORD.findall(clause)[-_NEGATION_WINDOW:]
    return any(w in NEGATORS or w.endswith("n't") for w in words)


def _add(candidates: dict[str, dict[int, set[str]]], form: str, priority: int, label: str) -> None:
    candidates.setdefault(_norm(form), {}).setdefault(priority, set()).add(label)


@functools.lru_cache(maxsize=256)
def _label_matcher(labels: tuple[str, ...], open_set: bool) -> _Matcher:
    """Forms for a closed (or open) label set. Priorities: 0 a label's own names, 1 the synonyms of
    the concept a label stands for, 2 (open set) forms of a finer concept the set lacks. A form
    goes to the label of its lowest priority, and to none when that priority names two labels."""
    candidates: dict[str, dict[int, set[str]]] = {}
    for label in labels:
        for key in _keys(label):
            _add(candidates, key, 0, label)
    concept_label: dict[str, str] = {}
    for concept, forms in CONCEPTS.items():
        names = {concept, *forms}
        hits = [label for label in labels if _keys(label) & names]
        if len(hits) == 1:  # two labels standing for one concept: its synonyms would be ambiguous
            concept_label[concept] = hits[0]
            for form in (concept, *forms):
                _add(candidates, form, 1, hits[0])
    if open_set:
        for concept, broader in BROADER.items():
            if concept not in concept_label and broader in concept_label:
                for form in (concept, *CONCEPTS[concept]):
                    _add(candidates, form, 2, concept_label[broader])
    table = {}
    for form, by_priority in candidates.items():
        best = by_priority[min(by_priority)]
        if len(best) == 1:
            table[form] = (next(iter(best)), True)
    return _Matcher(table)


@functools.lru_cache(maxsize=16)
def _yes_no_matcher(task: str, yes: str, no: str) -> _Matcher:
    table = {form: (yes, False) for form in YES_FORMS}
    table.update({form: (no, False) for form in NO_FORMS})
    table.update({form: (yes, True) for form in TRAIT_FORMS[task]})
    return _Matcher(table)


def check_label_set(task: object, label_set: object) -> tuple[str, ...]:
    """``label_set`` as a tuple, if :func:`parse_answer` can parse ``task``'s answers against it;
    else ``ValueError``/``TypeError`` saying why (labels that differ only in case or spacing, a
    yes/no task's set that is not yes and no)."""
    labels = _check("", task, label_set)
    if task in YES_NO_TASKS and sorted(_norm(label) for label in labels) != sorted(YES_NO):
        raise ValueError(f"label_set of the yes/no task {task!r} must be {list(YES_NO)}, got {list(labels)!r}")
    return labels


def _check(answer: object, task: object, label_set: object) -> tuple[str, ...]:
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a string, got {type(answer).__name__}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if isinstance(label_set, str) or not isinstance(label_set, Sequence):
        raise TypeError(f"label_set must be a sequence of label strings, got {type(label_set).__name__}")
    labels = tuple(label_set)
    if not labels or not all(isinstance(label, str) and label.strip() for label in labels):
        raise ValueError(f"label_set must hold non-empty label strings, got {list(labels)!r}")
    if len({_norm(label) for label in labels}) != len(labels):
        raise ValueError(f"label_set has labels that differ only in case or spacing: {list(labels)!r}")
    return labels


def _parse_segment(text: str, task: str, labels: tuple[str, ...]) -> str | None:
    if task in YES_NO_TASKS:
        by_name = {_norm(label): label for label in labels}
        text = _QUESTION_ECHO.sub(" ", text)
        return _yes_no_matcher(task, by_name[_YES], by_name[_NO]).first(text, negate_to=by_name[_NO])
    return _label_matcher(labels, task in OPEN_SET_TASKS).first(text)


def parse_answer(answer: str, task: str, label_set: Sequence[str]) -> str | None:
    """The label of ``label_set`` (as spelled there) that ``answer`` names, or ``None``.

    ``task`` picks the rules (module docstring): closed set, open set (``emo-o``) or yes/no
    (``humor``, ``hate``, ``sarcasm``, whose label set must be yes and no).

    >>> parse_answer("The man looks happy.", "emo-c", ["anger", "joy", "sadness"])
    'joy'
    >>> parse_answer("She is not angry but sad", "emo-c", ["anger", "joy", "sadness"])
    'sadness'
    >>> parse_answer("This is clearly sarcastic.", "sarcasm", ["yes", "no"])
    'yes'
    """
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a string, got {type(answer).__name__}")
    labels = check_label_set(task, label_set)
    text = _norm(answer)
    markers = list(_ANSWER_MARKER.finditer(text))
    if markers:
        found = _parse_segment(text[markers[-1].end():], task, labels)
        if found is not None:
            return found
    return _parse_segment(text, task, labels)
