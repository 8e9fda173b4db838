"""`mmfr`: run the asset graph headlessly, plan a run's cost, print funnels, export, write the
bundled sample, serve the report. One module per command (`run.py`, `plan.py`, `export.py`,
`small_commands.py`), what they all read first in `inputs.py`.

Exit codes: 0 ok; 1 a run failed; 2 the input was refused (a bad argument, run config, source
or source row), with one line saying what and why. Input is checked before anything runs;
input refused inside a run (`InputError` raised by a step, e.g. duplicate ids) also exits 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from mmfr_assets.errors import InputError
from mmfr_assets.settings import export_target


def build_parser() -> argparse.ArgumentParser:
    """The `mmfr` command line, built without running anything (docs/test_docs read it)."""
    from mmfr_assets.cli import export, plan, run, small_commands

    parser = argparse.ArgumentParser(prog="mmfr", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run.add_parser(commands)
    plan.add_parser(commands)
    export.add_parser(commands)
    small_commands.add_parsers(commands)
    return parser


def target_first(argv: list[str]) -> None:
    """`--target` of `mmfr run`/`mmfr plan` as `MMFR_TARGET`, before the lineage is imported:
    the process's lineage (code versions, funnel, viewer, report) is built once, from
    `MMFR_TARGET`, when `mmfr_assets.lineage` loads, so the flag must be in the environment
    first for the whole command to be in its order. Too late (the lineage already loaded, as
    in a test calling `main`) it does nothing: `definitions.order_of` then decides."""
    if "mmfr_assets.lineage" in sys.modules or not argv or argv[0] not in ("run", "plan"):
        return
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--target")
    known, _ = pre.parse_known_args(argv[1:])
    if known.target is not None:
        try:
            export_target(known.target)
        except InputError:
            pass  # the parser's own check refuses it with its one line


def main(argv: list[str] | None = None) -> int:
    target_first(sys.argv[1:] if argv is None else argv)  # before anything imports the lineage
    from mmfr_assets.cli.run import EXIT_INPUT_REFUSED

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        # One line, whatever raised it (arguments, run config, the source, a mapping).
        print(f"mmfr: {str(error).strip() or type(error).__name__}", file=sys.stderr)
        return EXIT_INPUT_REFUSED


def entry() -> None:
    """The `mmfr` console script: `main`, then leave without running native teardown.

    Why `os._exit`: about one `mmfr run` in 25-50 that had finished and recorded its runs was
    seen dying in interpreter teardown with SIGABRT ("terminate called without an active
    exception", main thread, no Python frame: a C++ extension's static destructor), which turned
    a successful run into exit code 134 for the calling script. Everything `mmfr` writes is
    durable before `main` returns (Delta commits, the instance's run records, the LLM cache is
    flushed when each stage's session closes), so after flushing output the process can end
    without the destructors. Exceptions still take the normal exit path with their traceback.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
