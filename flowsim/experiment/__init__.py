"""WHICH runs: experiment files (:mod:`.config`), grids, the sweep's rows (:mod:`.sweep`, pure
compute), the run folder (:mod:`.store`), parallel backends (:mod:`.parallel`), and
:func:`~.execute.run_sweep` tying them together."""
