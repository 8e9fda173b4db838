"""What every column of the lake's tables means, for the `TableSchema` each materialization
records (`dagster/column_schema`: the UI's Columns tab) — one home, so the same column reads
the same on every table. A column of one table that means something else there is keyed by
`(table, column)`. Source columns a dataset card adds beyond these get a generic description.
"""

from __future__ import annotations

from mmfr_assets.lineage import NAME

COLUMNS: dict[str, str] = {
    # keys
    "subset": "Source subset (the partition key): the dataset card's config name.",
    "id": "Row id within its subset (a string; `#<row number>` where the source had none).",
    # the published columns
    "source": "Where the source dataset says the row comes from.",
    "original_question": "The question as the source published it, before cleaning.",
    "original_answer": "The source's answer or full solution text, as published.",
    "question": "The question the row is trained on (after cleaning's review, if it rewrote it).",
    "answer": "The short reference answer: the dataset's, or the one extracted from its solution.",
    "qwen3vl_235b_instruct_caption": "The published dense caption (Qwen3-VL-235B-Instruct).",
    "qwen3vl_235b_thinking_response": "The published reasoning trace (Qwen3-VL-235B-Thinking).",
    "qwen3vl_4b_pass_rate": "The published student pass rate: the share of Qwen3-VL-4B-Thinking "
    "samples that answered correctly (0 = never, 1 = always; null = not published).",
    "is_consistent": "Whether the trace's final answer matches the reference answer "
    "(null = not verified).",
    "consistency_analysis": "Why the trace was judged (in)consistent: the judge's analysis where a "
    "judge decided, else the dataset's.",
    # images
    "image_bytes": "Encoded image bytes (collected: the original; cleaned: only images cleaning changed).",
    "image_path": "The first image's file name in the source.",
    "image_count": "How many images the source row has.",
    "image_width": "Width of the image the row is trained on, in pixels.",
    "image_height": "Height of the image the row is trained on, in pixels.",
    "image_format": "Format of the image the row is trained on (JPEG, PNG, ...).",
    "image_source_mode": "Pillow mode of the source image before any conversion (RGB, RGBA, P, ...).",
    "image_sha256": "SHA-256 of the bytes the row is trained on.",
    "image_fixes": "What cleaning changed in the image (exif_transposed, resized, converted_*_to_rgb); "
    "empty when unchanged.",
    # cleaning
    "answer_reference": "What answer verification compares with: `answer`, else the solution "
    "(`original_answer`).",
    "answer_origin": "Where `answer` came from: dataset, extracted (from the solution by answer_llm), "
    "failed, missing (no endpoint), absent, original_answer.",
    "question_review": "What the question review did: not_routed, no_problem, rewritten, non_answer, "
    "failed, skipped (no endpoint).",
    "question_error_types": "The error types the review found in the question (translation, ...).",
    "review_status": "not_routed (no rule sent it to the model), no_problem, rewritten, non_answer, "
    "failed, skipped (no endpoint).",
    "route_reasons": "The rules that sent the question to the reviewer (foreign_script, url, ...).",
    "error_types": "The error types the reviewer named.",
    "corrected_question": "The reviewer's rewrite of the question (when rewritten).",
    "review_error": "Why the review failed (unparseable reply, request error).",
    "extracted_answer": "The final result answer_llm extracted from the solution.",
    "answer_error": "Why the extraction failed.",
    # dedup (dedup_signatures: what comparing a row needs, no text or image)
    "text_key": "64-bit hash (blake2b) of the normalized question: equal for exact duplicates.",
    "minhash": "datasketch MinHash of the question's character 4-grams (num_perm little-endian "
    "uint32): estimates the Jaccard similarity of two questions.",
    "num_perm": "MinHash permutations the signature was computed with (only equal ones compare).",
    "shingle_count": "Distinct character 4-grams of the normalized question.",
    "ask_minhash": "MinHash (64 little-endian uint32) of the question's asking line, the last "
    "line of its stem: a shared preamble counts for less than the line that asks.",
    "ask_shingle_count": "Distinct character 4-grams of the asking line (null: signed before it).",
    "answer_key": "64-bit hash of the reference answer as the verifier reads it (a choice letter "
    "as its option's text, a number as a number); duplicates need equal keys. Null: no answer.",
    "numbers_key": "64-bit hash of the sorted numbers in the question (a template with other "
    "numbers is another problem).",
    "phash": "64-bit perceptual hash of the image (imagehash.phash; null: no image).",
    "dhash": "64-bit difference hash of the image (imagehash.dhash).",
    "ahash": "64-bit average hash of the image (imagehash.average_hash).",
    "needs_caption": "No usable dataset caption: the caption teacher would be asked for one.",
    "needs_trace": "No usable dataset trace: the CoT teacher would be asked for one.",
    # distillation
    "caption": "The dense caption the row is trained on (the dataset's or the caption teacher's).",
    "caption_origin": "Where the caption came from: dataset, generated, rejected, failed, missing "
    "(no endpoint).",
    "caption_error": "Why a generated caption was rejected or failed.",
    "caption_model": "The model that wrote the caption.",
    "response": "The reasoning trace the row is trained on (<think>…</think> then the answer).",
    "response_origin": "Where the trace came from: dataset, generated, rejected, failed, missing "
    "(no endpoint).",
    "response_error": "Why a generated trace was rejected or failed.",
    "response_model": "The model that wrote the trace.",
    "samples_drawn": "Teacher samples drawn for the row.",
    "samples_passed": "Teacher samples that passed the selection's own checks.",
    "pass_rate": "Student pass rate: the share of the student's samples that answered correctly "
    "(0 = never solved, 1 = always; null = none).",
    # answer verification
    "method": "Who decided the verdict: dataset_label, a rule (exact, choice, number, list, ...), "
    "math_verify, judge, or unverified.",
    "analysis": "The judge's analysis, or why the row is unverified.",
    "final_answer": "The answer the trace ends on (last <answer> pair after </think>, else \\boxed{}).",
    "reference": "The reference answer it was compared with, reduced to what it concludes.",
    "reference_column": "The column the reference came from.",
    "rule_verdict": "What the rules alone said (null = undecided), also for labelled rows.",
    "rule_method": "The rule that decided (or why none did).",
    "dataset_label": "The dataset's own is_consistent, where it had one.",
    "weak": "Whether the verdict is weak (math-verify's 'different'; a judge may overrule it).",
    # student
    "pass_rate_low": "Lowest pass rate the samples allow (undecided samples counted incorrect).",
    "pass_rate_high": "Highest pass rate the samples allow (undecided samples counted correct).",
    "pass_rate_origin": "Where the pass rate came from: dataset, rollouts, bounds, failed, "
    "no_reference, missing (no endpoint).",
    "samples": "Student samples asked for.",
    "correct": "Samples whose answer matches the reference.",
    "incorrect": "Samples whose answer does not match (or that commit to none).",
    "undecided": "Samples the verifier could not decide (not counted).",
    "failed": "Sample requests given up on (not counted).",
    "judged": "Samples the judge decided.",
    "sample_answers": "Each sample's final answer.",
    "sample_verdicts": "Each sample's verdict (true, false, null = undecided).",
    "sample_methods": "Who decided each sample's verdict.",
    # the RL set (rl_rollouts, rl_verdicts, rl_selected): the policy's samples without the image
    "blind_pass_rate": "Pass rate of the policy asked without the image (null = only bounds, or not asked).",
    "blind_pass_rate_low": "Lowest blind pass rate the samples allow.",
    "blind_pass_rate_high": "Highest blind pass rate the samples allow.",
    "blind_pass_rate_origin": "Where the blind pass rate comes from (rollouts, judged, bounds, failed, off, ...).",
    "blind_samples": "Samples asked without the image (0: the blind check is off).",
    "blind_correct": "Blind samples whose answer matches the reference.",
    "blind_incorrect": "Blind samples whose answer does not match (or that commit to none).",
    "blind_undecided": "Blind samples the verifier could not decide.",
    "blind_failed": "Blind sample requests given up on.",
    "blind_answers": "Each blind sample's final answer.",
    "blind_verdicts": "Each blind sample's verdict (true, false, null = undecided).",
    "blind_methods": "Who decided each blind sample's verdict.",
    "blind_detail": "How the blind pass rate was reached, or why there is none.",
    "reference_form": "The reference's form: choice, number, time, interval, set, word, expression "
    "(rule-checkable) or prose, long, none.",
    "checkable": "Whether a rule can check the reference (its form is one of checkable_forms).",
    # model-step provenance
    "prompt_version": "Version (hash) of the prompt the request used.",
    "attempts": "Requests made for the row (asked again with a new seed after an invalid reply).",
    "prompt_tokens": "Prompt tokens the row's requests used.",
    "completion_tokens": "Completion tokens the row's requests used.",
    # rejections
    "stage": "The stage that dropped the row.",
    "filter": "The filter that dropped it (image, text, content, structure, ...).",
    "reason": "The drop reason (the first failing rule).",
    "detail": "What failed, in words (measured value against its threshold, ...).",
}
# Columns that mean something else on one table.
TABLE_COLUMNS: dict[tuple[str, str], str] = {
    (NAME.student_rollouts, "pass_rate"): "Pass rate over the student's samples verified by the rules "
    "and math-verify (null where undecided samples leave only bounds).",
    (NAME.student_verdicts, "pass_rate"): "Pass rate over every student sample once the judge decided "
    "the undecided ones (null = only bounds remain).",
    (NAME.student_rollouts, "detail"): "Why the row has no pass rate (or how it was reached).",
    (NAME.student_verdicts, "detail"): "Why the row has no pass rate (or how it was reached).",
    (NAME.rl_rollouts, "pass_rate"): "Pass rate over the policy's samples with the image, verified "
    "by the rules and math-verify (null where undecided samples leave only bounds).",
    (NAME.rl_verdicts, "pass_rate"): "Pass rate over the policy's samples with the image once the "
    "judge decided the undecided ones (null = only bounds remain).",
    (NAME.rl_selected, "pass_rate"): "The policy's pass rate the row was selected by (from rl_verdicts).",
    (NAME.rl_rollouts, "detail"): "How the pass rate was reached, or why there is none.",
    (NAME.rl_verdicts, "detail"): "How the pass rate was reached, or why there is none.",
    (NAME.distilled, "pass_rate"): "The dataset's student pass rate (qwen3vl_4b_pass_rate), carried "
    "forward; difficulty selection uses student_verdicts'.",
    (NAME.difficulty_filtered, "pass_rate"): "The student pass rate the row was selected by "
    "(from student_verdicts).",
    (NAME.difficulty_filtered_586k, "pass_rate"): "The student pass rate the row was selected by "
    "(from student_verdicts).",
}
SOURCE_COLUMN = "A column of the source dataset, as its card names it."


def describe(column: str, table: str | None = None) -> str:
    """The description of `column` (on `table`, where it means something else there)."""
    return TABLE_COLUMNS.get((table or "", column)) or COLUMNS.get(column) or SOURCE_COLUMN
