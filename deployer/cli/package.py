"""``package``: build the function app's zip as `func ... publish` and `azd deploy` would."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from deployer.cli.output import emit_json, out
from deployer.errors import DeployerError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "package", help="build the function app's zip (what publishing ships, .funcignore "
        "honoured) and check it holds no virtualenv, node_modules, tests, settings or .env")
    p.add_argument("--root", type=Path, default=Path("."), help="the app's folder (default: .)")
    p.add_argument("-f", "--file", dest="out", type=Path, default=Path("function-app.zip"),
                   help="where to write the zip (default: function-app.zip)")
    p.add_argument("--list", action="store_true", help="list the files; write nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_package)


def cmd_package(args: argparse.Namespace) -> int:
    from deployer.packaging import forbidden, package_files, write_package

    root = args.root.resolve()
    package = package_files(root)
    bad = forbidden(package)
    if bad:
        lines = "\n".join(f"  - {b}" for b in bad)
        raise DeployerError(f"the function app's package would ship what it must not:\n{lines}",
                            hint=f"list them in {root / '.funcignore'} (gitignore syntax)")
    if not args.list:
        package = write_package(root, args.out)
    if args.json:
        emit_json({**package.to_dict(), "out": None if args.list else str(args.out)})
        return 0
    if args.list:
        for rel in package.files:
            out.print(rel, markup=False, highlight=False)
    size = f", zip {package.zip_bytes / 1024:.0f} KiB -> {args.out}" if package.zip_bytes else ""
    out.print(f"{len(package.files)} files, {package.bytes / 1024:.0f} KiB{size}", markup=False)
    return 0
