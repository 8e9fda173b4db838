"""Training exports of a selection table: Hugging Face hub layout and LLaMA-Factory ShareGPT.

Both read the same pinned table versions (`source.ExportSource`), refuse subsets whose tables are
missing or inconsistent, and appear at their destination in one rename (`atomic.py`).
"""
