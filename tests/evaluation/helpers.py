"""Hand-made predictions for the metric, report and CLI tests."""

MELD = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
EMOTIC4 = ["peace", "pleasure", "pain", "fatigue"]
YN = ["yes", "no"]
INTENTS = ["greet", "leave", "thank", "praise", "joke"]


def pred(id, task, source, label_set, answer, output, parsed, accept=(), correct=None):
    p = {"id": id, "task": task, "source": source, "label_set": list(label_set), "answer": answer,
         "accept": list(accept), "output": output, "parsed": parsed}
    if correct is not None:
        p["correct"] = correct
    return p


def hand_predictions():
    """Seven predictions whose scores are worked out by hand in test_metrics.py."""
    return [
        pred("m1", "emo-c", "meld", MELD, "joy", "happy", "joy"),                       # right
        pred("m2", "emo-c", "meld", MELD, "anger", "joy", "joy", correct=True),         # wrong (stale flag)
        pred("e1", "emo-c", "emotic", EMOTIC4, "peace", "pleased", "pleasure", accept=["pleasure"]),  # right
        pred("e2", "emo-c", "emotic", EMOTIC4, "pain", "no idea | really", None),       # unparseable
        pred("s1", "sarcasm", "mmsd2", YN, "yes", "Yes", "yes"),                         # right
        pred("s2", "sarcasm", "mmsd2", YN, "no", "it is sarcastic", "yes"),              # wrong
        pred("i1", "intent", "mintrec", INTENTS, "greet", "greeting", "greet"),          # right
    ]
