"""Builders for test modules and hand-crafted (hostile) archives."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

FLOW = '''from prefect import flow


@flow(name="{module}")
def hello(name: str = "world") -> str:
    return f"hello {name}"
'''

PREFECT_YAML = """name: {name}
deployments:
  - name: hello
    entrypoint: flow.py:hello
"""


def module_files(name: str = "demo", changes: dict[str, str | bytes | None] | None = None
                 ) -> dict[str, bytes]:
    """The files of a valid module; ``changes`` replace files, or remove them (None)."""
    files: dict[str, str | bytes] = {
        "requirements.txt": "prefect>=3.4,<4\n",
        "Dockerfile": "FROM prefecthq/prefect:3-python3.11\n"
                      f"COPY flow.py requirements.txt /opt/prefect/flows/{name}/\n",
        ".env": "GREETING=hi\nAPI_TOKEN=s3cr3t-token-value\n",
        "prefect.yaml": PREFECT_YAML.format(name=name),
        "flow.py": FLOW.replace("{module}", name),  # one flow name per module, as Prefect needs
    }
    for path, value in (changes or {}).items():
        if value is None:
            files.pop(path, None)
        else:
            files[path] = value
    return {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}


def write_module(parent: Path, name: str = "demo", files: dict[str, bytes] | None = None) -> Path:
    root = parent / name
    root.mkdir(parents=True)
    for rel, data in (files if files is not None else module_files(name)).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def tar_gz(entries: list[tarfile.TarInfo | tuple[str, bytes]], *, fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """A tar.gz of (name, data) regular files and ready-made TarInfo entries (links, devices)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=fmt, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def module_tar(name: str = "demo", *, prefix: str | None = None,
               changes: dict[str, str | bytes | None] | None = None) -> bytes:
    """A tar.gz of a module under ``prefix/`` (default: the module name; "" for the root)."""
    top = name if prefix is None else prefix
    return tar_gz([(f"{top}/{k}" if top else k, v) for k, v in module_files(name, changes).items()])


def zip_bytes(entries: list[tuple[str | zipfile.ZipInfo, bytes]],
              compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return out.getvalue()
