"""``deployer``: the command line. One error boundary: a ``DeployerError`` becomes a message
and exit 1 (2 for usage errors), in JSON mode one JSON document on stdout; tracebacks only with
``--debug``. Global options (``--settings``, ``--debug``) go before or after the command.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from deployer.config.environments import DEFAULT as DEFAULT_ENVIRONMENT
from deployer.errors import ConfigError, DeployerError, UsageError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """A usage error is a ``UsageError`` (exit 2, and in JSON mode a JSON document), not
    argparse's own exit."""

    def error(self, message: str) -> NoReturn:
        hint = f"`{self.prog} --help` lists what it takes"
        typo = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if typo:  # a command (or a choice) mistyped: the closest one, as git does
            from deployer.names import with_suggestion

            choices = re.findall(r"'([^']*)'", typo.group(2))
            hint = with_suggestion(typo.group(1), choices, hint, prefix=f"{self.prog} "
                                   if self.prog == "deployer" else "")
        raise UsageError(f"{self.prog}: {message}", hint=hint)


def build_parser() -> argparse.ArgumentParser:
    from deployer.cli import (
        bundles,
        cleanup,
        deploy,
        environments,
        history,
        logs,
        package,
        remove,
        run,
        status,
    )

    parser = Parser(
        prog="deployer",
        description="Ship Prefect flows onto Azure: validate, bundle, upload and deploy modules.",
        epilog="example: deployer validate flows/finance && deployer deploy flows/finance")
    parser.add_argument("--version", action="version", version=f"deployer {version()}")
    _global_options(parser, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (bundles, deploy, run, history, environments, status, logs, cleanup, remove,
                   package):
        module.register(sub)
    completion = sub.add_parser("completion", help="print a shell completion script",
                                description="print a shell completion script for bash or zsh")
    completion.add_argument("shell", choices=("bash", "zsh"))
    completion.set_defaults(handler=_completion)
    helps = {a.dest: a.help for a in sub._choices_actions}
    for name, command in sub.choices.items():  # the global options also after the command
        command.description = command.description or helps.get(name)
        command.epilog = command.epilog or f"example: {EXAMPLES[name]}"
        _global_options(command, argparse.SUPPRESS)
        if any("--json" in a.option_strings for a in command._actions):
            command.add_argument("-o", "--output", choices=("json", "table"), default=None,
                                 help="json: one JSON document on stdout (as --json); table: "
                                 "for people (the default)")
    return parser


#: one line a newcomer can copy, per command (shown by `deployer COMMAND --help`)
EXAMPLES = {
    "new": "deployer new risk-report --dir flows",
    "validate": "deployer validate flows/finance --json",
    "bundle": "deployer bundle flows/finance -f finance.tar.gz",
    "upload": "deployer upload flows/finance --wait",
    "deploy": "deployer deploy flows/finance --dry-run",
    "dev": "deployer dev --services (the daily loop: make dev)",
    "run": "deployer run finance/daily-pnl --param day=2026-12-06 --watch",
    "history": "deployer history finance --limit 10",
    "rollback": "deployer rollback finance --to <revision>",
    "promote": "deployer promote finance --to prod --dry-run",
    "approve": "deployer --env prod approve 3f2a9c1e --comment 'checked the dev runs'",
    "reject": "deployer --env prod reject 3f2a9c1e --reason 'not before Monday'",
    "status": "deployer status finance --watch",
    "logs": "deployer logs finance --follow",
    "cleanup": "deployer cleanup --dry-run --all",
    "remove": "deployer remove finance --dry-run",
    "package": "deployer package --list (then: deployer package -f app.zip)",
    "completion": 'eval "$(deployer completion bash)" (in ~/.bashrc; zsh: ~/.zshrc)',
}


def seconds(text: str) -> float:
    """An option's number of seconds: above 0 (``--watch -1`` is refused, not a busy loop)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def count(minimum: int) -> Callable[[str], int]:
    """An option's whole number, at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least {minimum}")
        return value
    return parse


def _completion(args: argparse.Namespace) -> int:
    from deployer.cli.completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return EXIT_OK


def _global_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--settings", type=Path, default=default,
                        help="the local.settings.json to read (the environment wins); default: "
                        "$DEPLOYER_SETTINGS, else the nearest local.settings.json in this folder "
                        "or a parent, as git finds its folder")
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show tracebacks and debug logs")
    parser.add_argument("--env", metavar="ENV", default=default,
                        help="the environment to work in (one of DEPLOYER_ENVIRONMENTS; default: "
                        "$DEPLOYER_ENVIRONMENT, else the first)")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("prefect-collective-deployer")
    except PackageNotFoundError:
        return "unknown (not installed)"


