"""``deployer``: the command line. One error boundary: a ``DeployerError`` becomes a message
and exit 1 (2 for usage errors); tracebacks only with ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from deployer.errors import DeployerError, UsageError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    from deployer.cli import bundles, cleanup, deploy, history, logs, status

    parser = argparse.ArgumentParser(
        prog="deployer",
        description="Ship Prefect flows onto Azure: validate, bundle, upload and deploy modules.")
    parser.add_argument("--settings", type=Path, default=Path("local.settings.json"),
                        help="local.settings.json to read settings from (the environment wins; "
                        "default: ./local.settings.json)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (bundles, deploy, history, status, logs, cleanup):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from deployer.cli import output

    try:
        return int(args.handler(args) or EXIT_OK)
    except UsageError as exc:
        output.error(exc)
        return EXIT_USAGE
    except DeployerError as exc:
        if args.debug:
            raise
        output.error(exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        output.err.print("interrupted")
        return 130


def environ(args: argparse.Namespace) -> dict[str, str]:
    from deployer.config import load_local_settings

    return load_local_settings(args.settings, os.environ)


if __name__ == "__main__":
    sys.exit(main())
