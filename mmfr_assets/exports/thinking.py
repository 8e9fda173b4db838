"""The think block of a trace, written with the thinking markers of a chat template.

Traces are stored as the teacher (or the source dataset) wrote them, e.g.
`<think>First…</think>\n\nTherefore … <answer>C</answer>`. LLaMA-Factory's reasoning templates
(`ReasoningTemplate`) recognise a thought only by their own `thought_words` — for the Qwen3
family `<think>\n` … `\n</think>\n\n` — and strip it (`enable_thinking: false`) or add an empty
one by that exact form; a trace in another form is trained on as plain text. So an export
rewrites the assistant turn to the template's markers: the thought with its surrounding
whitespace trimmed, then everything after `</think>` (the final `<answer>…</answer>` included)
with its leading whitespace trimmed.

The formats (`THINK_FORMATS`), with the LLaMA-Factory templates (0.9.5, data/template.py) whose
`thought_words` they are and that take images (`TEMPLATES`; a text-only template such as `qwen3`,
`glm4_7` or `mimo_v2` has no multimodal plugin and refuses every image row at train time with
"This model does not support image input"):
- `qwen3` (default; MMFineReason trains Qwen3-VL): `<think>\n` … `\n</think>\n\n` — qwen3_vl,
  qwen3_5, qwen3_6, glm4_5v, mimo_vl (every reasoning template without its own thought_words).
- `plain`: `<think>` … `</think>` — only text-only templates use it (glm4_7, mimo_v2): for a
  model trained from another codebase.
- `kimi`: `◁think▷` … `◁/think▷` — kimi_vl.
- `gemma4`: `<|channel>thought\n` … `<channel|>` — gemma4.
- `raw`: the trace unchanged.
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"

THINK_FORMATS: dict[str, tuple[str, str] | None] = {
    "qwen3": ("<think>\n", "\n</think>\n\n"),
    "plain": ("<think>", "</think>"),
    "kimi": ("◁think▷", "◁/think▷"),
    "gemma4": ("<|channel>thought\n", "<channel|>"),
    "raw": None,
}
TEMPLATES: dict[str, tuple[str, ...]] = {
    "qwen3": ("qwen3_vl", "qwen3_5", "qwen3_6", "glm4_5v", "mimo_vl"),
    "plain": (),  # glm4_7 and mimo_v2 write these markers, but take no images
    "kimi": ("kimi_vl",),
    "gemma4": ("gemma4",),
    "raw": (),
}
DEFAULT_THINK_FORMAT = "qwen3"


def split_think(response: str) -> tuple[str, str, str] | None:
    """(text before `<think>`, the thought, text after `</think>`) of the first think block, or
    None when the trace has no closed one."""
    start = response.find(OPEN)
    if start < 0:
        return None
    end = response.find(CLOSE, start + len(OPEN))
    if end < 0:
        return None
    return response[:start], response[start + len(OPEN):end], response[end + len(CLOSE):]


def normalize_thinking(response: str, think_format: str = DEFAULT_THINK_FORMAT) -> tuple[str, bool]:
    """The trace with its think block in `think_format`'s markers, and whether it had one.
    A trace without a closed think block is returned unchanged (the quality filter drops those
    from the selection tables; earlier stages may still hold some)."""
    if think_format not in THINK_FORMATS:
        raise ValueError(f"unknown think format {think_format!r}; choose one of {', '.join(THINK_FORMATS)}")
    markers = THINK_FORMATS[think_format]
    parts = split_think(response)
    if parts is None:
        return response, False
    if markers is None:
        return response, True
    before, thought, after = parts
    opening, closing = markers
    prefix = before.strip() + "\n\n" if before.strip() else ""
    return prefix + opening + thought.strip() + closing + after.lstrip(), True
