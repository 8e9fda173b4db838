"""Prose builders: questions per subset style, reasoning traces, captions, judge notes.

Everything is assembled from sentence templates filled with the problem's own
numbers, chosen with a seeded ``random.Random``. Two properties matter to the
pipeline and are enforced here rather than hoped for:

* word counts (``str.split()``) land where the caller asks, exactly when asked
  (boundary rows of 200-word traces / 100-word captions);
* a normal think block never repeats a sentence (short interjections like
  "Wait." aside), so no 50-word window occurs three times by accident (the
  ``repetition_ngram`` filter must only catch the rows that loop on purpose).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from .problems import Problem

# --------------------------------------------------------------------------- small helpers

_LOWER_OK = {"The", "Its", "Their", "Each", "A", "An", "This", "These", "That"}


def words(text: str | None) -> int:
    return len(text.split()) if text else 0


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _lower_first(s: str) -> str:
    w = s.split(" ", 1)[0]
    if w in _LOWER_OK:
        return s[:1].lower() + s[1:]
    return s


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class SentencePicker:
    """Hands out sentences, never the same rendered sentence twice per trace."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def fresh(self, make, tries: int = 12) -> str | None:
        for _ in range(tries):
            s = make()
            if s not in self.used:
                self.used.add(s)
                return s
        return None


# --------------------------------------------------------------------------- question formats per subset


@dataclass
class Fields:
    question: str
    answer: str
    original_question: str
    original_answer: str
    token: str  # what goes inside <answer>…</answer>
    mc: bool


_GEO_PREFIX = ("First perform reasoning, then finally select the question from the choices in the following "
               "format: Answer: xxx.")
_LLAVA_SUFFIX = "Please provide a clear reasoning process before giving the final answer."


def _messy(text: str, rng: random.Random) -> str:
    """Crawl-style whitespace: doubled spaces, trailing blanks, tabs, stray blank lines."""
    out = []
    for line in text.split("\n"):
        line = re.sub(r" ", lambda m: "  " if rng.random() < 0.12 else " ", line)
        if rng.random() < 0.4:
            line += rng.choice(["  ", " ", "\t", "   "])
        out.append(line)
    joined = "\n".join(out)
    if rng.random() < 0.5:
        joined = joined.replace("\n", "\n\n", 1)
    return rng.choice(["", " ", "  "]) + joined


