"""Entry point of a math-verify worker process (`python -m` this module): kept apart from
`workers.py` so that running it does not re-execute a module the package already imported."""

import sys

from mmfr_assets.rules.verify.workers import _serve

if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2])
