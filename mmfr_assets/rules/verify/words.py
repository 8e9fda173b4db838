"""Answers in words: one word of a closed vocabulary ("red", "producer", "acute"), and a short
phrase's key for "clearly the same words" ("The Moon" = "moon").

A word answer is decided only where that is safe without a reader: two different words of
the vocabularies below name different things, so they are different answers; two phrases
with the same words (case, punctuation, a leading article or "it is" aside) are the same
answer. Every other pair of phrases ("it makes its own food" against "it eats another living
thing", "a feline" against "a cat") is left to the judge.
"""

from __future__ import annotations

import re
import unicodedata

# Each class lists words that name distinct things: two different words of one class are
# different answers ("red" against "blue"). Synonyms map to one canonical word.
WORD_CLASSES: dict[str, tuple[str, ...]] = {
    "yes_no": ("yes", "no"),
    "truth": ("true", "false"),
    "colour": ("red", "blue", "green", "yellow", "black", "white", "orange", "purple", "pink",
               "brown", "gray"),
    "side": ("left", "right"),
    "vertical": ("up", "down"),
    "compass": ("north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest"),
    "rotation": ("clockwise", "counterclockwise"),
    "change": ("increase", "decrease", "unchanged"),
    "shape": ("circle", "square", "triangle", "rectangle", "pentagon", "hexagon", "octagon",
              "ellipse", "trapezoid", "rhombus", "parallelogram"),
    # school science and mathematics: the closed answer sets of templated questions
    "trophic": ("producer", "consumer", "decomposer"),
    "diet": ("herbivore", "carnivore", "omnivore"),
    "state": ("solid", "liquid", "gas", "plasma"),
    "phase_change": ("melting", "freezing", "evaporation", "condensation", "sublimation", "deposition"),
    "angle": ("acute", "obtuse", "reflex", "straight"),
    "parity": ("even", "odd"),
    "rationality": ("rational", "irrational"),
    "primality": ("prime", "composite"),
    "lines": ("parallel", "perpendicular"),
    "animal": ("mammal", "reptile", "bird", "fish", "amphibian", "insect"),
    "conduction": ("conductor", "insulator", "semiconductor"),
    "sign": ("positive", "negative"),
    "comparison": ("greater", "less", "equal"),
}
_SYNONYMS = {
    "grey": "gray", "anticlockwise": "counterclockwise",
    "increases": "increase", "increased": "increase", "decreases": "decrease",
    "decreased": "decrease", "stays the same": "unchanged", "no change": "unchanged",
    "circular": "circle", "producers": "producer", "consumers": "consumer",
    "decomposers": "decomposer", "mammals": "mammal", "reptiles": "reptile", "birds": "bird",
    "amphibians": "amphibian", "insects": "insect", "gaseous": "gas",
    "greater than": "greater", "larger": "greater", "bigger": "greater", "more": "greater",
    "less than": "less", "smaller": "less", "fewer": "less", "equal to": "equal", "equals": "equal",
}
_CLASS_OF = {word: name for name, words in WORD_CLASSES.items() for word in words}
# What may stand before the answer word without changing it: "a producer", "It is a mammal."
_LEAD = re.compile(r"^(?:(?:it|this|that)\s+is\s+|it's\s+|(?:they|these)\s+are\s+)?(?:(?:an?|the)\s+)?", re.IGNORECASE)


def _bare(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip().strip(".!*").strip().lower()
    return _LEAD.sub("", text, count=1).strip()


def closed_word(text: str) -> tuple[str, str] | None:
    """(class, canonical word) for a one-word answer from a closed vocabulary, else None.
    A leading article or "it is" is read past; hyphens and spaces inside the word are not
    ("north-east" is "northeast")."""
    word = _bare(text)
    for form in (word, word.replace("-", "").replace(" ", "")):
        form = _SYNONYMS.get(form, form)
        if form in _CLASS_OF:
            return _CLASS_OF[form], form
    return None


def phrase_key(text: str) -> str:
    """A phrase's words for comparison: lower case, punctuation and LaTeX text wrappers
    dropped, a leading article or "it is" read past ("The Moon." -> "moon")."""
    text = re.sub(r"\\(?:text|textbf|mathrm|mbox|textit)\s*\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"[^\w\s]", " ", unicodedata.normalize("NFKC", text).lower())
    return _bare(re.sub(r"\s+", " ", text))