def format_for_subset(subset: str, p: Problem, rng: random.Random) -> Fields:
    """Question/answer/original_* fields in the house style of each source subset."""
    if subset == "FineVision-geo170k(qa)":
        p.with_choices(rng, consecutive=p.kind == "perpendicular_bisector")
        opts = "\n".join(f"{l}: {c}" for l, c in zip("ABCD", p.choices))
        q = f"<image>{_GEO_PREFIX}\nQuestion: {p.statement}\nChoices:\n{opts}"
        oa = rng.choice(["", "Solution: "]) + f"{cap(p.principle)}. {p.calc}. Therefore, option {p.letter} is selected.\nAnswer:{p.letter}"
        return Fields(q, p.letter, "", oa, p.letter, True)
    if subset == "LLaVA-CoT":
        mc = rng.random() < 0.2
        if mc:
            p.with_choices(rng)
            q = f"<image>{p.statement}\nOptions: " + ", ".join(f"{l}. {c}" for l, c in zip("ABCD", p.choices))
            q += f"\n{_LLAVA_SUFFIX}"
            ans = p.letter
        else:
            q = f"<image>{p.statement} {_LLAVA_SUFFIX}" if rng.random() < 0.8 else f"<image>{p.statement}"
            ans = p.plain
        oa = (f"<SUMMARY> I will examine the image, identify the relevant values and use them to determine {p.goal}. </SUMMARY>\n\n"
              f"<CAPTION> {p.scene} </CAPTION>\n\n<REASONING> {' '.join(p.steps)} </REASONING>\n\n<CONCLUSION> {ans} </CONCLUSION>")
        return Fields(q, ans, "", oa, ans, mc)
    if subset == "WeMath2-Pro":
        ctx = (rng.choice(p.context) + " ") if p.context and rng.random() < 0.7 else ""
        return Fields(f"<image>{ctx}{p.statement}", p.plain, "", p.plain, p.plain, False)
    # BMMR (and any other subset): multiple choice, Chinese or messy English originals.
    mc = rng.random() < 0.85
    if mc:
        p.with_choices(rng)
        opts = "\n".join(f"{l}. {c}" for l, c in zip("ABCD", p.choices))
        gap = rng.choice(["\n", "\n\n"])
        q = f"<image>{rng.choice(['', ' '])}{p.statement}{gap}{opts}"
        ans = p.letter
    else:
        q, ans = f"<image>{p.statement}", p.value
    if rng.random() < 0.55:
        oq = f"<image>{p.statement_zh}"
        if mc:
            sep = rng.choice(["　", "  ", ""])
            c = [f"{l}{rng.choice(['．', '.', '. '])}{v}" for l, v in zip("ABCD", p.choices)]
            oq += f"\n\n{c[0]}{sep}{c[1]}\n{c[2]}{sep}{c[3]}"
        oa = (f"### Reasoning Process ###\n1. **理解题意**  \n   题目给出图形和已知条件，需要求出所问的量。\n\n"
              f"2. **应用原理**  \n   {p.principle_zh}。\n\n3. **计算**  \n   {p.calc}\n\n### Final answer ###\n\\boxed{{{ans}}}")
    else:
        oq = _messy(q, rng)
        oa = (f"### Reasoning Process ###\n1. **Understand the problem**  \n   We need {p.goal}.\n\n"
              f"2. **Key principle**  \n   {cap(p.principle)}.\n\n3. **Calculation**  \n   {p.calc}\n\n"
              f"### Final answer ###\n\\boxed{{{ans}}}")
    return Fields(q, ans, oq, oa, ans, mc)


# --------------------------------------------------------------------------- reasoning traces

_TOPIC = {"triangle_angles": "the angles of a triangle", "right_triangle": "a right triangle",
          "perpendicular_bisector": "a perpendicular bisector", "circle_inscribed_angle": "angles in a circle",
          "parallel_lines": "parallel lines and a transversal", "sector_area": "the area of a sector",
          "cuboid": "a cuboid", "linear_function": "a linear function", "bar_chart": "a bar chart",
          "pie_chart": "a pie chart", "circuit": "a DC circuit", "incline": "a block on an incline"}

_OPENERS = [
    "Okay, let's tackle this problem step by step.",
    "Okay, let's see. The problem is asking for {goal}.",
    "Got it, let's try to solve this.",
    "Alright, I need to work out {goal} from the figure and the given information.",
    "Let me start by looking carefully at the image and the question.",
    "I need to solve this problem about {topic}. Let me carefully analyze all the information provided.",
    "First, I need to understand what the question is really asking.",
    "Hmm, this is a problem about {topic}; let me think it through before picking an answer.",
]
_RESTATE = [
    "The question gives {givens} and asks for {goal}.",
    "We're told that {givens}. We need to find {goal}.",
    "From the text: {givens}. The target is {goal}.",
    "So the known information is: {givens}. What we want is {goal}.",
]
_LOOK = ["Looking at the image, I see {scene}", "The diagram shows {scene}", "In the figure there is {scene}",
         "From the picture: {scene}"]
_COMPONENT = ["There's {desc}, labeled {label}.", "I can see {desc}, marked {label}.",
              "The {name} ({label}) is {desc}.", "I can also make out {desc} ({label}).",
              "In the drawing, the {name} marked {label} is {desc}."]
_COMPONENT_NOLABEL = ["There's also {desc}.", "I notice {desc}.", "The figure includes {desc}.",
                      "The {name} is {desc}."]
