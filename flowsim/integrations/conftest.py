"""pytest only: the modules that need the ``trl`` extra hold no doctests, so ``--doctest-modules`` does not
import them (importing TRL and transformers takes ~10 s, in every xdist worker, and fails without the extra);
tests/integration/test_trace.py imports them where it needs them."""

collect_ignore = ["trl.py", "tiny.py"]
