"""``new``, ``validate``, ``bundle``, ``upload``: working with module folders and bundles."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from deployer.bundle import BundleLimits, Module, load_archive, load_folder, pack
from deployer.bundle.digest import short
from deployer.bundle.parts import BLOB_PULL_REQUIREMENT, pulls_from_blob
from deployer.cli import environ, one_setting, seconds
from deployer.cli import settings as cli_settings
from deployer.cli.output import emit_json, out
from deployer.config import MIB, read_one
from deployer.names import module_folder


def register(sub: Any) -> None:
    p = sub.add_parser("new", help="scaffold a module folder that validates")
    p.add_argument("name", help="module name: [a-z][a-z0-9-]{1,30}")
    p.add_argument("--dir", type=Path, default=Path("flows"), help="parent folder (default: flows)")
    p.set_defaults(handler=cmd_new)

    p = sub.add_parser("validate", help="check a module folder or bundle archive; lists every problem")
    p.add_argument("path", type=Path, help="flows/<module> folder, or a .tar.gz / .zip bundle")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("bundle", help="pack a module into a deterministic .tar.gz; prints its digests")
    p.add_argument("path", type=Path, help="flows/<module> folder")
    p.add_argument("-f", "--archive", type=Path, help="archive to write (default: ./<module>.tar.gz)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_bundle)

    p = sub.add_parser("upload", help="validate, bundle and upload a module; the blob trigger "
                                      "takes it from there")
    p.add_argument("path", type=Path, help="flows/<module> folder")
    p.add_argument("--wait", action="store_true",
                   help="follow the request until it finishes (needs the function app or "
                   "`deployer dev` running)")
    p.add_argument("--timeout", type=seconds, default=900.0, help="--wait gives up after this many "
                   "seconds (default 900)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_upload)


def limits(args: argparse.Namespace) -> BundleLimits:
    env = environ(args)
    return BundleLimits(max_bytes=read_one(env, "max_bundle_mb") * MIB,
                        max_entries=read_one(env, "max_bundle_entries"),
                        max_ratio=read_one(env, "max_compression_ratio"))


def cmd_new(args: argparse.Namespace) -> int:
    from deployer.scaffold import create_module

    root = create_module(args.dir, args.name)
    load_folder(root, limits(args))  # what we write must validate
    out.print(f"created {root}: edit flow.py and prefect.yaml, put secrets in .env, then")
    out.print(f"  deployer validate {root}\n  deployer upload {root}")
    return 0


def _summary(module: Module, code_digest: str) -> dict[str, Any]:
    deps = module.dependencies()
    notes = [] if pulls_from_blob((module.root / "requirements.txt").read_bytes()) else [
        f"on Azure, code-only changes deploy the slow way (an image build and an agent rotation): "
        f"add {BLOB_PULL_REQUIREMENT} to requirements.txt so that flow runs can fetch their code "
        "from the deployer's storage"]
    if deps.everything:
        notes.append(f"every file builds the image, so every change rebuilds: {deps.why}")
    notes += module.notes
    return {"module": module.name, "files": len(module.tree.files),
            "bytes": module.tree.total_bytes, "code_digest": code_digest,
            "dependencies": {"digest": deps.digest, "files": list(deps.files), "why": deps.why},
            "env_keys": list(module.env.keys),
            "deployments": [{"name": d.name, "entrypoint": d.entrypoint} for d in module.deployments],
            "notes": notes}


def cmd_validate(args: argparse.Namespace) -> int:
    from deployer.bootstrap import deployment_checker

    path: Path = args.path
    if path.is_dir():
        module = load_folder(path, limits(args), checker=deployment_checker())
        summary = _summary(module, module.code_digest())
    elif path.is_file():
        with tempfile.TemporaryDirectory(prefix="validate-") as work, open(path, "rb") as stream:
            module = load_archive(stream, Path(work), limits(args), label=str(path),
                                  checker=deployment_checker())
            summary = _summary(module, module.code_digest())
    else:
        module_folder(path)  # says what it is, and what it may be a typo of
        raise AssertionError(path)
    if args.json:
        emit_json({"valid": True, **summary})
        return 0
    out.print(f"[green]ok[/]: module [bold]{summary['module']}[/] is valid "
              f"({summary['files']} files, {summary['bytes']} bytes)")
    for deployment in summary["deployments"]:
        out.print(f"  deployment {deployment['name']} -> {deployment['entrypoint']}", markup=False)
    out.print(f"  env keys: {', '.join(summary['env_keys']) or '(none)'}", markup=False)
    out.print(f"  code digest: {summary['code_digest']}", markup=False)
    deps = summary["dependencies"]
    out.print(f"  dependencies ({', '.join(deps['files'])}): {deps['digest'][:19]}", markup=False)
    for note in summary["notes"]:
        out.print(f"note: {note}", markup=False, highlight=False)
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from deployer.bootstrap import deployment_checker

    module_folder(args.path)  # a typo is said before any setting is read
    key = one_setting(args, "config_digest_key")
    module = load_folder(args.path, limits(args), checker=deployment_checker())
    target: Path = args.archive or Path(f"{module.name}.tar.gz")
    partial = target.with_name(target.name + ".partial")
    with open(partial, "wb") as handle:
        packed = pack(module.tree, handle, prefix=module.name)
    partial.replace(target)
    result = {"module": module.name, "archive": str(target), "bytes": packed.archive_bytes,
              "archive_sha256": packed.archive_sha256, "code_digest": packed.code_digest,
              "config_digest": module.config_digest(key.reveal())}
    if args.json:
        emit_json(result)
        return 0
    out.print(f"wrote {target} ({packed.archive_bytes} bytes, {packed.files} files)", markup=False)
    out.print(f"  code digest:   {result['code_digest']}", markup=False)
    out.print(f"  config digest: {result['config_digest']}", markup=False)
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    from deployer.bootstrap import build
    from deployer.cli import in_environment
    from deployer.cli.deploy import _user
    from deployer.cli.follow import follow_request
    from deployer.pipeline.upload import upload_module

    module_folder(args.path)  # a typo is said before any setting is read
    settings = cli_settings(args)
    services = in_environment(build(settings, interactive=True), getattr(args, "env", None))
    uploaded = upload_module(services, args.path, user=_user())
    if args.json and not args.wait:
        emit_json(uploaded)
        return 0
    if not args.json:
        out.print(f"uploaded [bold]{uploaded.module}[/] as {settings.bundles_container}/"
                  f"{uploaded.blob} (code {short(uploaded.code_digest)}, "
                  f"config {short(uploaded.config_digest, 8)})")
        out.print(f"  request id: {uploaded.request_id}", markup=False)
    if not args.wait:
        out.print("  the blob trigger queues the deploy; follow it with `deployer status`",
                  markup=False)
        return 0
    record = follow_request(services, uploaded.module, uploaded.request_id, timeout=args.timeout,
                            quiet=args.json)
    if args.json:
        emit_json(record)
    return 0 if record.status.value in ("succeeded", "noop") else 1
