"""Synonym lexicon: the words a model may use for each label of the EmoBench sources.

A *concept* is a canonical label name (lower-case, as the converters write labels); it lists the
surface forms that name it. A label of a label set stands for a concept when its own name, or one
part of a slash label such as ``"doubt/confusion"`` or ``"happy/joy"``, is the concept or one of its
forms: Emotic's ``"happiness"``, CAER-S's ``"happy"`` and MELD's ``"joy"`` all stand for ``joy``.

:data:`BROADER` maps a fine concept (mostly Emotic's 26 categories) to the coarser one that a
smaller label set uses instead, e.g. ``annoyance -> anger``. It is used for open-set answers only
(see :mod:`emollm.evaluation.parse`): a closed-set question lists its labels, so an answer outside
them is not mapped to a different emotion.

Forms are written out (``"angry"``, ``"angered"``) rather than stemmed: stemming merges words such
as "care"/"career"; a table a reader can check is worth its length. The same form may appear under
two concepts (``"calm"`` is peace and neutral): a label set that holds both is ambiguous for that
form, which then maps to nothing rather than to a guess.
"""

from __future__ import annotations

__all__ = ["BROADER", "CONCEPTS", "NEGATORS", "NO_FORMS", "TRAIT_FORMS", "YES_FORMS"]

# Ekman's six + neutral (CAER-S, MELD, Emotion6) and contempt.
_BASIC: dict[str, tuple[str, ...]] = {
    "anger": ("angry", "angrily", "angered", "mad", "furious", "fury", "rage", "raging", "enraged", "irate",
              "outraged", "outrage", "wrath", "livid"),
    "disgust": ("disgusted", "disgusting", "disgustful", "gross", "grossed out", "revolted", "revolting", "repulsed",
                "repulsive", "revulsion", "nauseated", "sickened"),
    "fear": ("afraid", "scared", "fearful", "frightened", "frightening", "terrified", "terror", "horrified", "panic",
             "panicked", "dread"),
    "joy": ("happy", "happiness", "happily", "joyful", "joyous", "glad", "cheerful", "delighted", "delight", "elated",
            "gleeful", "jubilant", "merry", "overjoyed"),
    "sadness": ("sad", "sadly", "unhappy", "sorrow", "sorrowful", "depressed", "depression", "grief", "grieving",
                "melancholy", "gloomy", "heartbroken", "upset", "downcast", "mournful", "despair", "crying"),
    "surprise": ("surprised", "surprising", "astonished", "astonishment", "amazed", "amazement", "shocked", "shock",
                 "startled", "stunned"),
    "neutral": ("neutrality", "no emotion", "no particular emotion", "no clear emotion", "emotionless",
                "expressionless", "calm", "indifferent", "impassive"),
    "contempt": ("contemptuous", "scorn", "scornful", "disdain", "disdainful"),
}

# Emotic's 26 categories (Kosti et al., 2019) besides the ones above; "doubt/confusion" is two concepts.
_EMOTIC: dict[str, tuple[str, ...]] = {
    "affection": ("affectionate", "love", "loving", "fondness", "tenderness", "adoration", "warmth"),
    "annoyance": ("annoyed", "annoying", "irritated", "irritation", "irritable", "frustrated", "frustration",
                  "bothered", "exasperated", "exasperation"),
    "anticipation": ("anticipating", "anticipatory", "expectant", "expectation", "eager", "eagerness",
                     "looking forward"),
    "aversion": ("averse", "dislike", "disliking", "distaste", "repugnance", "loathing"),
    "confidence": ("confident", "self-confident", "self-assured", "assured", "assurance", "determined"),
    "disapproval": ("disapprove", "disapproving", "disapproves", "disapproved", "disapprovingly"),
    "disconnection": ("disconnected", "detached", "detachment", "uninterested", "disinterested", "bored",
                      "boredom", "indifferent", "aloof", "distracted"),
    "disquietment": ("disquiet", "disquieted", "worried", "worry", "anxious", "anxiety", "nervous", "nervousness",
                     "uneasy", "unease", "tense", "tension", "restless"),
    "doubt": ("doubtful", "doubting", "uncertain", "uncertainty", "unsure", "skeptical", "sceptical", "hesitant",
              "hesitation", "suspicious"),
    "confusion": ("confused", "puzzled", "perplexed", "bewildered", "bewilderment", "baffled"),
    "embarrassment": ("embarrassed", "embarrassing", "ashamed", "shame", "shameful", "shy", "shyness",
                      "humiliated", "humiliation", "awkward", "sheepish"),
    "engagement": ("engaged", "focused", "absorbed", "attentive", "concentrating", "concentration",
                   "immersed", "interested", "involved"),
    "esteem": ("respect", "respectful", "admiration", "admiring", "admire", "appreciation"),
    "excitement": ("excited", "exciting", "thrilled", "thrill", "enthusiastic", "enthusiasm", "exhilarated",
                   "exhilaration", "ecstatic"),
    "fatigue": ("fatigued", "tired", "tiredness", "exhausted", "exhaustion", "weary", "weariness", "sleepy", "drowsy"),
    "pain": ("pained", "painful", "hurt", "hurting", "aching", "ache", "injured"),
    "peace": ("peaceful", "calm", "calmness", "serene", "serenity", "relaxed", "relaxation", "tranquil",
              "tranquility", "at ease"),
    "pleasure": ("pleased", "pleasant", "pleasurable", "enjoyment", "enjoying", "satisfied", "satisfaction",
                 "gratified", "contented", "contentment"),
    "sensitivity": ("sensitive", "vulnerable", "vulnerability", "fragile", "fragility"),
    "suffering": ("suffer", "suffers", "distress", "distressed", "anguish", "anguished", "agony", "misery",
                  "miserable", "tormented"),
    "sympathy": ("sympathetic", "compassion", "compassionate", "empathy", "empathetic", "empathic", "pity"),
    "yearning": ("yearn", "yearns", "longing", "craving", "desire", "desiring", "wistful", "nostalgic",
                 "nostalgia", "homesick"),
}

