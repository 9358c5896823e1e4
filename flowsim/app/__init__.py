"""The pipelines behind the command line, each over folders: :mod:`.run` (an experiment file
to a run folder), :mod:`.analyze` (tables and verdicts), :mod:`.plot` (figures),
:mod:`.reproduce` (everything shipped, into ``results/``) and :mod:`.bench`."""
