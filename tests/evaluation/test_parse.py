"""parse_answer against hand-written tables: every row is an answer a model could give and the
label a reader would read from it (or None)."""

import pytest

from emollm.evaluation import parse_answer
from emollm.evaluation.lexicon import BROADER, CONCEPTS, TRAIT_FORMS

# Label sets as the source converters write them (lower case), typed here from the datasets' papers.
MELD = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
CAER_S = ["anger", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
EMOTION6 = ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]
EMOTIC = ["affection", "anger", "annoyance", "anticipation", "aversion", "confidence", "disapproval",
          "disconnection", "disquietment", "doubt/confusion", "embarrassment", "engagement", "esteem", "excitement",
          "fatigue", "fear", "happiness", "pain", "peace", "pleasure", "sadness", "sensitivity", "suffering",
          "surprise", "sympathy", "yearning"]
MINTREC = ["complain", "praise", "apologise", "thank", "criticize", "agree", "taunt", "flaunt", "joke", "oppose",
           "comfort", "care", "inform", "advise", "arrange", "introduce", "leave", "prevent", "greet", "ask for help"]
YN = ["yes", "no"]

CLOSED_MELD = [
    ("joy", "joy"),
    ("Joy.", "joy"),
    ("JOY", "joy"),
    ("The emotion is surprise.", "surprise"),
    ("The man looks happy.", "joy"),
    ("She seems glad and cheerful", "joy"),
    ("happiness", "joy"),
    ("He is furious", "anger"),
    ("angry", "anger"),
    ("mad", "anger"),
    ("scared", "fear"),
    ("The child is afraid of the dog", "fear"),
    ("unhappy", "sadness"),
    ("sad", "sadness"),
    ("disgusted", "disgust"),
    ("shocked", "surprise"),
    ("calm", "neutral"),
    ("The speaker shows no emotion.", "neutral"),
    ("fear, then joy", "fear"),  # the first label named
    ("joy or fear", "joy"),
    ("He enjoys it", None),  # "joy" inside "enjoys" is no mention
    ("madness", None),
    ("a nomad", None),  # "mad" ends "nomad": no mention either
    ("killjoy", None),
    ("fearless", None),
    ("sadistic", None),
    ("", None),
    ("I cannot tell.", None),
    ("annoyed", None),  # a fine emotion outside a closed set is not mapped (open set does)
    ("excited", None),
    ("contempt", None),
]

NEGATION = [
    ("not happy", None),
    ("She is not happy", None),
    ("She is not happy but sad", "sadness"),
    ("not angry, rather surprised", "surprise"),
    ("He isn't angry; he is afraid", "fear"),
    ("He doesn't look angry. He looks sad.", "sadness"),
    ("Neither happy nor sad: neutral", "neutral"),
    ("without fear and full of joy", "joy"),  # "joy" is four words after "without", outside the window
    ("never scared", None),
    ("no, she is happy", "joy"),  # the comma ends the clause of "no"
    ("not very happy", None),
    ("It is not fear but surprise", "surprise"),
]

ANSWER_MARKER = [
    ("The person first seems angry, then relaxes. The answer is joy.", "joy"),
    ("Reasoning: the frown suggests sadness. Answer: anger", "anger"),
    ("Looking at the face... Final answer: surprise", "surprise"),
    ("She looks sad. Answer: hard to say", "sadness"),  # nothing after the marker: the whole text
    ("Answer: not anger", None),
]

CAER = [
    ("happy", "happy"),
    ("joy", "happy"),  # another source's name for the same emotion
    ("The woman is joyful", "happy"),
    ("sadness", "sad"),
    ("sorrowful", "sad"),
    ("anger", "anger"),
    ("Angry", "anger"),
]

