"""The verifier on the answer-pair set (issue 17 cause 3): several hundred labelled pairs of
the kinds public answer graders test, each with its source; the goals are asserted on the whole
set, on its held-out part (pairs written after the rules were changed) and, for accuracy, on its
adversarial part (pairs written to make the new rules accept wrongly). Then one focused test
per rule the set made us add."""

from __future__ import annotations

from collections import Counter

import pytest

from bench import verify as bench_verify
from mmfr_assets.rules.verify import Item, Verdict, approximation, closed_form, extract, rules, same_answer, verify_rules
from mmfr_assets.rules.verify.extract import answer_of
from mmfr_assets.rules.verify.forms import closed_word, options, read_intervals, read_time, unit_scale
from mmfr_assets.rules.verify.verifier import math_verify_pair as math_verify_input
from mmfr_assets.rules.verify.workers import math_verify_pair

PAIRS = bench_verify.answer_pairs()


def test_the_set_is_several_hundred_labelled_pairs_with_sources():
    assert len(PAIRS) >= 300
    assert len({p["id"] for p in PAIRS}) == len(PAIRS)
    for p in PAIRS:
        assert p["label"] in ("equivalent", "different"), p
        assert p["source"].strip() and p["class"].strip() and p["candidate"].strip() and p["reference"].strip(), p
        assert p["split"] in ("tuned", "held_out", "adversarial"), p
    classes = Counter(p["class"] for p in PAIRS)
    for cls in ("short", "latex", "fraction", "interval", "tuple_ordered", "set_unordered", "units",
                "decimal", "mixed_number", "time", "equation", "complex", "sentence", "option", "words",
                # issue 30
                "tuple_order", "multi_box", "approximation", "time_12h", "trig_identity", "multi_part", "prose"):
        assert classes[cls] >= 10, (cls, classes[cls])
    labels = Counter(p["label"] for p in PAIRS)
    assert labels["different"] >= 0.3 * len(PAIRS)  # false accepts need different pairs to show
    assert Counter(p["split"] for p in PAIRS)["held_out"] >= 100


@pytest.fixture(scope="module")
def verdicts() -> list[Verdict]:
    return bench_verify.pair_verdicts(PAIRS, workers=2)


@pytest.mark.process
@pytest.mark.parametrize("split", [None, "held_out", "adversarial", "issue30"])
def test_the_verifier_meets_the_goals(verdicts, split):
    """Decided >= 80% of the set (and of its held-out part, and of the classes issue 30 added),
    right on >= 97% of the decided, at most one false accept. The adversarial part (pairs
    written to make the rules accept wrongly: mostly "different", many a reader's call) is
    held to accuracy alone."""
    keep = [k for k, p in enumerate(PAIRS) if split is None or p["split"] == split
            or (split == "issue30" and p["class"] in bench_verify.ISSUE_30_CLASSES)]
    pairs, mine = [PAIRS[k] for k in keep], [verdicts[k] for k in keep]
    mistakes = bench_verify.pair_mistakes(pairs, mine)
    for weak_decided in (False, True):  # a weak 'different' left to the judge, or counted
        figures = bench_verify.pair_figures(pairs, mine, weak_decided=weak_decided)
        if split != "adversarial":
            assert figures.decided_share >= 0.80, (figures, mistakes)
        assert figures.right_share >= 0.97, (figures, mistakes)
        assert figures.false_accepts <= 1, (figures, mistakes)


def test_the_rules_alone_accept_nothing_wrongly():
    alone = [verify_rules(Item(p["candidate"], p["reference"], p.get("question"))) for p in PAIRS]
    figures = bench_verify.pair_figures(PAIRS, alone, weak_decided=False)
    assert figures.false_accepts <= 1 and figures.right_share >= 0.97, (
        figures, bench_verify.pair_mistakes(PAIRS, alone))


def test_pair_figures_count_what_they_say():
    pairs = [{"label": "equivalent"}, {"label": "different"}, {"label": "different"}, {"label": "equivalent"},
             {"label": "equivalent"}]
    verdicts = [Verdict(True, "exact"), Verdict(True, "number"), Verdict(False, "math_verify"),
                Verdict(False, "number"), Verdict(None, "undecided", "prose")]
    strict = bench_verify.pair_figures(pairs, verdicts, weak_decided=False)
    assert (strict.decided, strict.right, strict.false_accepts, strict.false_rejects) == (3, 1, 1, 1)
    weak = bench_verify.pair_figures(pairs, verdicts, weak_decided=True)
    assert (weak.decided, weak.right) == (4, 2)


