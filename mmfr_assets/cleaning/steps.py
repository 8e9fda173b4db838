"""The cleaning stage's model steps as assets: `question_reviews` (pool `cleaner_llm`) and
`extracted_answers` (pool `answer_llm`), both over `collected`, both read by `cleaned`."""

import dagster as dg

from mmfr_assets.cleaning.answers import AnswerExtraction, AnswerExtractionConfig
from mmfr_assets.cleaning.review import QuestionReview, QuestionReviewConfig
from mmfr_assets.model_step.asset import model_step_asset


def build_cleaning_steps(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [
        model_step_asset(
            QuestionReview, partitions, config_type=QuestionReviewConfig, group="cleaning",
            description="The cleaner's verdict on every collected question: rule-based routing "
            "first (`route_reasons`: foreign script, URLs, numbering, score annotations, markup, "
            "shallow instructions, non-answer tasks, fragments), then `cleaner_llm` for the rows "
            "`review` selects: `No Problem`, a rewrite (`corrected_question`, `error_types`), a "
            "non-answer question (cleaned drops it) or a recorded failure (`review_error`).",
        ),
        model_step_asset(
            AnswerExtraction, partitions, config_type=AnswerExtractionConfig, group="cleaning",
            description="A short final answer for every collected row whose `answer` is empty "
            "but whose `original_answer` holds a solution, extracted by `answer_llm` "
            "(`<answer>...</answer>`, LaTeX kept); `answer_origin` says dataset, extracted, "
            "failed, missing (no endpoint) or absent (no solution either).",
        ),
    ]
