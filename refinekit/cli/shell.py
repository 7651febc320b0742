"""What every ``refinekit`` command shares: the console, exit codes, one-paragraph errors, its own command line.

Every :class:`RefinekitError` becomes one paragraph on stderr and exit code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import errno
import functools
import shlex
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from refinekit.errors import RefinekitError

console = Console(stderr=True)
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return command(*args, **kwargs)
        except RefinekitError as exc:
            if debug:
                raise
            # escape(): file names and values in messages may contain [brackets] that rich reads as markup
            console.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:  # Ctrl-C outside the training loop, or a second one inside it
            if debug:
                raise
            console.print("Interrupted.", highlight=False)
            sys.exit(EXIT_INTERRUPTED)
        except OSError as exc:
            if debug or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            where = f" while writing {exc.filename}" if exc.filename else ""
            message = (
                f"no space left on the device{where} ({exc.strerror}). What was finished is kept (checkpoints, "
                "refined shards); free some space, then rerun the same command (add --resume to continue a run)."
            )
            console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_USAGE)

    return wrapper


def _show_warnings(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    console.print(f"[yellow]Warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def show_warnings(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    console.print(f"[yellow]Warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def command_line(words: list[str], skip: Iterable[str] = ()) -> str:
    """``words`` plus the current command's parameters, as a shell line (for reports and resume hints)."""
    ctx = click.get_current_context()
    words = list(words)
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in skip or value is None or value is False or value == ():
            continue
        if isinstance(param, click.Argument):
            words.append(str(value))
        elif isinstance(param, click.Option) and param.is_flag:
            words.append(param.opts[0])
        else:
            for item in value if isinstance(value, tuple) else (value,):
                words += [param.opts[0], str(item)]
    return shlex.join(words)
