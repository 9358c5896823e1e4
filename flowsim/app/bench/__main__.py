"""``python -m flowsim.app.bench``: the benchmark (and its timed child processes)."""

import sys

from flowsim.app.bench.report import main

sys.exit(main())
