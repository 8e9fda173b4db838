"""Only what pyproject.toml cannot say: the prompt files' one home is the checkout's top-level
`prompts/`, outside the package, and package data can only name files inside a package. At build
time they are mapped into the wheel as `mmfr_assets/prompt_files/` (where
`mmfr_assets.settings.DEFAULT_PROMPTS` looks first), so an installed package (the Docker image)
carries them; the editable install of a checkout reads `prompts/` itself."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROMPTS = Path(__file__).resolve().parent / "prompts"


class BuildPyWithPrompts(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the checkout's path entry serves `prompts/` as it is
        target = Path(self.build_lib) / "mmfr_assets" / "prompt_files"
        files = sorted(p for p in PROMPTS.iterdir() if p.suffix in {".txt", ".md"})
        if not any(p.suffix == ".txt" for p in files):
            raise SystemExit(f"no prompt files in {PROMPTS}: every model step reads its prompt there")
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            self.copy_file(str(path), str(target / path.name))


setup(cmdclass={"build_py": BuildPyWithPrompts})