# MIntRec's 20 intent classes (Zhang et al., 2022); both spellings of -ise/-ize.
_INTENTS: dict[str, tuple[str, ...]] = {
    "complain": ("complaint", "complains", "complaining"),
    "praise": ("praises", "praising", "compliment", "complimenting", "commend", "commending"),
    "apologise": ("apologize", "apologises", "apologizes", "apologising", "apologizing", "apology", "apologetic"),
    "thank": ("thanks", "thanking", "thankful", "gratitude", "grateful", "express gratitude"),
    "criticize": ("criticise", "criticizes", "criticises", "criticizing", "criticising", "criticism", "critique"),
    "care": ("caring", "cares", "show concern", "showing concern", "express concern", "expressing concern"),
    "agree": ("agrees", "agreeing", "agreement", "concur", "consent"),
    "taunt": ("taunts", "taunting", "mock", "mocks", "mocking", "mockery", "ridicule", "ridiculing", "tease",
              "teasing"),
    "flaunt": ("flaunts", "flaunting", "show off", "showing off", "shows off", "boast", "boasting", "brag",
               "bragging"),
    "joke": ("jokes", "joking", "jest", "kidding"),
    "oppose": ("opposes", "opposing", "opposition", "objecting", "disagree", "disagrees", "disagreeing",
               "disagreement", "refuse", "refusing"),
    "comfort": ("comforts", "comforting", "console", "consoling", "reassure", "reassuring", "soothe", "soothing"),
    "inform": ("informs", "informing", "notify", "notifying", "state a fact", "stating a fact"),
    "advise": ("advises", "advising", "advice", "suggest", "suggests", "suggesting", "suggestion", "recommend",
               "recommending", "recommendation"),
    "arrange": ("arranges", "arranging", "arrangement", "organize", "organise", "organizing", "organising",
                "schedule", "scheduling"),
    "introduce": ("introduces", "introducing", "introduction"),
    "leave": ("leaves", "leaving", "goodbye", "farewell", "depart", "departing", "say goodbye", "saying goodbye"),
    "prevent": ("prevents", "preventing", "prevention", "stop someone", "stopping someone", "dissuade",
                "dissuading", "forbid"),
    "greet": ("greets", "greeting", "greetings", "say hello", "saying hello", "welcome", "welcoming"),
    "ask for help": ("asks for help", "asking for help", "ask help", "seek help", "seeks help", "seeking help",
                     "request help", "requests help", "requesting help", "plea for help", "call for help"),
}

CONCEPTS: dict[str, tuple[str, ...]] = {**_BASIC, **_EMOTIC, **_INTENTS}

# Fine concept -> the coarser concept a smaller label set has instead (open-set answers only).
BROADER: dict[str, str] = {
    "annoyance": "anger",
    "aversion": "disgust",
    "contempt": "disgust",
    "disquietment": "fear",
    "excitement": "joy",
    "pleasure": "joy",
    "affection": "joy",
    "suffering": "sadness",
    "pain": "sadness",
    "peace": "neutral",
    "disconnection": "neutral",
}

# Words that negate a mention that follows them in the same clause ("not happy", "isn't sarcastic").
# Words ending in "n't" (isn't, doesn't, ...) negate too, and "non" as in "non-sarcastic".
NEGATORS = frozenset({"not", "no", "never", "without", "nor", "neither", "hardly", "barely", "nothing", "none",
                      "lacks", "lacking", "cannot", "non", "isnt", "doesnt", "dont", "didnt", "wasnt", "arent",
                      "cant", "wont"})

# Yes/no tasks: explicit answers, and the trait each task asks about ("it is sarcastic" -> yes,
# "it is not sarcastic" -> no). Anything else is unparseable.
YES_FORMS = ("yes", "yeah", "yep", "yup")
NO_FORMS = ("no", "nope")
TRAIT_FORMS: dict[str, tuple[str, ...]] = {
    "humor": ("humorous", "humourous", "humor", "humour", "funny", "hilarious", "amusing", "a joke", "joking",
              "comical", "comedic"),
    "hate": ("hateful", "hate speech", "hatred", "hate", "racist", "sexist", "homophobic", "bigoted", "bigotry"),
    "sarcasm": ("sarcastic", "sarcastically", "sarcasm", "ironic", "ironically", "irony"),
}
