"""The ``network`` model (torch): a small causal LM, its synthetic preference data, and the loss bridge.

:mod:`.data` makes the seeded datasets (numpy only); :mod:`.module` is the torch module whose
log pi(y|x) is the sum of its tokens' log-probabilities; :mod:`.bridge` applies any
:mod:`flowsim.model.losses` loss to the sequence log-ratios through the chain rule.  The
hyperparameters are :class:`flowsim.model.parameterisations.network.Network`.
"""
