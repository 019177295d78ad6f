"""User-facing errors: one clear line, no traceback (the CLI prints ``str(err)``)."""

from __future__ import annotations


class ArchetoolError(Exception):
    """An error caused by the user's input or options.

    The message is a single line naming the file, the row or column, and the fix.
    The CLI prints it to stderr as ``error: <message>`` and exits with ``exit_code``.
    """

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class InputError(ArchetoolError):
    """Unreadable, malformed or inconsistent input data."""


class ModelDirError(ArchetoolError):
    """A MODEL path that is missing, corrupt or not an archetool model."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of a library exception's message (at most ``limit`` characters), else its type name:
    the part of a third-party error worth quoting in a one-line message."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


def preview(names, limit: int = 12, total: int | None = None) -> str:
    """Comma-separated preview of ``names`` (for 'columns that do exist: ...').

    ``total``: how many there are in all when ``names`` holds only the first few of them.
    """
    names = [str(n) for n in names]
    total = len(names) if total is None else max(int(total), len(names))
    head = ", ".join(names[:limit])
    return head + (f", ... ({total} in all)" if total > min(limit, len(names)) else "")
