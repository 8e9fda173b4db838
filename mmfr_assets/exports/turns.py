"""The chat turns a row is trained as, shared by both export layouts: the training format a
user chooses (`TrainingFormat`: thinking markers, system prompt, caption as context) and the
pure functions that build the user and assistant turns from a row.

Every target ends in `<answer>…</answer>` while most questions do not ask for it, so the
default system prompt states the format; the paper trains without the caption in the prompt,
so caption-as-context is off by default. Both are recorded in the card.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from mmfr_assets.exports.thinking import DEFAULT_THINK_FORMAT, THINK_FORMATS, normalize_thinking, split_think

IMAGE_TOKEN = "<image>"
DEFAULT_SYSTEM_PROMPT = (
    "You are a careful visual reasoning assistant. Think through the problem step by step "
    "inside <think> </think> tags, then give the final answer inside <answer> </answer> tags."
)
CAPTION_HEADER = "Image description:\n"
_PLACEHOLDER = re.compile(r"[ \t]*<image>[ \t]*")


@dataclass(frozen=True)
class TrainingFormat:
    """How rows become chat turns (the `mmfr export` options of the same names)."""

    think_format: str = DEFAULT_THINK_FORMAT
    system_prompt: str = DEFAULT_SYSTEM_PROMPT  # "" sets none
    caption_context: bool = False

    def __post_init__(self) -> None:
        if self.think_format not in THINK_FORMATS:
            raise ValueError(
                f"unknown think format {self.think_format!r}; choose one of {', '.join(THINK_FORMATS)}"
            )


def user_turn(question: str, has_image: bool) -> tuple[str, bool]:
    """The user turn with exactly as many `<image>` placeholders as images (LLaMA-Factory checks
    the count). Published questions often carry the placeholder already, where the dataset put
    it: the first one is kept there; none gets one in front; extra ones become `[image]`.
    Returns the text and whether any placeholder had to be rewritten."""
    if not has_image:
        return question.replace(IMAGE_TOKEN, "[image]"), IMAGE_TOKEN in question
    if IMAGE_TOKEN not in question:
        return IMAGE_TOKEN + question, False
    head, tail = question.split(IMAGE_TOKEN, 1)
    rewritten = IMAGE_TOKEN in tail
    return head + IMAGE_TOKEN + tail.replace(IMAGE_TOKEN, "[image]"), rewritten


def question_without_images(question: str | None) -> str:
    """The question with its `<image>` placeholders removed, for chat templates that place the
    image themselves (a placeholder alone on its line leaves no blank line behind)."""
    if not question:
        return ""
    lines = []
    for line in question.split("\n"):
        if IMAGE_TOKEN not in line:
            lines.append(line)
        elif stripped := _PLACEHOLDER.sub(" ", line).strip():
            lines.append(stripped)
    return "\n".join(lines).strip()


def with_caption(question: str, caption: str | None) -> tuple[str, bool]:
    """The question preceded by the image's caption (caption-as-context), and whether the row
    had a caption to add."""
    if not caption or not caption.strip():
        return question, False
    return f"{CAPTION_HEADER}{caption.strip()}\n\n{question}", True


def assistant_turn(response: str | None, fmt: TrainingFormat) -> tuple[str, bool]:
    """The trace in the chosen thinking markers, and whether it had a think block."""
    return normalize_thinking(response or "", fmt.think_format)


NO_THINK_BLOCK = "traces without a think block (left as they are)"
NO_ANSWER_TAGS = "traces without <answer>…</answer> after the think block"


def trace_notes(response: str | None) -> Counter:
    """What the card counts about a trace's format."""
    text = response or ""
    closed = text.rfind("</think>")
    after = text[closed:] if closed >= 0 else text
    return Counter({NO_THINK_BLOCK: int(split_think(text) is None),
                    NO_ANSWER_TAGS: int(not ("<answer>" in after and "</answer>" in after))})