_PRINCIPLE = ["First, I remember that {principle}.", "The key fact here is that {principle}.",
              "Let me recall: {principle}.", "The relevant rule is that {principle}.", "I know that {principle}."]
_INTERJECT = ["Let me write that down.", "Okay.", "That part is straightforward.", "Right.", "Good, that's simple enough.",
              "Let me be careful with the arithmetic here."]
_CHECK_LEADS = ["Wait, let me double-check.", "Let me verify this.", "Hmm, let me make sure.", "Let me check again.",
                "To be safe, I'll verify.", "Before finalizing, a quick sanity check."]
_FILLER_LEADS = ["Wait.", "Hmm.", "Let me think again.", "One more thing.", "Another check.", "Okay, let me keep going.",
                 "Hold on.", "Let me look at this from another angle.", "Let me not rush this.", "Good so far."]
_GENERIC = [
    "Let me re-read the question to make sure I'm answering what is asked: it wants {goal}, nothing more.",
    "I should double-check that I copied {given} correctly from the problem.",
    "I won't assume the drawing is to scale; the numbers given in the problem are what count.",
    "Let me restate the key idea in my own words: {principle}.",
    "Recomputing once more: {calc}.",
    "Is there any hidden condition here? Nothing beyond {given} is stated, so the standard reading applies.",
    "A common slip would be to {pitfall}, which would give {pitfall_value}, so I need to avoid that.",
    "So far everything points to {value}.",
    "I considered whether the answer might be {wrong}, but that doesn't fit with {given}.",
    "The {name} in the image is labeled {label}, and I've used it consistently.",
    "Nothing in the picture contradicts {given}.",
    "Let me make sure the units are consistent throughout; they are, so no conversion is needed.",
    "The reasoning doesn't depend on any estimate from the drawing, only on exact values.",
    "If I imagine redrawing the figure more accurately, {given} would still hold, so the answer doesn't change.",
    "I'll also keep in mind that {wrong} is a distractor-looking value; it's not what the computation gives.",
]
_CLOSE = ["So the answer is {token}.", "Therefore, {goal} is {value}.", "I'm confident the answer is {token}.",
          "That settles it: {value}.", "So {goal} comes out to {value}, which is answer {token}."]
PADS = ["Right.", "Okay.", "Good.", "Yes.", "Fine.", "Done.", "Consistent.", "Agreed."]


@dataclass
class Trace:
    """A thinking response in parts, so faults can move tags and answers around."""

    think: list[str]
    post: str
    final: str
    pre: str = ""
    extra: dict = field(default_factory=dict)

    def render(self, open_tag: bool = True, close_tag: bool = True) -> str:
        body = "\n\n".join(self.think)
        return (f"{self.pre}{'<think>' if open_tag else ''}{body}{'</think>' if close_tag else ''}\n\n"
                f"{self.post}{self.final}")


def _fill(t: str, p: Problem, rng: random.Random, token: str) -> str:
    comp = rng.choice([c for c in p.components if c[1] != "None"] or p.components)
    pit = rng.choice(p.pitfalls)
    return t.format(goal=p.goal, topic=_TOPIC.get(p.kind, "this figure"), givens=_join(p.givens),
                    given=rng.choice(p.givens), principle=p.principle, calc=p.calc, value=p.value, token=token,
                    wrong=rng.choice(p.distractors), pitfall=pit[0], pitfall_value=pit[1],
                    name=comp[0].lower(), label=comp[1], scene=p.scene[:1].lower() + p.scene[1:])


def _component_sentence(p: Problem, rng: random.Random, comp: tuple[str, str, str] | None = None) -> str:
    name, label, desc = comp or rng.choice(p.components)
    if label == "None":
        return rng.choice(_COMPONENT_NOLABEL).format(desc=desc, name=name.lower())
    return rng.choice(_COMPONENT).format(desc=desc, label=label, name=name.lower())


