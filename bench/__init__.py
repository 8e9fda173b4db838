"""Benchmarks of the pipeline at scale: `python -m bench` (see `bench/__main__.py`)."""