if TYPE_CHECKING:
    from deployer.config import Settings
    from deployer.services import Services


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON, read before (or without) a successful parse."""
    args = list(argv)
    return "--json" in args or "--output=json" in args or "-ojson" in args or any(
        a in ("--output", "-o") and b == "json" for a, b in itertools.pairwise(args))


def main(argv: Sequence[str] | None = None, *,
         services: Callable[[argparse.Namespace], Services] | None = None) -> int:
    """The CLI. ``services``: what builds a command's services from its arguments (the seam:
    tests pass a world of fakes, and run every command in-process); by default the settings
    file and the environment, through ``bootstrap``."""
    from deployer.cli import output

    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = wants_json(argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        args.services_factory = services
        args.settings = getattr(args, "settings", None)
        args.debug = bool(getattr(args, "debug", False))
        if getattr(args, "output", None) is not None:
            args.json = args.output == "json"
        as_json, debug = bool(getattr(args, "json", False)), args.debug
        # the library's log lines are for --debug: people get the command's own output, whose
        # errors say what failed and what to do (a failed step's ERROR line said it twice)
        logging.basicConfig(level=logging.DEBUG if debug else logging.CRITICAL,
                            format="%(levelname)s %(name)s: %(message)s")
        return int(args.handler(args) or EXIT_OK)
    except UsageError as exc:
        output.failure(exc, as_json)
        return EXIT_USAGE
    except DeployerError as exc:
        if debug:
            raise
        output.failure(exc, as_json)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        output.err.print("interrupted")
        return 130


def settings_path(args: argparse.Namespace) -> Path | None:
    """The settings file this command reads (None: the environment alone)."""
    from deployer.settings_file import locate

    if not hasattr(args, "settings_found"):
        args.settings_found = locate(args.settings, os.environ, Path.cwd())
    found: Path | None = args.settings_found
    return found


def services_for(args: argparse.Namespace) -> Services:
    """The services a command works with: the one place the CLI builds them."""
    factory = getattr(args, "services_factory", None)
    if factory is not None:
        built: Services = factory(args)
    else:
        from deployer.bootstrap import build

        built = build(settings(args), interactive=True)
    return in_environment(built, getattr(args, "env", None))


def in_environment(services: Services, name: str | None) -> Services:
    """``--env``'s services; an environment the settings do not name is a usage error that
    lists those they name."""
    if not name:
        return services
    known = services.settings.environments or (DEFAULT_ENVIRONMENT,)
    if name not in known:
        raise UsageError(f"there is no environment {name!r}: the environments are "
                         f"{', '.join(known)}", hint="DEPLOYER_ENVIRONMENTS names them")
    return services if name == DEFAULT_ENVIRONMENT else services.in_environment(name)


def settings(args: argparse.Namespace) -> Settings:
    """The command's settings. Outside a project (no settings file here or above, and none in
    the environment) that is what is said, not the list of every setting that is missing."""
    from deployer.config import Settings

    try:
        return Settings.from_env(environ(args))
    except ConfigError as exc:
        raise _outside_project(args) or exc from None


def one_setting(args: argparse.Namespace, attr: str) -> Any:
    """One setting (``deployer bundle`` needs only the digest key), as ``settings`` says it."""
    from deployer.config import read_one

    try:
        return read_one(environ(args), attr)
    except ConfigError as exc:
        raise _outside_project(args) or exc from None


#: what in the environment alone configures the deployer (Azure's app settings, a CI job)
CONFIGURING = ("DEPLOYER_", "PREFECT_API_URL", "AzureWebJobsStorage")


def _outside_project(args: argparse.Namespace) -> ConfigError | None:
    if settings_path(args) is not None or any(k.startswith(CONFIGURING) for k in os.environ):
        return None
    return ConfigError([], message=f"no local.settings.json found in {Path.cwd()} or above",
                       hint="run the command in your project (`make dev` writes its "
                       "local.settings.json), or pass --settings FILE")


def environ(args: argparse.Namespace) -> dict[str, str]:
    from deployer.settings_file import merged

    return merged(settings_path(args), os.environ)


if __name__ == "__main__":
    sys.exit(main())
