"""Region tables (:mod:`.tables`), verdict machinery (:mod:`.verdicts`: claims, the four
outcomes, the markdown report, the verdict matrix across settings and its conclusions) and
the fixed sensitivity family (:mod:`.sensitivity`), generic; one paper's claims in
:mod:`.studies`."""
