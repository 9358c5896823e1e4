"""flowsim beside other training code: recording a run made elsewhere so flowsim can read it.

:mod:`flowsim.integrations.folder` is the trace folder (written through the run-folder store,
read back checked); :mod:`flowsim.integrations.trl` is the TRL callback that fills it (an
optional extra: ``pip install -e ".[trl]"``); :mod:`flowsim.integrations.predictors` computes the
probe pairs' predictors of displacement for it (torch only); :mod:`flowsim.integrations.losses`
maps TRL's loss types to flowsim's losses.  Nothing here imports TRL or transformers except
:mod:`flowsim.integrations.trl` and :mod:`flowsim.integrations.tiny`, nor torch except those and
:mod:`flowsim.integrations.predictors`.
"""
