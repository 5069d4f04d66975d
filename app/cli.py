"""`flywheel` command line. Each command lives in `app/commands/<module>.py` as a function `command`.

Errors a user can fix (bad flags, missing files, invalid values) print one line to stderr and exit
with code 2; stdout carries only the command's output.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

import click
import typer

# command name -> module defining `command(...)`. Modules import heavy packages inside `command`.
COMMANDS: dict[str, str] = {
    "up": "app.commands.up",
    "create-user": "app.commands.create_user",
    "generate": "app.commands.generate",
    "serve": "app.commands.serve",
    "import-llama2c": "app.commands.import_llama2c",
    "ui": "app.commands.ui",
    "train-demo": "app.commands.train_demo",
    "worker": "app.commands.worker",
    "iterate": "app.commands.iterate",
    "bench": "app.commands.bench",
}

# command group name -> module defining `group` (a typer.Typer of subcommands).
GROUPS: dict[str, str] = {
    "eval-set": "app.commands.eval_set",
    "keys": "app.commands.keys",
}

cli = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Flywheel: an open LLM platform you run yourself.")


class UserError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""


def _register_commands() -> None:
    for name, module in COMMANDS.items():
        command = importlib.import_module(module).command
        cli.command(name, context_settings=getattr(command, "context_settings", None))(command)
    for name, module in GROUPS.items():
        cli.add_typer(importlib.import_module(module).group, name=name)


def main(argv: list[str] | None = None) -> int:
    # Idle OpenMP workers sleep instead of spinning. Read once when torch loads, so set it before any
    # command imports torch; on a shared CPU, spinning workers that lose their core stalled engine
    # steps up to 60x. A value the user exported wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    _register_commands()
    try:
        result = cli(args=argv, standalone_mode=False, prog_name="flywheel")
    except (click.exceptions.Abort, typer.Abort):
        return 130
    # usage errors: unknown flag, missing option, ... (typer >= 0.20 raises its own vendored click's)
    except (click.exceptions.ClickException, typer.exceptions.TyperException) as e:
        print(f"flywheel: error: {e.format_message()}", file=sys.stderr)
        return 2
    except (UserError, ValueError, FileNotFoundError, NotADirectoryError, KeyError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"flywheel: error: {message}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
