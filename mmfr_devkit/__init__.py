"""Scaffolding of tests, benchmarks and `make demo`, kept out of the runtime package's wheel.

- `mmfr_devkit.fake_server`: an OpenAI-compatible chat server with injectable faults, which the
  LLM tests and the client/model-step benchmarks talk to instead of a real model.
- `mmfr_devkit.sample`: the deterministic synthetic sample in hub layout (`mmfr sample`,
  `python -m mmfr_devkit.sample`), the default source of a checkout, with the drop reason each
  row was planned to get.

It lives beside `mmfr_assets/` in the checkout (importable there through the editable install,
see pyproject.toml); the runtime package never needs it, so the wheel and the Docker image
leave it out.
"""