# --- option layouts (cause 2) ----------------------------------------------------------------

@pytest.mark.parametrize(
    "question",
    [
        "Which is it? A.256; B.512; C.944; D.275",
        "Find x. (A) 256 (B) 512 (C) 944 (D) 275",
        "Find x.\nA: 256\nB: 512\nC: 944\nD: 275",
        "Find x.\nA) 256\nB) 512\nC) 944\nD) 275",
        "Find x.\nA. 256\nB. 512\nC. 944\nD. 275",
        "求x。\nA．256\nB．512\nC．944\nD．275",
        "求x。（A）256 （B）512 （C）944 （D）275",
        "求x。\nA：256\nB：512\nC：944\nD：275",
        "Choices: A. 256, B. 512, C. 944, D. 275",
        "A、256 B、512 C、944 D、275",
    ],
)
def test_option_layouts(question):
    assert options(question) == {"A": "256", "B": "512", "C": "944", "D": "275"}
    assert (verify_rules(Item("C", "944", question)).equivalent, verify_rules(Item("C", "944", question)).method) == (
        True, "choice")
    assert verify_rules(Item("944", "C", question)).equivalent is True
    assert verify_rules(Item("B", "944", question)).equivalent is False  # another option's text


def test_options_need_a_run_from_a():
    assert options("Points B. and C. are marked") == {}
    assert options("A. only one") == {}
    assert options("(B) 1 (C) 2") == {}
    # the last, longest run wins over a stray "A." earlier in the text
    assert options("Let A. be given. Which? A.1; B.2; C.3") == {"A": "1", "B": "2", "C": "3"}


# --- the new rules ---------------------------------------------------------------------------

def rule(candidate, reference, question=None):
    v = verify_rules(Item(candidate, reference, question))
    return v.equivalent, v.method if v.equivalent is not None else v.detail


@pytest.mark.parametrize(
    "candidate, reference, expected",
    [
        ("(0,1)", "[0,1]", (False, "interval")),  # open against closed
        ("[0,1)", "[0,1)", (True, "exact")),
        ("[0, 1)", "[0,1)", (True, "exact")),
        ("\\left[ 2, 5 \\right)", "[2, 5)", (True, "exact")),
        ("[2, \\frac{9}{2})", "[2, 4.5)", (True, "interval")),
        ("(-\\infty, 3)", "(-\\infty, 3]", (False, "interval")),
        ("(-1, \\frac{1}{2}]", "(-1, 0.5]", (True, "interval")),
        ("(-\\infty, 0] \\cup (1, \\infty)", "(-\\infty,0)\\cup(1,\\infty)", (False, "interval")),
        ("(1, 2)", "(2, 1)", (False, "list")),  # two round brackets: a tuple as much as an interval
    ],
)
def test_interval_rule(candidate, reference, expected):
    assert rule(candidate, reference) == expected


def test_intervals_read():
    assert [i.opening + i.closing for i in read_intervals("[0, 1) \\cup (2, 3]")] == ["[)", "(]"]
    assert read_intervals("(1, 2, 3)") is None and read_intervals("5") is None


@pytest.mark.parametrize(
    "candidate, reference, expected",
    [
        ("20:34", "20:34:00", (True, "time")),
        ("8:30", "08:30", (True, "time")),
        ("8:30 PM", "20:30", (True, "time")),
        ("8:30 AM", "20:30", (False, "time")),
        ("20:34", "20:43", (False, "time")),
        ("2:30", "14:30", (None, "time_ambiguous")),  # a 12-hour clock writes both
    ],
)
def test_time_rule(candidate, reference, expected):
    assert rule(candidate, reference) == expected


def test_times_read():
    assert read_time("3:4") is None  # a ratio
    assert read_time("25:00") is None and read_time("13:00 pm") is None
    assert read_time("6:00 a.m.").half == "am"


