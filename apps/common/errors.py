"""The errors an app reports to its user as ``error: ...`` (exit code 2) instead of a traceback.

Every reader of user input (ABC text, MIDI, WAV, EsAC, a data folder, a command-line value)
raises a subclass of :class:`InputError` naming what is wrong and where. The engine adds two of
its own: ``CheckpointError`` (a missing, corrupt or foreign checkpoint) and ``NonFiniteError``
(a NaN or inf reached a loss). ``apps.common.cli.run_command`` turns exactly these, and the
operating system's file errors, into one line; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

from nnscratch.functions.loss import NonFiniteError
from nnscratch.serialization import CheckpointError


class InputError(ValueError):
    """Bad input from the user: a file, a data folder or a command-line value."""


class UsageError(InputError):
    """A command-line value or combination of values that cannot work (named in the message)."""


#: what a CLI turns into ``error: ...``; OSError covers missing, unreadable and unwritable paths
USER_ERRORS = (InputError, CheckpointError, NonFiniteError, OSError)


def describe(exc: BaseException) -> str:
    """One line for the user: the message, with the path an OSError names."""
    if isinstance(exc, OSError) and not isinstance(exc, InputError):
        what = exc.strerror or type(exc).__name__
        where = f": {exc.filename}" if exc.filename else ""
        return f"{what}{where}" if exc.strerror else str(exc) or what
    return str(exc) or type(exc).__name__


def rebuild_from(path: str, config: dict, build, what: str, needs: tuple = ()):
    """``build(config)``: the model an app's checkpoint describes, or a CheckpointError.

    A checkpoint of another app (missing one of ``needs``) or with a damaged config (a build that
    raises KeyError, TypeError or ValueError) is the checkpoint's fault, not a bug: the error
    names the file and what is wrong, and the CLI prints it as one line.
    """
    missing = [k for k in needs if k not in config]
    if missing:
        raise CheckpointError(f"{path}: not a {what} checkpoint (its config has no "
                              f"{', '.join(repr(k) for k in missing)})")
    try:
        return build(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: damaged {what} checkpoint: its config cannot rebuild "
                              f"the model ({type(exc).__name__}: {exc})") from None
