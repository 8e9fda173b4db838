"""File names from row ids and subset names.

Ids come from the source dataset and may contain `/`, `..`, parentheses, spaces or anything
else; a file name made from one must stay inside its folder and be unique. The readable part is
kept (so a person can find a row's image) and a short digest of the full id makes it unique
("a/b" and "a_b" would otherwise collide).
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")
# Subset folders may keep parentheses and '+': hub configs such as `FineVision-geo170k(qa)`
# are read back by their folder glob, and those characters are harmless in a path segment.
_SAFE_SUBSET = re.compile(r"^[A-Za-z0-9_()+-][A-Za-z0-9._()+-]{0,99}$")


def digest(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_stem(row_id: str) -> str:
    """A safe, unique file stem for a row id: `[A-Za-z0-9._-]`, no leading dot, bounded length."""
    readable = _UNSAFE_ID.sub("_", row_id).strip("._")[:80]
    return f"{readable}-{digest(row_id)}" if readable else digest(row_id)


def subset_folder(subset: str) -> str:
    """The folder of a subset: its name when that is a safe path segment, else a sanitized one."""
    if _SAFE_SUBSET.match(subset) and subset not in {".", ".."}:
        return subset
    return file_stem(subset)
