"""Region tables (:mod:`.tables`) and verdict machinery (:mod:`.verdicts`), generic; one
paper's claims in :mod:`.studies`."""
