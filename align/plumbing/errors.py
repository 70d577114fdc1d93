"""User errors: one line on stderr, exit status 2, no traceback. Interrupts: one line, exit 130."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

USER_ERROR_EXIT = 2


class UserError(Exception):
    """Bad input from the user (recipe, data row, CLI flag, judge output).

    Reported as one line on stderr with exit status 2 and no traceback.
    """


def exit_on_user_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate an entry point: UserError -> `error: ...` on stderr, exit 2; Ctrl-C or SIGTERM ->
    the cleanup of every `finally`/`with` on the way out, one `interrupted: ...` line, exit 130."""
    from align.plumbing.interrupt import exit_interrupted, sigterm_as_interrupt

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with sigterm_as_interrupt():
                return fn(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_EXIT)
        except KeyboardInterrupt:
            exit_interrupted()

    return wrapper
