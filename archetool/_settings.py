"""What the Python API says while it works: ``archetool.settings.verbosity`` and ``fit(..., verbose=)``.

As in scanpy and scvi-tools, ``archetool.fit`` logs by default the lines the CLI prints (data read, epoch
losses or a progress bar, where the model was saved and its held-out scores) on stderr, through the
``"archetool"`` logger; so do the model's ``embed``, ``archetypes``, ``sample`` and ``interpolate``
(e.g. the generated molecules' validity and novelty). Its handler is added only for the call and only when nobody configured logging
(no handler on the ``"archetool"`` or the root logger): under the CLI, under pytest's ``caplog`` or after
``logging.basicConfig`` the records go to those handlers instead, never twice.
"""

from __future__ import annotations

import contextlib
import logging
import sys

log = logging.getLogger("archetool")

#: verbosity names (scanpy's integers: 0 error, 1 warning, 2 info, 3 hint, 4 debug) and their levels
LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}
_INTS = {0: "error", 1: "warning", 2: "info", 3: "info", 4: "debug"}


def level_of(verbosity) -> int:
    """A logging level from a verbosity: a name (``"warning"``, ``"info"``, ...), scanpy's integers 0-4,
    or a bool (True: ``"info"``, False: ``"warning"``, i.e. warnings and errors only)."""
    if isinstance(verbosity, bool):
        return logging.INFO if verbosity else logging.WARNING
    if isinstance(verbosity, int) and verbosity in _INTS:
        return LEVELS[_INTS[verbosity]]
    if isinstance(verbosity, str) and verbosity.lower() in LEVELS:
        return LEVELS[verbosity.lower()]
    raise ValueError(f"verbosity {verbosity!r}: use one of {', '.join(map(repr, LEVELS))}, 0-4 or True/False")


class Settings:
    """``archetool.settings``: ``verbosity`` (default ``"info"``) of the API calls; ``verbose=`` overrides it
    per call. ``"warning"`` (or 1, or False) keeps warnings and errors only, and no progress bar."""

    def __init__(self):
        self._verbosity = "info"
        self._explicit = False  # set by the user: applies even where the user configured logging

    @property
    def verbosity(self) -> str:
        return self._verbosity

    @verbosity.setter
    def verbosity(self, value) -> None:
        level = level_of(value)
        self._verbosity = next(name for name, lv in LEVELS.items() if lv == level)
        self._explicit = True

    def __repr__(self) -> str:
        return f"archetool.settings(verbosity={self._verbosity!r})"


settings = Settings()


def _logging_configured() -> bool:
    return bool(log.handlers) or bool(logging.getLogger().handlers)


class _Handler(logging.StreamHandler):
    """The API's stderr handler; looks ``sys.stderr`` up at each record (notebooks and capsys replace it)."""

    def __init__(self):
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("archetool: %(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it
        pass


_depth = [0]  # API calls in progress: a call made by another (sample -> embed) changes nothing


@contextlib.contextmanager
def api_logging(verbose=None):
    """Around one API call: log at ``verbose`` (None: ``settings.verbosity``) on stderr unless logging is
    configured elsewhere; then the level is set only if ``verbose`` or ``settings.verbosity`` was given.
    Inside another API call it does nothing (the outer call's settings hold)."""
    if _depth[0]:
        yield
        return
    _depth[0] += 1
    try:
        with _api_logging(verbose):
            yield
    finally:
        _depth[0] -= 1


def reports(method):
    """Decorator: the method runs under :func:`api_logging` (``settings.verbosity``)."""
    import functools

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with api_logging():
            return method(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def _api_logging(verbose):
    explicit = verbose is not None or settings._explicit
    level = level_of(settings.verbosity if verbose is None else verbose)
    handler = None if _logging_configured() else _Handler()
    old_level = log.level
    if handler is not None:
        log.addHandler(handler)
    if handler is not None or explicit:
        log.setLevel(level)
    try:
        yield
    finally:
        if handler is not None:
            log.removeHandler(handler)
        if handler is not None or explicit:
            log.setLevel(old_level)