def final_sentence(token: str, *, tags: str = "ok") -> str:
    """The closing line after </think>; ``tags`` selects a (mal)formed variant."""
    inner = {
        "ok": f"<answer>{token}</answer>",
        "none": token,
        "missing_close": f"<answer>{token}",
        "extra_close": f"<answer>{token}</answer></answer>",
        "reversed": f"</answer>{token}<answer>",
        "nested": f"<answer>{token} <answer>{token}</answer></answer>",
    }[tags]
    return f"Therefore, the final answer is {inner}."


def _mc_sentence(p: Problem, rng: random.Random, value: str, letter: str) -> str:
    return rng.choice([f"Looking at the options, {value} is option {letter}.",
                       f"Checking the choices: {letter} is {value}, which matches.",
                       f"That corresponds to choice {letter}."])


def _post(p: Problem, rng: random.Random, value: str, letter: str | None, subset: str, wrong: bool = False) -> str:
    """The clean write-up models print after </think>."""
    steps_md = "\n".join(f"- {s}" for s in p.steps)
    style = rng.choice(["phase", "phase", "steps", "short"])
    if style == "phase":
        out = (f"### Phase 1: Comprehensive Information Extraction  \n- **Textual Input**: {_join(p.givens)}.  \n"
               f"- **Visual Input**: {p.scene}  \n\n### Phase 2: Strategic Problem Setup  \n"
               f"- **Goal**: Determine {p.goal}.  \n- **Key Principle**: {cap(p.principle)}.  \n\n"
               f"### Phase 3: Rigorous Solution Execution  \n{steps_md}\n$$\n{p.calc}\n$$\n\n"
               f"### Phase 4: Solution Validation  \n- {p.checks[0]}  \n- {rng.choice(p.checks[1:] or p.checks)}  \n\n")
    elif style == "steps":
        out = (f"To solve the problem, we start from the given information and apply one key fact.\n\n---\n\n"
               f"### Step 1: Understand the Given Information\n\n" + "\n".join(f"- {g}" for g in p.givens) +
               f"\n\n### Step 2: Apply the Key Principle\n\n{cap(p.principle)}.\n\n### Step 3: Compute\n\n{steps_md}\n\n---\n\n")
    else:
        out = f"{cap(p.principle)}. {' '.join(p.steps)} {rng.choice(p.checks)}\n\n"
    if wrong:
        out += f"Reading the figure once more, the value shown is {value}, so I go with that.\n\n"
    if letter:
        out += f"The computed value {value} matches option {letter}.\n\n" if subset != "FineVision-geo170k(qa)" else f"Answer: {letter}  \n"
    return out


