"""The one error type for user mistakes: its message says what to change."""


class ISpanError(Exception):
    """A mistake the user can fix (bad option, missing file, wrong model folder).

    The CLI prints ``error: <message>`` on one line and exits with ``exit_code``; no traceback.
    """

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(ISpanError):
    """A command line that cannot work as given (exit status 2, like click's usage errors)."""

    exit_code = 2
