"""One prompt format for training, `emollm ask`, `emollm serve` and the chat template."""

import pytest

from emollm.data.dataset import SYSTEM, prompt_text
from emollm.data.records import EmoRecord
from emollm.inference import build_prompt, human_turn
from emollm.model import build_tiny_tokenizer


def test_the_prompt_is_vicuna_v1_with_its_system_prompt():
    assert build_prompt("How does she feel?", ["image"]) == (
        f"{SYSTEM} USER: <image>\nHow does she feel? ASSISTANT:")


@pytest.mark.parametrize("kinds", [[], ["image"], ["video", "audio"], ["image", "audio"]])
def test_ask_prompt_is_the_training_prompt(kinds):
    # An EmoBench record as the builders write it: placeholders on their own lines, then the question.
    turn = human_turn("Which emotion? joy, anger", kinds)
    record = EmoRecord(id="r", task="emo-c", source="s", label_set=["joy", "anger"], answer="joy",
                       media=[{"type": k, "path": f"x.{k}"} for k in kinds],
                       conversations=[{"from": "human", "value": turn}, {"from": "gpt", "value": "joy"}]).validate()
    assert build_prompt("Which emotion? joy, anger", kinds) == prompt_text(record)
    assert build_prompt("Q?", kinds, exemplar="Example.") == prompt_text(
        EmoRecord(**{**record.__dict__, "conversations": [{"from": "human", "value": human_turn("Q?", kinds)},
                                                          {"from": "gpt", "value": "joy"}]}), "Example.")


@pytest.mark.parametrize("kinds", [["image"], ["video"], ["audio"], ["image", "audio"]])
def test_ask_prompt_is_the_chat_template(kinds):
    tokenizer = build_tiny_tokenizer()
    messages = [{"role": "user", "content": [{"type": k} for k in kinds] + [{"type": "text", "text": "Why?"}]}]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == build_prompt("Why?", kinds)


def test_bad_turns_are_refused():
    with pytest.raises(ValueError, match="media kinds"):
        human_turn("Q?", ["picture"])
    with pytest.raises(ValueError, match="empty"):
        human_turn("  ", ["image"])