EMOTIC_CLOSED = [
    ("doubt/confusion", "doubt/confusion"),
    ("Doubt/Confusion", "doubt/confusion"),
    ("doubt", "doubt/confusion"),
    ("He looks confused", "doubt/confusion"),
    ("uncertain", "doubt/confusion"),
    ("happy", "happiness"),
    ("joy", "happiness"),
    ("annoyed", "annoyance"),  # Emotic has annoyance: no collapse to anger
    ("furious", "anger"),
    ("peaceful", "peace"),
    ("calm", "peace"),  # Emotic has no neutral
    ("relaxed and at ease", "peace"),
    ("tired", "fatigue"),
    ("in pain", "pain"),
    ("worried", "disquietment"),
    ("excited", "excitement"),
    ("pleased", "pleasure"),
    ("sympathetic", "sympathy"),
    ("longing", "yearning"),
    ("embarrassed", "embarrassment"),
    ("self-confident", "confidence"),
    ("bored", "disconnection"),
    ("neutral", None),
]

INTENT = [
    ("ask for help", "ask for help"),
    ("Ask  for\nhelp", "ask for help"),
    ("The speaker is asking for help.", "ask for help"),
    ("apologise", "apologise"),
    ("apologize", "apologise"),
    ("He apologizes to her", "apologise"),
    ("thanks", "thank"),
    ("thank", "thank"),
    ("She is greeting her friend", "greet"),
    ("criticise", "criticize"),
    ("the intent is to praise", "praise"),
    ("showing off", "flaunt"),
    ("joking", "joke"),
    ("disagree", "oppose"),
    ("a suggestion", "advise"),
    ("goodbye", "leave"),
    ("care", "care"),
    ("I don't know", None),
]

OPEN_SET = [
    (MELD, "annoyed", "anger"),
    (MELD, "I think she is annoyed.", "anger"),
    (MELD, "excited", "joy"),
    (MELD, "worried", "fear"),
    (MELD, "miserable", "sadness"),
    (MELD, "contemptuous", "disgust"),
    (MELD, "She looks peaceful", "neutral"),
    (MELD, "happy", "joy"),
    (MELD, "not annoyed", None),
    (MELD, "hungry", None),
    (EMOTIC, "annoyed", "annoyance"),  # the finer label when the set has it
    (EMOTIC, "irritated", "annoyance"),
    (EMOTIC, "neutral", None),
    (CAER_S, "thrilled", "happy"),
]

YES_NO = [
    ("sarcasm", "Yes", "yes"),
    ("sarcasm", "yes.", "yes"),
    ("sarcasm", "No", "no"),
    ("sarcasm", "no, it is not", "no"),
    ("sarcasm", "Yeah", "yes"),
    ("sarcasm", "Nope", "no"),
    ("sarcasm", "It is sarcastic.", "yes"),
    ("sarcasm", "The tweet is clearly sarcastic", "yes"),
    ("sarcasm", "It is not sarcastic", "no"),
    ("sarcasm", "This isn't sarcasm", "no"),
    ("sarcasm", "non-sarcastic", "no"),
    ("sarcasm", "There is no sarcasm here", "no"),
    ("sarcasm", "ironic", "yes"),
    ("sarcasm", "Yes or no? Yes", "yes"),  # the echoed question is skipped
    ("sarcasm", "yes/no: no", "no"),
    ("sarcasm", "Answer: yes", "yes"),
    ("sarcasm", "maybe", None),
    ("sarcasm", "I think so", None),
    ("sarcasm", "", None),
    ("sarcasm", "yesterday", None),
    ("sarcasm", "look at the eyes", None),
    ("sarcasm", "nobody knows", None),
    ("sarcasm", "funny", None),  # another task's trait
    ("humor", "funny", "yes"),
    ("humor", "The clip is humorous", "yes"),
    ("humor", "I don't find it funny", "no"),
    ("humor", "nothing funny about it", "no"),
    ("humor", "sarcastic", None),
    ("hate", "This meme is hateful", "yes"),
    ("hate", "It contains hate speech.", "yes"),
    ("hate", "It is racist", "yes"),
    ("hate", "not hateful", "no"),
    ("hate", "No hate here", "no"),
    ("hate", "The image shows a cat", None),
]


@pytest.mark.parametrize(("answer", "want"), CLOSED_MELD + NEGATION + ANSWER_MARKER)
def test_closed_set_meld(answer, want):
    assert parse_answer(answer, "emo-c", MELD) == want


@pytest.mark.parametrize(("answer", "want"), CAER)
def test_closed_set_caer_s_names(answer, want):
    assert parse_answer(answer, "emo-c", CAER_S) == want