@pytest.mark.parametrize(
    "candidate, reference, expected",
    [
        ("0,111", "0.111", (True, "number")),  # a decimal comma
        ("1000,99", "1000.99", (True, "number")),
        ("3,5", "3.6", (False, "number")),
        ("1,000", "1000", (True, "number")),  # thousands stay thousands
        ("1 1/2", "1.5", (True, "number")),  # a mixed number
        ("1 1/2", "11/2", (False, "number")),  # ... not "11/2" with its space removed
        ("2\\frac{1}{3}", "\\frac{7}{3}", (True, "number")),
        ("0.001", "1e-3", (True, "number")),
        ("1.2 \\times 10^5", "120000", (True, "number")),
        ("0.33", "\\frac13", (True, "number")),
        ("\\$4.50", "4.5", (True, "number")),
        ("5 km", "5000 m", (True, "number")),  # units converted
        ("1.5 h", "90 min", (True, "number")),
        ("5 km", "5 m", (False, "number")),
        ("5 m", "5 s", (None, "units_differ")),  # other kinds: a reader's call, not math-verify's
        ("2x", "2", (None, "rules_undecided")),  # a variable is no unit
        ("10^3", "1000", (True, "number")),  # a power, not 10 with a unit "^3"
        ("-2^2", "-4", (True, "number")),
        ("2^{x}", "2", (None, "rules_undecided")),
        ("3 or 4", "3", (None, "rules_undecided")),  # two numbers, not 3 with a unit "or 4"
        ("1", "1-i", (None, "rules_undecided")),  # a sum, not 1 with a unit "-i"
        ("45 min", "45°", (None, "units_differ")),  # degrees only against degrees
        ("28 percent", "28\\%", (True, "number")),
        ("5\\%", "5 cm", (None, "units_differ")),
    ],
)
def test_number_forms(candidate, reference, expected):
    assert rule(candidate, reference) == expected


def test_comma_pairs_are_lists_against_each_other():
    assert rule("2,3", "3,2", "Find all roots.")[0] is True  # roots, not 2.3 against 3.2


def test_unit_scales():
    assert unit_scale("cm") == ("length", 0.01)
    assert unit_scale("cm^2") == ("length^2", pytest.approx(1e-4))
    assert unit_scale("m³") == ("length^3", 1.0)
    assert unit_scale("furlong") is None


ORDERED = "Find the ordered triple $(a, b, c)$."
ROOTS = "Enter all the solutions, separated by commas."


@pytest.mark.parametrize(
    "candidate, reference, question, expected",
    [
        ("4, 10, -2", "10, 4, -2", ORDERED, (False, "list")),
        ("4, 10, -2", "10, 4, -2", ROOTS, (True, "list")),
        # nothing says whether order matters: reordered, a judge's call (issue 30), not math-verify's
        ("4, 10, -2", "10, 4, -2", "In order to win, find the numbers.", (None, "order_unknown")),
        ("4, 10, -2", "4, 10, -2", "In order to win, find the numbers.", (True, "exact")),
        ("0, 1", "0, 1, 2", ROOTS, (False, "list")),  # sets of other sizes
        ("\\{1, 2\\}", "\\{2, 1\\}", None, (True, "list")),  # braces: a set
        ("\\{0\\}", "\\{0, 1\\}", None, (False, "list")),
        ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}", ROOTS, (True, "list")),
        ("\\{1, 2\\}", "(1, 2)", None, (None, "rules_undecided")),  # a set against a tuple
    ],
)
def test_tuples_and_sets(candidate, reference, question, expected):
    assert rule(candidate, reference, question) == expected


def test_list_kind_of_question():
    assert rules.list_kind(ORDERED) == rules.TUPLE
    assert rules.list_kind("List them in increasing order, separated by commas.") == rules.TUPLE
    assert rules.list_kind(ROOTS) == rules.SET
    assert rules.list_kind("Let f(x, y) = x + y. In order to ...") == rules.BARE
    assert rules.list_kind(None) == rules.BARE


@pytest.mark.parametrize(
    "candidate, reference, expected",
    [
        ("f(x) = 2x + 3", "y = 2x + 3", (True, "definition")),
        ("y = 2x + 3", "2x + 3", (True, "definition")),
        ("g(t) = 5", "y = 6", (False, "definition")),
        ("f(x) = 2x + 3", "y = 3 + 2x", (None, "rules_undecided")),  # math-verify's, sides only
    ],
)
def test_definition_rule(candidate, reference, expected):
    assert rule(candidate, reference) == expected


def test_math_verify_gets_the_sides_of_definitions():
    assert math_verify_input(Item("f(x) = 2x + 3", "y = 3+2x")) == ("3+2x", "2x + 3")
    assert math_verify_input(Item("x^2+y^2=4", "x^2+y^2=2^2")) == ("x^2+y^2=2^2", "x^2+y^2=4")