def build_trace(p: Problem, rng: random.Random, *, target_words: int, token: str, letter: str | None,
                subset: str, wrong: tuple[str, str] | None = None, tags: str = "ok") -> Trace:
    """A plausible ``<think>…</think>`` trace of about ``target_words`` words in total.

    ``wrong`` = (value, token) makes the model talk itself into a wrong answer
    (for inconsistent rows). The think block never repeats a sentence.
    """
    pick = SentencePicker()
    value = wrong[0] if wrong else p.value
    tok = wrong[1] if wrong else token
    f = lambda t: _fill(t, p, rng, tok)  # noqa: E731
    para1 = [f(rng.choice(_OPENERS)), f(rng.choice(_RESTATE))]
    if p.choices:
        para1.append("The options are " + "; ".join(f"{l}: {c}" for l, c in zip("ABCD", p.choices)) + ".")
    para2 = [f(rng.choice(_LOOK)).rstrip(".") + "."]
    for comp in rng.sample(p.components, k=min(len(p.components), rng.randint(1, 3))):
        para2.append(_component_sentence(p, rng, comp))
    para3 = [f(rng.choice(_PRINCIPLE))]
    for i, s in enumerate(p.steps):
        if i and rng.random() < 0.35 and s.split(" ", 1)[0] in _LOWER_OK - {"So", "Then", "That"}:
            s = rng.choice(["So ", "Then ", "That means "]) + _lower_first(s)
        para3.append(s)
        if rng.random() < 0.2:
            para3.append(rng.choice(_INTERJECT))
    if wrong:
        para3.append(f"Hmm, but looking at the figure again, I think the intended value is {value} instead; "
                     f"I may have misread one of the labels, and {value} seems to fit the drawing better.")
    if letter:
        para3.append(_mc_sentence(p, rng, value, tok))
    para4 = [rng.choice(_CHECK_LEADS), *rng.sample(p.checks, k=min(len(p.checks), rng.randint(1, 2)))]
    think = [" ".join(para1), " ".join(para2), " ".join(para3), " ".join(para4)]
    for para in think:
        pick.used.update(re.split(r"(?<=[.?!])\s+", para))
    close = f(rng.choice(_CLOSE))
    post = _post(p, rng, value, tok if letter else None, subset, wrong=bool(wrong))
    final = final_sentence(tok, tags=tags)
    budget = target_words - words(post) - words(final) - words(close) - 2
    # Grow the think block with fresh reflections until the word budget is met.
    have = sum(words(t) for t in think)
    while have < budget:
        sents = []
        for _ in range(rng.randint(2, 4)):
            maker = rng.choice([lambda: p.whatif(rng), lambda: p.whatif(rng),
                                lambda: f(rng.choice(_GENERIC)), lambda: _component_sentence(p, rng)])
            s = pick.fresh(maker)
            if s:
                sents.append(s)
        if not sents:
            sents = [pick.fresh(lambda: p.whatif(rng), tries=200) or f"Check {len(think)}: {p.calc}."]
        if rng.random() < 0.6:
            sents.insert(0, rng.choice(_FILLER_LEADS))
        para = " ".join(sents)
        have += words(para)
        think.insert(len(think) - (1 if len(think) > 4 and rng.random() < 0.3 else 0), para)
    think.append(close)
    return Trace(think=think, post=post, final=final, extra={"used": pick.used})


def short_trace(p: Problem, rng: random.Random, *, token: str, max_words: int) -> Trace:
    """A structurally valid but too-short trace (the model gave up early)."""
    think = [_fill(rng.choice(_OPENERS), p, rng, token), " ".join(p.steps[:2]), f"So the answer is {token}."]
    t = Trace(think=think, post="", final=final_sentence(token))
    while words(t.render()) > max_words and len(t.think) > 1:
        t.think.pop(0)
    return t


def looping_paragraph(p: Problem, rng: random.Random, used: set[str], min_words: int = 60) -> str:
    """A 60+ word paragraph, to be pasted 2x (survives) or 3x (repetition_ngram).

    Built only from sentences not yet in the trace (``used``), so pasting it
    twice yields 50-grams that occur exactly twice, never three times.
    """
    pick = SentencePicker()
    pick.used = set(used)
    sents = ["Wait, I keep going back and forth, so let me write the whole argument out once more."]
    while words(" ".join(sents)) < min_words:
        s = pick.fresh(lambda: p.whatif(rng), tries=200)
        # pool exhausted (very long traces): fall back to numbered recaps, unique by construction
        sents.append(s or f"Recap number {len(sents)}: {p.calc}, which again gives {p.value}.")
    return " ".join(sents)


# --------------------------------------------------------------------------- captions

_EXTRA_COMPONENTS = [
    ("Background", "None", "a plain white background without gridlines, watermarks or decorative elements"),
    ("Line Style", "None", "thin dark strokes of uniform width used for every outline in the figure"),
    ("Typography", "None", "labels set in a small sans-serif typeface placed close to the elements they name"),
]


