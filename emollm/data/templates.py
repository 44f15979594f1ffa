"""Question templates for EmoBench records, one bank per task, drawn deterministically with a seed.

The paper (§3.2) builds each question as ``Question_base + [LABEL_SET] + <DATA>`` with
``Question_base`` drawn from a pool of phrasings; binary tasks ask for yes or no. The banks here
are our own phrasings, at least 20 per task. Fields a template may use:

- ``{media}``: what the model is shown, "image", "video", "post" (an image with its text) or
  "audio clip" (:func:`media_noun`);
- ``{labels}``: the label set, comma-separated (closed-set tasks ``emo-c`` and ``intent`` only;
  every one of their templates names it).

:func:`pick_template` draws one phrasing from a hash of ``(seed, record id)``, so rebuilding a
file gives the same questions, and changing the seed re-draws all of them.
"""

from __future__ import annotations

import hashlib

from emollm.data.records import TASKS

EMO_C = (
    "Which emotion does the {media} express? Choose one of: {labels}.",
    "Identify the only emotion depicted in the {media} from the following options: {labels}.",
    "From the list {labels}, pick the emotion that best matches the {media}.",
    "What is the main emotion shown in this {media}? Options: {labels}.",
    "Select the emotion conveyed by the {media}. Possible answers: {labels}.",
    "Looking at the {media}, which of these emotions fits best: {labels}?",
    "Classify the emotion in the {media} as one of {labels}.",
    "Which one of the following emotions is present in the {media}: {labels}?",
    "Choose the emotion category that describes the {media}: {labels}. Answer with one label.",
    "Given the options {labels}, what emotion does the {media} convey?",
    "What feeling does the {media} reflect? Reply with one of: {labels}.",
    "Determine the emotion expressed in this {media}. The candidates are {labels}.",
    "Pick exactly one emotion for the {media} from {labels}.",
    "Out of {labels}, which emotion is being displayed in the {media}?",
    "Recognize the emotion of the {media}. Choose from: {labels}.",
    "Which label best names the emotion in the {media}? Labels: {labels}.",
    "Assign the {media} to one emotion category among {labels}.",
    "What emotion would you attribute to the {media}? Answer with one of {labels}.",
    "Read the emotional cues in the {media} and choose one: {labels}.",
    "Considering the whole {media}, which emotion fits: {labels}?",
    "Name the dominant emotion in the {media}, using one word from this list: {labels}.",
    "Emotion options: {labels}. Which one matches the {media}?",
)

EMO_O = (
    "What emotion does the {media} express?",
    "Describe the emotion shown in this {media} in one word.",
    "Which emotion is depicted in the {media}?",
    "What is the main feeling conveyed by the {media}?",
    "Identify the emotion in the {media}. Answer with a single word.",
    "How would you name the emotion present in the {media}?",
    "What emotional state does the {media} show?",
    "Looking at the {media}, what emotion comes through?",
    "Name the dominant emotion of the {media}.",
    "What mood does this {media} convey? Reply with one word.",
    "Recognize the emotion expressed in the {media}.",
    "Which feeling best describes the {media}?",
    "In one word, what emotion is being displayed in the {media}?",
    "What emotion would you attribute to the {media}?",
    "Tell me the emotion that the {media} reflects.",
    "What is the emotional tone of the {media}?",
    "Based on the {media}, what is the person feeling?",
    "Read the emotional cues in the {media}: which emotion is it?",
    "Considering the whole {media}, what emotion is expressed?",
    "Give the single emotion that best fits the {media}.",
    "What kind of emotion does the {media} evoke or show?",
    "Summarize the emotion in the {media} with one word.",
)

INTENT = (
    "What is the speaker's intent in the {media}? Choose one of: {labels}.",
    "Identify the intention expressed in this {media} from the following options: {labels}.",
    "From the list {labels}, pick the intent that best matches the {media}.",
    "Which intention does the {media} convey? Options: {labels}.",
    "Select the intent behind what is said in the {media}. Possible answers: {labels}.",
    "Looking at the {media}, which of these intents fits best: {labels}?",
    "Classify the speaker's intention in the {media} as one of {labels}.",
    "Which one of the following intents is present in the {media}: {labels}?",
    "Choose the intent category that describes the {media}: {labels}. Answer with one label.",
    "Given the options {labels}, what does the speaker intend in the {media}?",
    "What is the speaker trying to do in the {media}? Reply with one of: {labels}.",
    "Determine the intention in this {media}. The candidates are {labels}.",
    "Pick exactly one intent for the {media} from {labels}.",
    "Out of {labels}, which intention is being expressed in the {media}?",
    "Recognize the purpose of the utterance in the {media}. Choose from: {labels}.",
    "Which label best names the intent in the {media}? Labels: {labels}.",
    "Assign the {media} to one intent category among {labels}.",
    "What goal does the speaker pursue in the {media}? Answer with one of {labels}.",
    "Read the verbal and visual cues in the {media} and choose the intent: {labels}.",
    "Intent options: {labels}. Which one matches the {media}?",
    "Considering the whole {media}, which intention fits: {labels}?",
)

