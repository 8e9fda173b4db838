"""Prompts live as text files in `prompts/` (or `MMFR_PROMPTS`) so they can be read and changed
without touching code; loading them is the only thing this module does."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mmfr_assets.settings import REPO_ROOT


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str

    def render(self, **fields: str) -> str:
        return self.user.replace("{question}", fields.get("question", ""))


def load_prompt(role: str) -> Prompt:
    folder = Path(os.environ.get("MMFR_PROMPTS") or REPO_ROOT / "prompts")
    return Prompt(
        system=(folder / f"{role}.system.txt").read_text().strip(),
        user=(folder / f"{role}.user.txt").read_text().strip(),
    )
