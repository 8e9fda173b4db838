"""The small commands: `mmfr funnel` (the lake's funnel), `mmfr sample` (the bundled sample,
from a checkout's devkit) and `mmfr serve-report` (the report over HTTP)."""

from __future__ import annotations

import argparse

from mmfr_assets.cli.inputs import build_partition_keys, lake_of, parse_subsets


def add_parsers(commands) -> None:
    """The small commands' arguments."""
    parser = commands.add_parser("funnel", help="print the per-filter funnel of the lake")
    parser.add_argument("--subsets", default="all")
    parser.set_defaults(handler=funnel)


    parser = commands.add_parser("sample", help="write the bundled sample dataset (from a checkout: mmfr_devkit)")
    parser.add_argument("out", help="output folder (hub layout)")
    parser.set_defaults(handler=sample)


    parser = commands.add_parser(
        "serve-report",
        help="serve the report and row viewer over HTTP from where the lake keeps them "
        "(<lake>/_report/ on an object store, else the local report folder)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--report-dir", help="serve this local report folder instead (default: MMFR_REPORT_DIR, "
        "else where the report asset writes for MMFR_LAKE)",
    )
    parser.set_defaults(handler=serve_report)


def funnel(args: argparse.Namespace) -> int:
    from mmfr_assets.definitions import build_definitions
    from mmfr_assets.reporting.funnel import funnel_lines

    defs = build_definitions()
    subsets = parse_subsets(args.subsets, build_partition_keys(defs))
    print("\n".join(funnel_lines(lake_of(defs), subsets)))
    return 0


def sample(args: argparse.Namespace) -> int:
    from mmfr_assets.settings import sample_writer

    print(sample_writer("mmfr sample")(args.out))
    return 0


def serve_report(args: argparse.Namespace) -> int:
    from mmfr_assets.reporting.serve import serve
    from mmfr_assets.settings import lake_location, lake_storage_options

    serve(lake_location(), lake_storage_options(), args.host, args.port, args.report_dir or "")
    return 0