@pytest.mark.parametrize(
    "candidate, reference, expected",
    [
        ("yes", "No", (False, "words")),
        ("red", "blue", (False, "words")),
        ("grey", "gray", (True, "words")),
        ("anticlockwise", "counterclockwise", (True, "words")),
        ("red", "yes", (None, "prose")),  # two vocabularies: a reader's call
        ("cat", "dog", (None, "prose")),
    ],
)
def test_word_rule(candidate, reference, expected):
    assert rule(candidate, reference) == expected


def test_closed_words():
    assert closed_word("Yes.") == ("yes_no", "yes")
    assert closed_word("a cat") is None


@pytest.mark.parametrize(
    "text, answer",
    [
        ("the answer is $\\boxed{5}$", "5"),
        ("Therefore, the final answer is 12.", "12."),
        ("**Final Answer:** 42", "42"),
        ("Final Answer: The final answer is $12$. I hope it is correct.", "$12$."),
        ("x = \\boxed{2} or x = \\boxed{3}", "x = 2, x = 3"),  # boxes joined by "or": one list
        ("first \\boxed{2}, then \\boxed{3}", "first \\boxed{2}, then \\boxed{3}"),  # words between: two answers
        ("5", "5"),
        ("The answer is " + "long " * 20, "The answer is " + "long " * 20),  # not an answer itself
    ],
)
def test_answer_of_a_sentence(text, answer):
    assert answer_of(text) == answer


def test_sentences_are_verified_by_what_they_conclude():
    assert rule("The answer is $\\boxed{7}$.", "8") == (False, "number")
    assert rule("\\boxed{3} \\boxed{4}", "3") == (None, "parts_differ")  # several answers
    assert rule("The answer is C.", "C") == (True, "exact")


@pytest.mark.parametrize(
    "reference, candidate, expected",
    [
        ("i(2-i)", "1+2i", True),  # i is the imaginary unit when it is the only symbol
        ("\\frac{1}{i}", "-i", True),
        ("(2+i)(2-i)", "5", True),
        ("1+i", "1-i", False),
        ("x>1", "(1,\\infty)", True),  # an inequality as the set it describes
        ("2\\le x\\le 5", "[2,5]", True),
        ("x>1", "[1,\\infty)", False),
    ],
)
def test_math_verify_second_reading(reference, candidate, expected):
    assert math_verify_pair(reference, candidate) == (expected, "ok")


# --- issue 30: the classes the broad pair set showed wrong --------------------------------------

TRIPLE = "Find the ordered triple $(a, b, c)$."


@pytest.mark.parametrize(
    "candidate, reference, question, expected",
    [
        ("(7, 3, -1)", "(3, 7, -1)", TRIPLE, (False, "list")),
        ("[1, 2]", "(2, 1)", None, (False, "interval")),
        ("7, 3, -1", "3, 7, -1", None, (None, "order_unknown")),  # nothing says: not math-verify's
        ("7, 3, -1", "3, 7, -1", TRIPLE, (False, "list")),
        ("2, 5", "5, 2", "Find $a$ and $b$.", (False, "list")),  # named quantities: in order
        ("12, 16", "16, 12", "Find the length and the width, respectively.", (False, "list")),
        ("-1, 2", "2, -1", "Find the slope $m$ and the $y$-intercept $b$.", (False, "list")),
        ("\\langle 1, -2 \\rangle", "(1, -2)", None, (True, "list")),
        ("\\left\\langle 1, -2 \\right\\rangle", "(1, -2)", None, (True, "list")),
        ("\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}", "(1,-2)", None, (True, "list")),
        ("\\begin{pmatrix} -2 \\\\ 1 \\end{pmatrix}", "(1,-2)", None, (False, "list")),
        ("(2, 3), (3, 2)", "(3, 2), (2, 3)", "Find all pairs $(x, y)$.", (True, "list")),  # a set of points
        ("(2, 3), (4, 1)", "(3, 2), (2, 3)", "Find all pairs $(x, y)$.", (False, "list")),
    ],
)
def test_order_matters_where_the_question_or_the_brackets_say(candidate, reference, question, expected):
    assert rule(candidate, reference, question) == expected