@pytest.mark.parametrize(("answer", "want"), EMOTIC_CLOSED)
def test_closed_set_emotic(answer, want):
    assert parse_answer(answer, "emo-c", EMOTIC) == want


@pytest.mark.parametrize(("answer", "want"), INTENT)
def test_intent(answer, want):
    assert parse_answer(answer, "intent", MINTREC) == want


@pytest.mark.parametrize(("labels", "answer", "want"), OPEN_SET)
def test_open_set(labels, answer, want):
    assert parse_answer(answer, "emo-o", labels) == want


@pytest.mark.parametrize(("task", "answer", "want"), YES_NO)
def test_yes_no(task, answer, want):
    assert parse_answer(answer, task, YN) == want


def test_returns_the_label_as_spelled_in_the_set():
    assert parse_answer("happy", "emo-c", ["Anger", "Joy"]) == "Joy"
    assert parse_answer("YES", "hate", ["No", "Yes"]) == "Yes"


def test_label_name_beats_synonym_and_shared_synonyms_name_nothing():
    # "happy" and "joy" both stand for one concept: their own names still work, the synonyms do not.
    labels = ["happy", "joy", "sad"]
    assert parse_answer("happy", "emo-c", labels) == "happy"
    assert parse_answer("joy", "emo-c", labels) == "joy"
    assert parse_answer("glad", "emo-c", labels) is None
    assert parse_answer("unhappy", "emo-c", labels) == "sad"


@pytest.mark.parametrize(("name", "labels"), [("meld", MELD), ("caer-s", CAER_S), ("emotion6", EMOTION6),
                                              ("emotic", EMOTIC), ("mintrec", MINTREC)])
@pytest.mark.parametrize("task", ["emo-c", "emo-o", "intent"])
def test_every_label_parses_to_itself(name, labels, task):
    for label in labels:
        for answer in (label, label.upper(), f"The answer is {label}.", f"I would say: {label}"):
            assert parse_answer(answer, task, labels) == label, (name, answer)


def test_converter_label_sets_parse_to_themselves():
    # The label sets the converters really write (any source the data helper adds is covered).
    sources = pytest.importorskip("emollm.data.sources")
    for name in sources.SOURCES:
        for task, labels in sources.get_source(name).LABELS.items():
            for label in labels:
                assert parse_answer(f"It is {label}.", task, labels) == label, (name, task, label)


@pytest.mark.parametrize("concept", sorted(CONCEPTS))
def test_every_lexicon_form_names_its_concept(concept):
    labels = [concept, "zzz-other"]
    for form in CONCEPTS[concept]:
        assert parse_answer(f"I think: {form}.", "emo-c", labels) == concept, form


@pytest.mark.parametrize(("fine", "broad"), sorted(BROADER.items()))
def test_broader_only_in_open_set(fine, broad):
    labels = [broad, "zzz-other"]
    assert parse_answer(fine, "emo-o", labels) == broad
    assert parse_answer(fine, "emo-c", labels) is None


@pytest.mark.parametrize("task", sorted(TRAIT_FORMS))
def test_every_trait_form(task):
    for form in TRAIT_FORMS[task]:
        assert parse_answer(f"It is {form}.", task, YN) == "yes", form
        assert parse_answer(f"It is not {form}.", task, YN) == "no", form


@pytest.mark.parametrize(("args", "error", "match"), [
    ((None, "emo-c", MELD), TypeError, "answer must be a string"),
    (("joy", "emotion", MELD), ValueError, "task must be one of"),
    (("joy", "emo-c", "joy"), TypeError, "label_set must be a sequence"),
    (("joy", "emo-c", []), ValueError, "label_set must hold non-empty"),
    (("joy", "emo-c", ["joy", ""]), ValueError, "label_set must hold non-empty"),
    (("joy", "emo-c", ["joy", 3]), ValueError, "label_set must hold non-empty"),
    (("joy", "emo-c", ["joy", "Joy"]), ValueError, "differ only in case"),
    (("yes", "sarcasm", ["true", "false"]), ValueError, "must be \\['yes', 'no'\\]"),
])
def test_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        parse_answer(*args)
