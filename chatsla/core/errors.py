"""The errors chatsla reports to its users, and the exit code of each (issue #11).

Code anywhere in chatsla raises one of these with a one-line message that names the problem and
the file, option or broker concerned; ``chatsla.cli.main`` is the one place that turns them (and
``OSError``, a closed pipe, Ctrl-C) into that line on stderr and the exit code. The exit codes are
part of the command line's contract (docs/cli.md, "Errors and exit codes"):

==== ================================================================================
0    success
1    the command was right but running it failed: an input that cannot be read
     (missing, unreadable, corrupt ``.gz``, closed standard input), an output that
     cannot be written (full disk, closed standard output or pipe), a broker that
     cannot be reached or refuses the connection; ``verify`` found differences;
     ``dev status``: the broker is not running or not answering
2    the command line is wrong: an unknown option, a value that does not parse or is out
     of range, options that do not go together, a policy that is unknown or invalid
130  interrupted (Ctrl-C)
==== ================================================================================

This module imports nothing, so the pure core (``chatsla.core``) can raise these too.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class ChatslaError(Exception):
    """A problem the user can act on; ``str(e)`` is one line and ``exit_code`` its exit code."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        # One line whatever the cause's text held (a broker's multi-line error, a path with \n).
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self)


class UsageError(ChatslaError):
    """The command line is wrong (an option's value, a combination of options): exit 2."""

    exit_code = EXIT_USAGE


class InputError(ChatslaError):
    """An input file or stream cannot be opened or read to its end: exit 1.

    Invalid *records* are not errors: they are counted by reason and reported (R1)."""


class OutputError(ChatslaError):
    """An output cannot be written (full disk, closed standard output or pipe): exit 1."""


class BrokerError(ChatslaError):
    """Kafka cannot be reached, refuses the connection or the credentials, or fails a request:
    exit 1."""
