"""The student-first order projected to the paper's 2.3M distilled rows (issue 33): the teachers'
share of the cost and the GPU-hours of the model steps after `deduplicated`, in the paper's order
and the student-first one for each target, by the planning module's own arithmetic
(`planning.figures.role_totals`, `planning.orders.reordered` with the published proportions).

`python -m bench.student_first` prints bench/RESULTS.md's "Student-first order" projection.
The measured half (the real sample, replayed endpoints, both orders, set equality) is printed by
`pytest mmfr_assets_tests/test_selection_from_scratch.py -s`.

Stated assumptions (nothing here is measured; change them and the figures follow):
- completion tokens per sample: the plan's defaults (`figures.ASSUMED_COMPLETION`): trace 2,833
  and caption 609 (the paper's), the student's 4 samples each as long as a trace (no published
  figure), a judge's verdict 200;
- prompt tokens: the plan's rule (the prompt files' text at 4 characters per token, 300
  characters of question, plus 1,024 per image);
- speed and GPUs per replica (`ECONOMICS`): the 235B-A22B teachers 2,500 completion tokens/s on
  8 GPUs (the docs' example endpoint), the 4B student and the 30B-A3B judge 2,500 tokens/s on 1;
- every distilled row judged by `answer_verdicts` and every student row by `student_verdicts`
  (an upper bound: the rules settle most of them).
The cleaning steps (question review, answer extraction) are the same in both orders and are left
out.
"""

from __future__ import annotations

from mmfr_assets.planning.figures import (
    Economics, StepCount, assumed_prompt_tokens, overall, rates, role_totals, Measured,
)
from mmfr_assets.planning.orders import PAPER_DISTILLED, PAPER_QUALITY, published_shares, reordered, teacher_share
from mmfr_assets.prompts import load_prompt
from mmfr_assets.student_first.target import TARGETS

ECONOMICS = {
    "cot_teacher": Economics(output_tokens_per_s=2500, gpus_per_replica=8),
    "caption_teacher": Economics(output_tokens_per_s=2500, gpus_per_replica=8),
    "student_llm": Economics(output_tokens_per_s=2500, gpus_per_replica=1),
    "judge_llm": Economics(output_tokens_per_s=2500, gpus_per_replica=1),
}
QUESTION_CHARS = 300
# (step, role, prompt file, sends image, rows in the paper's order, samples)
STEPS = (
    ("teacher_captions", "caption_teacher", "caption_teacher", True, PAPER_DISTILLED, 1),
    ("teacher_responses", "cot_teacher", "cot_teacher", True, PAPER_DISTILLED, 1),
    ("answer_verdicts", "judge_llm", "answer_judge", False, PAPER_DISTILLED, 1),
    ("student_rollouts", "student_llm", "student_rollout", True, PAPER_QUALITY, 4),
    ("student_verdicts", "judge_llm", "sample_judge", False, PAPER_QUALITY, 1),
)


def paper_counts() -> tuple[list[StepCount], dict]:
    counts, step_rates = [], {}
    for step, role, prompt, image, rows, samples in STEPS:
        p = load_prompt(prompt)
        guess, how = assumed_prompt_tokens(len(p.system) + len(p.user), QUESTION_CHARS, image)
        step_rates[step] = rates(role, samples, Measured(), assumed_prompt=guess, prompt_how=how)
        counts.append(StepCount("paper", step, role, rows, int(rows), 0, "estimated", "published", samples, 1))
    return counts, step_rates


def main() -> None:
    counts, step_rates = paper_counts()
    orders = {"paper (all)": counts}
    for name, target in TARGETS.items():
        orders[f"student first, {target.label}"] = reordered(counts, published_shares(target))
    print("| order | teacher rows | student rows | teacher GPU-h | student GPU-h | judge GPU-h | total GPU-h "
          "| teachers' share of GPU-h | teachers' share of tokens |")
    print("| --- |" + " ---: |" * 8)
    for name, order in orders.items():
        roles = role_totals(order, step_rates, {}, ECONOMICS)
        total = overall(roles)
        gpu = {r: roles[r].economics["gpu_hours"] for r in roles}
        teacher_rows = next(c.rows for c in order if c.step == "teacher_responses")
        student_rows = next(c.rows for c in order if c.step == "student_rollouts")
        print(f"| {name} | {teacher_rows:,.0f} | {student_rows:,.0f} | "
              f"{gpu['cot_teacher'] + gpu['caption_teacher']:,.0f} | {gpu['student_llm']:,.0f} | {gpu['judge_llm']:,.0f} | "
              f"{total['gpu_hours']:,.0f} | {teacher_share(roles, 'gpu_hours'):.1%} | {teacher_share(roles):.1%} |")


if __name__ == "__main__":
    main()
