"""Region tables (:mod:`.tables`), verdict machinery (:mod:`.verdicts`: claims, the four
outcomes, the markdown report, the verdict matrix across settings and its conclusions),
the fixed sensitivity family (:mod:`.sensitivity`) and the evaluation of a study's claims
on a flows table (:mod:`.evaluation`), generic; the claims, one module each, in
:mod:`.claims`; the studies that judge them (one paper each) in :mod:`.studies`."""
