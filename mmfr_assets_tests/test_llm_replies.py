"""The one home of reply reading (`mmfr_assets/llm/replies.py`): each reader on the shapes
servers and models really produce, and the callers that used to carry their own copy reading
the same way (judge, sample judge, cleaner, answer extraction, the wire)."""

from __future__ import annotations

import json

import pytest

from mmfr_assets.cleaning.answers import NoAnswerTag, parse_extracted_answer
from mmfr_assets.cleaning.review import Unparseable, parse_review
from mmfr_assets.llm.replies import (
    is_blank, snippet, split_thinking, strip_thinking, tag_contents, unfence, visible_text,
)
from mmfr_assets.llm.wire import parse_completion, unusable_reason
from mmfr_assets.rules.verify.judge import parse_judgment
from mmfr_assets.rules.verify.sample_judge import parse_sample_judgments


@pytest.mark.parametrize("reply, visible", [
    ("<think>a</think>b", "b"),
    ("<think>a</think>b<think>c</think>d", "bd"),
    ("a preamble the server opened</think>\n\nthe answer\n", "\n\nthe answer\n"),  # whitespace kept
    ("<THINK>upper</THINK>x", "x"),
    ("no thinking at all", "no thinking at all"),
    ("", ""),
    (None, ""),
])
def test_visible_text_removes_thinking_and_keeps_the_rest_as_it_was(reply, visible):
    assert visible_text(reply) == visible
    assert strip_thinking(reply) == visible.strip()


def test_split_thinking_is_what_the_client_keeps_apart():
    assert split_thinking("<think>\nsteps\n</think>\n\nAnswer: 3") == ("steps", "Answer: 3")
    assert split_thinking("steps without an opening tag</think>3") == ("steps without an opening tag", "3")
    assert split_thinking("plain") == ("", "plain")


def test_inline_thinking_and_reasoning_content_read_the_same():
    inline = parse_completion(json.dumps({"choices": [{"message": {
        "content": "<think>\nsteps\n</think>\n\nAnswer: 3"}}]}))[0][0]
    separate = parse_completion(json.dumps({"choices": [{"message": {
        "content": "Answer: 3", "reasoning_content": "steps"}}]}))[0][0]
    assert (inline.reasoning, inline.content) == (separate.reasoning, separate.content) == ("steps", "Answer: 3")
    assert inline.think_text() == separate.think_text() == "<think>\nsteps\n</think>\n\nAnswer: 3"


@pytest.mark.parametrize("text, blank", [(None, True), ("", True), (" \n\t", True), ("0", False), (" x ", False)])
def test_is_blank(text, blank):
    assert is_blank(text) is blank


def test_blank_replies_read_as_empty_everywhere():
    assert parse_judgment("  \n").analysis == "empty reply"
    assert parse_sample_judgments(" ", 2).unread == {1: "empty reply", 2: "empty reply"}
    assert parse_sample_judgments("something else", 1).unread == {1: "no JUDGMENT line"}
    blank_choice = parse_completion(json.dumps({"choices": [{"message": {"content": "  "}}]}))[0]
    assert unusable_reason(blank_choice, retry_on_length=True) == "empty content"
    with pytest.raises(NoAnswerTag, match=r"\(empty content\)"):
        parse_extracted_answer("<think>only thinking</think>   ")
    with pytest.raises(Unparseable, match=r"\(empty content\)"):
        parse_review("<think>x</think>")


def test_snippet_is_one_short_line():
    assert snippet("a\n  b\tc") == "a b c"
    assert snippet("x" * 500) == "x" * 160
    assert snippet("  ") == "(empty content)"


def test_the_judges_read_past_thinking():
    assert parse_judgment("<think>JUDGMENT: DIFFERENT</think>Analysis: same\nJUDGMENT: EQUIVALENT").equivalent is True
    assert parse_judgment("JUDGMENT: EQUIVALENT, I first thought</think>JUDGMENT: DIFFERENT").equivalent is False
    read = parse_sample_judgments("<think>JUDGMENT 1: DIFFERENT</think>JUDGMENT 1: EQUIVALENT", 1)
    assert read.verdicts == {1: True}


def test_fences_and_tags():
    assert unfence("prose\n```json\n{\"a\": 1}\n```\nmore") == '{"a": 1}'
    assert unfence("no fence") == "no fence"
    assert tag_contents("<answer>1</answer> and <ANSWER>2</ANSWER>", "answer") == ["1", "2"]
