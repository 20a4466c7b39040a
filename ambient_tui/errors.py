"""The one error type the front ends render: what went wrong (cause) and what to do next.

The CLI's handler (cli.main) prints it as one line and exits with `code`; the TUI's handler
(screens/app.py `show_error`) shows it as one notification.
"""

from __future__ import annotations


class AmbientError(Exception):
    """cause: what happened; next_step: what the person does about it; code: the exit code
    (1 a failed check or step, 2 bad input)."""

    code = 1

    def __init__(self, cause: str, next_step: str = "", code: int | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.next_step = next_step
        if code is not None:
            self.code = code

    def line(self) -> str:
        return f"{self.cause}{'; ' + self.next_step if self.next_step else ''}"

    def __str__(self) -> str:
        return self.line()


class UsageError(AmbientError):
    """Bad input: one line of cause and next step, exit 2."""

    code = 2
