"""The errors meant for users: each message is one line that says what is wrong and what to do.

The CLI turns any :class:`RagError` into ``rag: error: <message>`` and exit code 1, and lets
every other exception through as a traceback: a bug should look like a bug, not a polite line.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class of the errors a user can fix (bad input, a missing or damaged index, ...)."""


class InvalidInput(RagError, ValueError):
    """A value given by the user is not acceptable (an empty question, an unknown mode, k < 1...)."""


class NotFound(RagError, KeyError):
    """Something the user named does not exist (a document id, say)."""

    def __str__(self) -> str:
        # KeyError's own str() quotes its message; this is a sentence, shown as it is.
        return str(self.args[0]) if self.args else ""


class GeneratorError(RagError, RuntimeError):
    """A model backend cannot run: a missing package, an unreachable or failing server, a model
    process that stopped."""
