"""Studies: one paper each, a list of registered claims (:mod:`flowsim.analysis.claims`) and the
region cuts of its sensitivity family.  ``dpo_field``: *Understanding the limitations of DPO
through field theory* (the seed paper); ``thresholds``: the thresholds of its rules."""
