"""The services' published REST contracts (../shared/azure-specs), used to keep the fake honest:
an operation is found by method and path, its api-version must be the spec's, and its JSON body
is validated against the spec's schema (required properties, types, enums, discriminated
subtypes) the way the service validates it, so the fake accepts only what Azure accepts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SHARED_SPECS = Path(__file__).resolve().parents[4] / "shared" / "azure-specs"
VENDORED_SPECS = Path(__file__).resolve().parents[2] / "data" / "azure-specs"


def spec_path(relative: str) -> Path:
    """``../shared/azure-specs/<relative>`` when the shared folder is beside the checkout, else
    the byte-identical copy in tests/data/azure-specs (a test keeps the two equal)."""
    shared = SHARED_SPECS / relative
    return shared if shared.is_file() else VENDORED_SPECS / relative


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str
    regex: re.Pattern[str]
    spec: dict[str, Any]
    body_schema: dict[str, Any] | None


class Swagger:
    def __init__(self, relative: str) -> None:
        path = spec_path(relative)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the fake Azure needs the published specs")
        self.doc = json.loads(path.read_text())
        self.version = self.doc["info"]["version"]
        self.definitions: dict[str, Any] = self.doc.get("definitions", {})
        self.parameters: dict[str, Any] = self.doc.get("parameters", {})
        paths = {**self.doc.get("paths", {}), **self.doc.get("x-ms-paths", {})}
        self.operations: list[Operation] = []
        for template, item in paths.items():
            regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template.split("?")[0]))
                               + "/?$", re.IGNORECASE)
            for method, op in item.items():
                if method == "parameters":
                    continue
                params = [self._param(p) for p in (*item.get("parameters", []), *op.get("parameters", []))]
                body = next((p.get("schema") for p in params if p.get("in") == "body"), None)
                self.operations.append(Operation(op["operationId"], method.upper(), template, regex, op, body))

    def _param(self, param: dict[str, Any]) -> dict[str, Any]:
        ref = param.get("$ref", "")
        if ref.startswith("#/parameters/"):
            return self.parameters.get(ref.rsplit("/", 1)[1], {})
        return param

    def find(self, method: str, path: str) -> Operation | None:
        for op in self.operations:
            if op.method == method and op.regex.match(path):
                return op
        return None

    def validate(self, op: Operation, body: Any) -> list[str]:
        if op.body_schema is None:
            return []
        errors: list[str] = []
        self._check(op.body_schema, body, "body", errors)
        return errors

    # -- a small JSON-schema checker for the swagger 2.0 subset ARM specs use -------------------

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        while "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/definitions/"):
                return None  # a common-types file we do not have: anything goes
            schema = self.definitions[ref.rsplit("/", 1)[1]]
        return schema

    def _properties(self, schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        props: dict[str, Any] = dict(schema.get("properties", {}))
        required: list[str] = list(schema.get("required", []))
        for part in schema.get("allOf", []):
            resolved = self._resolve(part)
            if resolved is not None:
                more, req = self._properties(resolved)
                props.update(more)
                required += req
        return props, required

    def _subtype(self, schema: dict[str, Any], value: dict[str, Any]) -> dict[str, Any] | None:
        field = schema.get("discriminator")
        if not field or field not in value:
            return schema
        wanted = value[field]
        for name, definition in self.definitions.items():
            tag = definition.get("x-ms-discriminator-value", name)
            if tag == wanted and any(p.get("$ref", "").endswith(f"/{self._name(schema)}")
                                     for p in definition.get("allOf", [])):
                return definition
        return schema if wanted == self._name(schema) else None

    def _name(self, schema: dict[str, Any]) -> str:
        return next((n for n, d in self.definitions.items() if d is schema), "")

    def _check(self, schema: dict[str, Any], value: Any, where: str, errors: list[str]) -> None:
        resolved = self._resolve(schema)
        if resolved is None:
            return
        schema = resolved
        if isinstance(value, dict) and schema.get("discriminator"):
            sub = self._subtype(schema, value)
            if sub is None:
                errors.append(f"{where}.{schema['discriminator']}: unknown type {value.get(schema['discriminator'])!r}")
                return
            schema = sub
        kind = schema.get("type") or ("object" if "properties" in schema or "allOf" in schema else None)
        if not _is_type(kind, value):
            errors.append(f"{where}: expected {kind}, got {type(value).__name__}")
            return
        if "enum" in schema and not schema.get("x-ms-enum", {}).get("modelAsString", False):
            allowed = {str(e).lower() for e in schema["enum"]}
            if str(value).lower() not in allowed:
                errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
        if kind == "array":
            for index, item in enumerate(value):
                self._check(schema.get("items", {}), item, f"{where}[{index}]", errors)
        if isinstance(value, dict):
            props, required = self._properties(schema)
            for name in required:
                prop = self._resolve(props.get(name, {})) or {}
                if name not in value and not prop.get("readOnly"):
                    errors.append(f"{where}.{name}: required")
            for name, item in value.items():
                if name in props:
                    self._check(props[name], item, f"{where}.{name}", errors)
                elif isinstance(schema.get("additionalProperties"), dict):
                    self._check(schema["additionalProperties"], item, f"{where}.{name}", errors)


def _is_type(kind: str | None, value: Any) -> bool:
    if kind is None:
        return True
    return {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }.get(kind, True)


@cache
def spec(relative: str) -> Swagger:
    return Swagger(relative)