HUMOR = (
    "Is the {media} humorous? Answer yes or no.",
    "Does the {media} contain humor? Please answer yes or no.",
    "Would an audience laugh at this {media}? Reply with yes or no.",
    "Is something funny happening in the {media}? Answer yes or no.",
    "Does the {media} make a joke? Answer with yes or no.",
    "Is the {media} meant to be amusing? Yes or no?",
    "Decide whether the {media} is humorous. Answer yes or no.",
    "Does this {media} trigger laughter? Please reply yes or no.",
    "Is there a humorous moment in the {media}? Answer yes or no.",
    "Would you call the {media} funny? Yes or no.",
    "Does the {media} show an attempt at comedy? Answer yes or no.",
    "Is the {media} intended to make people laugh? Reply yes or no.",
    "Answer yes or no: is the {media} funny?",
    "Yes or no: does the {media} contain humor?",
    "Detect humor: is the {media} humorous? Answer yes or no.",
    "Can humor be found in the {media}? Please answer yes or no.",
    "Is the tone of the {media} comic? Answer yes or no.",
    "Does the {media} include a punchline or a funny remark? Yes or no?",
    "Judge whether the {media} is amusing. Reply with yes or no.",
    "Is laughter the expected reaction to the {media}? Answer yes or no.",
    "Does the {media} have a humorous intent? Answer with yes or no.",
)

HATE = (
    "Does the {media} contain hate speech? Answer yes or no.",
    "Is the {media} hateful? Please answer yes or no.",
    "Does this {media} attack a group of people? Reply with yes or no.",
    "Is the {media} offensive towards someone's identity? Answer yes or no.",
    "Does the {media} express hatred? Answer with yes or no.",
    "Is there hateful content in the {media}? Yes or no?",
    "Decide whether the {media} is hate speech. Answer yes or no.",
    "Does this {media} insult people based on race, religion, gender or similar? Please reply yes or no.",
    "Would a moderator flag the {media} as hateful? Answer yes or no.",
    "Is the {media} discriminatory? Yes or no.",
    "Does the {media} promote hostility against a group? Answer yes or no.",
    "Is the message of the {media} hateful? Reply yes or no.",
    "Answer yes or no: is the {media} hate speech?",
    "Yes or no: does the {media} contain hateful content?",
    "Detect hate: is the {media} hateful? Answer yes or no.",
    "Can hate speech be found in the {media}? Please answer yes or no.",
    "Does the {media} demean people for who they are? Answer yes or no.",
    "Is the {media} abusive towards a community? Yes or no?",
    "Judge whether the {media} spreads hate. Reply with yes or no.",
    "Should the {media} be classified as hateful? Answer yes or no.",
    "Does the {media} carry a hateful intent? Answer with yes or no.",
)

SARCASM = (
    "Does the {media} contain sarcasm? Answer yes or no.",
    "Is the {media} sarcastic? Please answer yes or no.",
    "Does this {media} say the opposite of what it means? Reply with yes or no.",
    "Is the {media} ironic in a mocking way? Answer yes or no.",
    "Is sarcasm used in the {media}? Answer with yes or no.",
    "Is the {media} meant sarcastically? Yes or no?",
    "Decide whether the {media} is sarcastic. Answer yes or no.",
    "Does the {media} mock something through irony? Please reply yes or no.",
    "Is there a sarcastic remark in the {media}? Answer yes or no.",
    "Would you call the {media} sarcastic? Yes or no.",
    "Does the {media} use sarcasm to make its point? Answer yes or no.",
    "Is the tone of the {media} sarcastic? Reply yes or no.",
    "Answer yes or no: is the {media} sarcastic?",
    "Yes or no: does the {media} contain sarcasm?",
    "Detect sarcasm: is the {media} sarcastic? Answer yes or no.",
    "Can sarcasm be found in the {media}? Please answer yes or no.",
    "Does the {media} praise something while actually mocking it? Answer yes or no.",
    "Is the {media} insincere praise or mock enthusiasm? Yes or no?",
    "Judge whether the {media} is sarcastic. Reply with yes or no.",
    "Should the {media} be read as sarcasm? Answer yes or no.",
    "Does the {media} carry a sarcastic intent? Answer with yes or no.",
)

TEMPLATES: dict[str, tuple[str, ...]] = {
    "emo-c": EMO_C, "emo-o": EMO_O, "intent": INTENT, "humor": HUMOR, "hate": HATE, "sarcasm": SARCASM,
}
CLOSED_SET_TASKS = ("emo-c", "intent")  # their questions list the label set
YES_NO_TASKS = ("humor", "hate", "sarcasm")


def media_noun(kinds: list[str], has_text: bool) -> str:
    """How the questions name the input: "video" (with or without audio), "post" (an image with
    text), "image", "audio clip", or "text" when there is no media at all."""
    if "video" in kinds:
        return "video"
    if "image" in kinds:
        return "post" if has_text else "image"
    if "audio" in kinds:
        return "audio clip"
    return "text"


def pick_template(task: str, key: str, seed: int = 0) -> str:
    """One phrasing of ``task``'s bank, chosen by a hash of ``(seed, key)``: stable across runs and
    Python versions (unlike ``hash``), independent of the order records are built in."""
    if task not in TEMPLATES:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    bank = TEMPLATES[task]
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
    return bank[int.from_bytes(digest[:8], "big") % len(bank)]


def render_question(task: str, key: str, *, media: list[str], label_set: list[str], has_text: bool = False,
                    seed: int = 0) -> str:
    """The question sentence for one record: a drawn template with ``{media}`` and ``{labels}`` filled.

    ``media``: the media kinds in order (``["video", "audio"]``); ``label_set``: listed in the
    question for closed-set tasks, in the given order.
    """
    if task in CLOSED_SET_TASKS and not label_set:
        raise ValueError(f"label_set must be non-empty for the closed-set task {task!r}")
    template = pick_template(task, key, seed)
    return template.format(media=media_noun(media, has_text), labels=", ".join(label_set))