@pytest.mark.parametrize(
    "candidate, reference, question, expected",
    [
        ("x=3, y=2", "x=2, y=3", None, (False, "list")),  # by name, not as a multiset
        ("y=3, x=2", "x=2, y=3", None, (True, "list")),
        ("x = 2 and y = 3", "(2, 3)", None, (True, "list")),
        ("x = 3 and y = 2", "(2, 3)", None, (False, "list")),
        ("(3, 2)", "x = 2, y = 3", "Find the ordered pair $(y, x)$.", (True, "list")),  # the question's order
        ("mean = 5, median = 7", "5, 7", None, (True, "list")),
        ("median = 7, mean = 5", "5, 7", None, (None, "order_unknown")),  # written and name order disagree
        ("(a) 5 (b) 7", "5, 7", None, (True, "list")),
        ("(1) 7; (2) 5", "5, 7", None, (False, "list")),
        ("x = 2 \\quad y = 3", "x=2, y=3", None, (True, "list")),
        ("8 \\text{ and } 15", "8, 15", None, (True, "list")),
        ("4 cm and 6 cm", "4, 6", None, (True, "list")),
        ("The length is 8 and the width is 5.", "8, 5", None, (None, "parts_differ")),  # a sentence: a reader's
        # the question's "(a) ... (b)" orders the parts, but a reference merging two ("P_1 = P_2 = T")
        # has fewer: undecided, not different (a real Zebra-CoT-Physics row, is_consistent true)
        ("T, T, r", "P_1 = P_2 = T, r", "(a) Find the period. (b) Find the other period and the ratio.",
         (None, "parts_differ")),
    ],
)
def test_parts_in_other_forms(candidate, reference, question, expected):
    assert rule(candidate, reference, question) == expected


@pytest.mark.parametrize(
    "text, joined",
    [
        ("\\boxed{3} and \\boxed{-1}", "3, -1"),
        ("\\boxed{1}\\boxed{2}", "1, 2"),
        ("$\\boxed{\\frac{1}{2}}$ and $\\boxed{-1}$.", "\\frac{1}{2}, -1"),
        ("x = \\boxed{2} \\text{ or } x = \\boxed{3}", "x = 2, x = 3"),
        ("(a) \\boxed{5} (b) \\boxed{7}", "(a) 5, (b) 7"),
        ("The roots are \\boxed{2} and \\boxed{3}", None),  # words around: which box is the answer?
        ("\\boxed{2} \\text{ cm and } \\boxed{3}", None),
        ("\\boxed{5}", None),
    ],
)
def test_several_boxes_joined_only_by_connectives(text, joined):
    assert extract.joined_boxes(text) == joined


def test_several_boxes_against_one_list():
    assert rule("\\boxed{-1,3}", "\\boxed{3} and \\boxed{-1}", "Find all real solutions.") == (True, "list")
    assert rule("\\boxed{1, 3}", "\\boxed{3} and \\boxed{-1}", "Find all real solutions.") == (False, "list")
    assert rule("\\boxed{12} and \\boxed{5}", "(5, 12)", "Find the ordered pair $(m, n)$.") == (False, "list")
    assert rule("\\boxed{2} or \\boxed{3}", "2") == (None, "parts_differ")


@pytest.mark.parametrize(
    "candidate, reference, question, expected",
    [
        ("(0.67, 1)", "(\\frac{2}{3}, 1)", None, (True, "list")),
        ("\\begin{pmatrix} 0.67 \\\\ 1 \\end{pmatrix}", "\\begin{pmatrix} \\frac{2}{3} \\\\ 1 \\end{pmatrix}", None,
         (True, "list")),
        ("62.83", "20\\pi", None, (True, "number")),
        ("2.236", "\\sqrt5", None, (True, "number")),
        ("0.87", "\\sin 60^\\circ", None, (True, "number")),
        ("62.84", "20\\pi", None, (None, "rules_undecided")),  # within one unit: truncated, not rounded
        ("62.94", "20\\pi", None, (False, "number")),
        ("62.8", "20\\pi", None, (False, "number")),  # one decimal: too coarse unless asked
        ("62.8", "20\\pi", "Round to the nearest tenth.", (True, "number")),
        ("62.83", "20\\pi", "Express your answer in terms of $\\pi$.", (False, "number")),
        ("0.67", "\\frac{2}{3}", "Express your answer as a common fraction.", (False, "number")),
        ("31.4", "10\\pi", "Use 3.14 for $\\pi$.", (True, "number")),
        ("0.01", "\\frac{1}{150}", None, (False, "number")),  # one significant digit is no rounding
        ("\\frac{100}{3}", "33.3", None, (False, "number")),
        ("\\frac{100}{3}", "33.3", "Give your answer to the nearest tenth.", (True, "number")),
        ("0.5", "\\sin 30", None, (None, "rules_undecided")),  # radians or degrees? no value either way
    ],
)
def test_approximations_the_question_allows(candidate, reference, question, expected):
    assert rule(candidate, reference, question) == expected


