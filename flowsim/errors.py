"""The errors that mean "your input or your environment", not "a bug in flowsim".

:class:`UserError` is the base of every error flowsim raises for something its user can fix:
a value that breaks a rule (:class:`~flowsim._validation.ParamError`), an experiment file
that cannot be run (:class:`~flowsim.experiment.table.ConfigError`), a sweep that cannot
start or go on, or a results folder that is damaged (:class:`~flowsim.experiment.store.SweepError`),
a missing input file (:class:`InputNotFound`), a missing optional dependency.  The command
line prints a UserError as one line and exits with status 2; any other exception is a bug
(exit status 70, the traceback saved to a file).

Which to raise: a value that comes from outside flowsim (an argument of a public function, an
option, a key of an experiment file, a file on disk) breaking a rule is a UserError; a
definition inside flowsim or an extension breaking its contract (a claim, a figure family, a
registry entry) is a plain ``ValueError``/``TypeError``, so that it shows as the bug it is.

UserError is a ``ValueError``, so ``except ValueError`` and ``pytest.raises(ValueError)``
written before it existed still catch it.  This module imports nothing: every layer can use it.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or a bad environment: the user can fix it (the CLI: one line, exit status 2)."""


class InputNotFound(UserError, FileNotFoundError):
    """An input file or folder that is not there (a FileNotFoundError too, as Python code expects)."""


__all__ = ["InputNotFound", "UserError"]
