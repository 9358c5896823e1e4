#!/usr/bin/env python
"""flowsim's performance benchmark (issue #5): run it from the repository root.

    python experiments/benchmark.py            # full run, a few minutes on 2 cores
    python experiments/benchmark.py --quick    # a smoke test, seconds

What it measures and how: see flowsim/bench.py.  Also ``flowsim bench``.
"""

import sys

from flowsim.bench import main

if __name__ == "__main__":
    sys.exit(main())
