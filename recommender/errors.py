"""The root of every error that means "the operator (or the user) must change something", and says what.

The CLI shows these as one line and exits 2; anything else is a bug and keeps its traceback. The bot words the
ones a chat user can cause (a bad photo) from their codes, never from the exception's text.
"""

from __future__ import annotations


class UserError(Exception):
    """Something outside the code is wrong (a file, a name, a setting); the message says what to do."""


class BadInput(UserError, ValueError):
    """An input the operator chose (a manifest, a weights file, a model, an option) cannot be used as it is."""
