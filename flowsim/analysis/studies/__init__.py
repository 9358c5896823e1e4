"""Studies: one paper's claims each, as :class:`flowsim.analysis.verdicts.Claim` objects with
their measurements and rules.  ``dpo_field``: *Understanding the limitations of DPO
through field theory* (the seed paper)."""