@pytest.mark.parametrize(
    "text, value",
    [
        ("20\\pi", 62.83185307179586),
        ("\\frac{\\sqrt{3}}{2}", 0.8660254037844386),
        ("\\frac13", 1 / 3),
        ("\\sqrt[3]{8}", 2.0),
        ("e^2", 7.38905609893065),
        ("\\cos 60^\\circ", 0.5),
        ("-\\frac{1}{2}", -0.5),
        ("x + 1", None),
        ("\\log 8", None),  # base 10 or e: the field decides
        ("1, 2", None),
    ],
)
def test_closed_form_values(text, value):
    got = closed_form.value(text)
    assert got == pytest.approx(value) if value is not None else got is None


def test_question_precision_and_exact_form():
    assert approximation.precision_asked("Round to the nearest hundredth.") == 2
    assert approximation.precision_asked("Give it to 3 decimal places.") == 3
    assert approximation.precision_asked("How many?") is None
    assert approximation.exact_form_asked("in simplest radical form")
    assert approximation.pi_fixed("求面积（π取3.14）") == 3.14


@pytest.mark.parametrize(
    "candidate, reference, expected",
    [
        ("07:15 PM", "19:15", (True, "time")),
        ("\\text{7:15 PM}", "19:15", (True, "time")),
        ("7:15 in the evening", "19:15", (True, "time")),
        ("12:30 AM", "00:30", (True, "time")),
        ("7:15 AM", "19:15", (False, "time")),
        ("7:15 PM", "7:15", (None, "time_ambiguous")),  # "7:15" may be a 12-hour time
        ("12:00 AM", "12:00", (None, "time_ambiguous")),
    ],
)
def test_twelve_and_twenty_four_hour_times(candidate, reference, expected):
    assert rule(candidate, reference) == expected


def test_degrees_become_radians_for_math_verify_in_trigonometric_texts():
    assert math_verify_input(Item("\\sin x", "\\cos(90^\\circ - x)")) == ("\\cos((\\frac{90\\pi}{180})- x)", "\\sin x")
    assert math_verify_input(Item("45", "45^\\circ")) == ("45^\\circ", "45")  # no function: the number rule's


@pytest.mark.parametrize(
    "reference, candidate, expected",
    [
        ("\\cos((\\frac{90\\pi}{180}) - x)", "\\sin x", True),
        ("\\cos((\\frac{90\\pi}{180}) + x)", "\\sin x", False),
        ("\\tan^2(y)+1", "\\sec^2(y)", True),
    ],
)
def test_math_verify_on_trigonometric_identities(reference, candidate, expected):
    assert math_verify_pair(reference, candidate) == (expected, "ok")


@pytest.mark.parametrize(
    "candidate, reference, expected",
    [
        ("Producer", "consumer", (False, "words")),
        ("a producer", "Producer", (True, "words")),
        ("It is a mammal.", "mammal", (True, "words")),
        ("north-east", "northeast", (True, "words")),
        ("the Moon", "moon", (True, "words")),  # the same words
        ("It eats another living thing.", "It makes its own food.", (None, "prose")),  # a reader's call
        ("not a producer", "producer", (None, "prose")),
        ("x + 1", "x - 1", (None, "rules_undecided")),  # no phrase: punctuation is mathematics here
    ],
)
def test_prose_decided_only_when_clearly_equal_or_closed_words(candidate, reference, expected):
    assert rule(candidate, reference) == expected


SHUFFLED_1 = "Which is it?\nA. 3\nB. 5\nC. 7"
SHUFFLED_2 = "Which is it?\nA. 7\nB. 3\nC. 5"


@pytest.mark.parametrize(
    "a, b, question, other, expected",
    [
        ("B", "C", SHUFFLED_1, SHUFFLED_2, True),  # shuffled options: the same option text
        ("B", "B", SHUFFLED_1, SHUFFLED_2, False),
        ("5", "C", None, SHUFFLED_2, True),
        ("producer", "consumer", None, None, False),
        ("pentagon", "triangle", None, None, False),
        ("it makes its own food", "it eats another living thing", None, None, None),
        ("0.5", "\\frac12", None, None, True),
        ("(1, 2)", "(2, 1)", None, None, False),
        ("", "5", None, None, None),
    ],
)
def test_same_answer(a, b, question, other, expected):
    assert same_answer(a, b, question, other) is expected