def build_caption(p: Problem, rng: random.Random, *, target_words: int) -> str:
    """A structured dense caption (same markdown skeleton as the real captions)."""
    comps = list(p.components)
    head = f"### Image 1: {p.image_type}\n\n**Scene Summary:** {p.scene}\n\n**Explicit Component Breakdown:**\n"
    comp_lines = [f"* **{n} (`{lab}`):** {cap(d)}." for n, lab, d in comps]
    extra = [f"* **{n} (`{lab}`):** {cap(d)}." for n, lab, d in _EXTRA_COMPONENTS]
    rel_lines = [f"* {r}" for r in p.relations]
    inf_lines = [f"* {r}" for r in p.inferred]
    tail = "\n\n**Identified Ambiguities:**\n* None."
    keep_c, keep_r, keep_i, keep_x = 3, 0, 0, 0

    def render() -> str:
        body = head + "\n".join(comp_lines[:keep_c] + extra[:keep_x])
        if keep_r:
            body += "\n\n**Interactions and Relationships:**\n" + "\n".join(rel_lines[:keep_r])
        if keep_i:
            body += "\n\n**Implicit and Inferred Properties:**\n" + "\n".join(inf_lines[:keep_i])
        return body + tail

    order = (["c"] * (len(comp_lines) - 3) + ["r"] * len(rel_lines) + ["i"] * len(inf_lines))
    rng.shuffle(order)
    order = ["r", "i", *order, *(["x"] * len(extra))]
    for step in order:
        if words(render()) >= target_words:
            break
        if step == "c" and keep_c < len(comp_lines):
            keep_c += 1
        elif step == "r" and keep_r < len(rel_lines):
            keep_r += 1
        elif step == "i" and keep_i < len(inf_lines):
            keep_i += 1
        elif step == "x":
            keep_x += 1
    return render()


def fit_caption(text: str, n: int, rng: random.Random) -> str:
    """Pad/trim a caption to exactly ``n`` words (trim drops whole bullets)."""
    lines = text.split("\n")
    while words("\n".join(lines)) > n:
        idx = max(i for i, l in enumerate(lines) if l.startswith("* **") or l.startswith("* "))
        if lines[idx] == "* None.":
            idx = max(i for i, l in enumerate(lines[:idx]) if l.startswith("* "))
        lines.pop(idx)
    missing = n - words("\n".join(lines))
    if missing:
        lines[-1] += " " + " ".join(rng.choice(["Clear.", "Legible.", "Unambiguous."]) for _ in range(missing))
    return "\n".join(lines)


def short_caption(p: Problem, rng: random.Random, max_words: int) -> str:
    text = f"### Image 1: {p.image_type}\n\n**Scene Summary:** {p.scene}\n\n**Explicit Component Breakdown:**\n"
    for n, lab, d in p.components:
        line = f"* **{n} (`{lab}`):** {cap(d)}.\n"
        if words(text + line) > max_words:
            break
        text += line
    return text.rstrip()


# --------------------------------------------------------------------------- judge notes


def consistency_analysis(p: Problem, rng: random.Random, *, ref: str, gen: str, equivalent: bool) -> str:
    sep = rng.choice(["\n", "\n\n", "  \n"])
    if equivalent:
        body = rng.choice([
            f"Analysis: {cap(p.principle)}. {p.calc}. The reference answer is {ref} and the generated answer is {gen}; both identify the same result with no factual or semantic discrepancy.",
            f"Analysis: Both the reference and the generated answer give {gen}. Using the given data, {p.calc}, which confirms the result. The answers are equivalent.",
            f"Analysis: The generated answer {gen} matches the reference {ref}. {p.steps[-1]} There is no discrepancy in the final result.",
        ])
        return f"{body}{sep}JUDGMENT: EQUIVALENT"
    body = rng.choice([
        f"Analysis: The reference answer is {ref}, while the generated answer concludes {gen}. From the given data, {p.calc}, so the generated answer is factually incorrect.",
        f"Analysis: {cap(p.principle)}. Applying it gives {p.value}, which agrees with the reference {ref}. The generated answer {gen} does not match and reflects a misreading of the figure.",
    ])
    return f"{body}{sep}JUDGMENT: NOT EQUIVALENT"
