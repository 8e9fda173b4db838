"""Loading the prompt files. They live as text files in the checkout's top-level `prompts/`
(their one home, so they can be read and changed without touching code; a wheel or the Docker
image carries them, mapped in at build time by setup.py; `MMFR_PROMPTS` names another folder).
A prompt's version is a hash of its text: the response cache key already contains the text (so
an edited prompt is asked again), and the version recorded with each row says which prompt made
it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from mmfr_assets.settings import prompts_location


@dataclass(frozen=True)
class Prompt:
    name: str
    system: str
    user: str

    @property
    def version(self) -> str:
        """`<name>@<12 hex digits of sha256(system + user)>`."""
        digest = hashlib.sha256(f"{self.system}\x00{self.user}".encode()).hexdigest()[:12]
        return f"{self.name}@{digest}"

    def render(self, **fields: str) -> str:
        """The user text with each `{field}` replaced. Plain replacement rather than
        `str.format`: prompts and questions are full of LaTeX braces."""
        text = self.user
        for name, value in fields.items():
            text = text.replace("{" + name + "}", value or "")
        return text


def prompts_folder() -> Path:
    """`MMFR_PROMPTS`, else the shipped prompts (`mmfr_assets.settings.prompts_location`)."""
    return prompts_location()


def load_prompt(name: str) -> Prompt:
    folder = prompts_folder()
    system = folder / f"{name}.system.txt"
    return Prompt(
        name=name,
        system=system.read_text().strip() if system.exists() else "",
        user=(folder / f"{name}.user.txt").read_text().strip(),
    )
