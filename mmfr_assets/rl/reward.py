"""A rule reward for verl (`custom_reward_function.path`: this file), for the RL set exported
with `mmfr export --asset rl_selected --format verl`.

OpenMMReasoner's reward is 0.9 x accuracy + 0.1 x format. Accuracy: the response's final
answer (`<answer>…</answer>` after the thinking, else the last `\\boxed{}`) equals the ground
truth by our verifier's rules (`verify_rules`: option letters, numbers with units, intervals,
sets, ...; microseconds, no math-verify workers inside the trainer); an answer the rules
cannot decide scores 0, like a wrong one. Format: the response ends its thinking and gives an
`<answer>…</answer>` pair, as the RL prompt asks. The signature is verl's
(`NaiveRewardManager` calls `compute_score(data_source=, solution_str=, ground_truth=,
extra_info=)`); a dict's `score` is the reward, its other keys are logged.
"""

from __future__ import annotations

import re
from typing import Any

from mmfr_assets.rules.verify import Item, final_answer, verify_rules

_ANSWER = re.compile(r"<answer>.*?</answer>", re.DOTALL | re.IGNORECASE)


def compute_score(data_source: str, solution_str: str, ground_truth: str,
                  extra_info: dict[str, Any] | None = None, **_: Any) -> dict[str, float]:
    text = solution_str or ""
    answer = final_answer(text)
    question = (extra_info or {}).get("question")
    correct = bool(answer and answer.strip() and ground_truth) and \
        verify_rules(Item(answer, ground_truth, question)).equivalent is True
    after_thinking = text.rsplit("</think>", 1)[-1]
    formatted = _ANSWER.search(after_thinking) is not None
    return {"score": 0.9 * correct + 0.1 * formatted, "acc": float(correct), "format": float(formatted)}
