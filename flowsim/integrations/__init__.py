"""flowsim beside other training code: recording a run made elsewhere so flowsim can read it.

:mod:`flowsim.integrations.folder` is the trace folder (written through the run-folder store,
read back checked); :mod:`flowsim.integrations.trl` is the TRL callback that fills it (an
optional extra: ``pip install -e ".[trl]"``).  Nothing here imports TRL, transformers or
torch except :mod:`flowsim.integrations.trl` itself.
"""
