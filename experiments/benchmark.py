#!/usr/bin/env python
"""flowsim's performance benchmark (issues #5, #15 and #23): run it from the repository root.

    python experiments/benchmark.py             # full run (minutes on 2 cores); results to a scratch folder
    python experiments/benchmark.py --publish   # the same, written to results/benchmark.csv
    python experiments/benchmark.py --quick     # a smoke test, seconds

What it measures and how: see flowsim/app/bench/ (contenders, measure, report).  Also ``flowsim bench``.
"""

import sys

from flowsim.app.bench import main

if __name__ == "__main__":
    sys.exit(main())
