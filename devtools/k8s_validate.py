"""Validate rendered manifests against real schemas, without a cluster.

- Kubernetes core/apps/batch/rbac objects: the Kubernetes Python client's models, generated from
  the Kubernetes OpenAPI spec (field names and types; unknown fields are errors).
- KServe objects: the ``openAPIV3Schema`` of KServe's CRDs, taken from the kserve Go module of the
  pinned release (``go mod download``: served by the Go module proxy, cached in GOMODCACHE, never
  committed). Unknown fields are errors (the API server would silently prune them — the classic
  way a typo in ``canaryTrafficPercent`` goes unnoticed).
"""

import json
import re
import subprocess
from pathlib import Path

import yaml

from mlcycle.errors import MlcycleError

KSERVE_MODULE_VERSION = "v0.20.0"
CRD_FILES = ("serving.kserve.io_inferenceservices.yaml",)


class ManifestError(MlcycleError):
    pass


def kserve_crd_schemas(version: str = KSERVE_MODULE_VERSION) -> dict[tuple[str, str], dict]:
    """{(apiVersion, kind): openAPIV3Schema} from the kserve module's config/crd/full/."""
    try:
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"github.com/kserve/kserve@{version}"],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise ManifestError(f"cannot fetch the kserve module {version} with `go mod download`: {e}") from e
    root = Path(json.loads(out.stdout)["Dir"]) / "config" / "crd" / "full"
    schemas = {}
    for name in CRD_FILES:
        crd = yaml.safe_load((root / name).read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            schemas[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]
    return schemas


def validate_schema(value, schema: dict, path: str = "") -> list[str]:
    """Structural OpenAPI v3 validation, strict about unknown fields."""
    errors: list[str] = []
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            errors.append(f"{path}: expected int or string, got {type(value).__name__}")
        return errors
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return errors
    kind = schema.get("type")
    checks = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind in checks and not isinstance(value, checks[kind]):
        return [f"{path or '/'}: expected {kind}, got {type(value).__name__} {value!r:.40}"]
    if kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
        return [f"{path}: expected integer, got {value!r:.40}"]
    if kind == "number" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        return [f"{path}: expected number, got {value!r:.40}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > maximum {schema['maximum']}")
    if kind == "object" or isinstance(value, dict):
        props = schema.get("properties")
        for req in schema.get("required", []):
            if req not in value:
                errors.append(f"{path}: missing required field '{req}'")
        for key, item in value.items():
            if props is not None and key in props:
                errors += validate_schema(item, props[key], f"{path}/{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += validate_schema(item, schema["additionalProperties"], f"{path}/{key}")
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields") and path != "/metadata":
                errors.append(f"{path}/{key}: unknown field (not in the schema)")
    if kind == "array":
        for i, item in enumerate(value):
            errors += validate_schema(item, schema.get("items", {}), f"{path}[{i}]")
    return errors


# --------------------------------------------------------------------- Kubernetes built-in types
_MODEL_PREFIX = {
    "v1": "V1",
    "apps/v1": "V1",
    "batch/v1": "V1",
    "rbac.authorization.k8s.io/v1": "V1",
    "policy/v1": "V1",
    "networking.k8s.io/v1": "V1",
    "autoscaling/v2": "V2",
}


def _model_class(api_version: str, kind: str):
    from kubernetes import client

    prefix = _MODEL_PREFIX.get(api_version)
    cls = getattr(client, f"{prefix}{kind}", None) if prefix else None
    if cls is None:
        raise ManifestError(f"no schema known for {api_version} {kind}")
    return cls


def validate_model(value, type_name: str, path: str) -> list[str]:
    from kubernetes import client

    if type_name in ("object",):  # IntOrString, Quantity, RawExtension
        return []
    if m := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [e for i, v in enumerate(value) for e in validate_model(v, m.group(1), f"{path}[{i}]")]
    if m := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {type(value).__name__}"]
        return [e for k, v in value.items() for e in validate_model(v, m.group(1), f"{path}/{k}")]
    primitives = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str}
    if type_name in primitives:
        ok = isinstance(value, primitives[type_name]) and not (type_name == "int" and isinstance(value, bool))
        return [] if ok else [f"{path}: expected {type_name}, got {type(value).__name__} {value!r:.40}"]
    cls = getattr(client, type_name, None)
    if cls is None:
        return [f"{path}: unknown schema type {type_name}"]
    if not isinstance(value, dict):
        return [f"{path}: expected {type_name} object, got {type(value).__name__}"]
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    errors = []
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append(f"{path}/{key}: unknown field of {type_name}")
            continue
        errors += validate_model(item, cls.openapi_types[attr], f"{path}/{key}")
    return errors


def validate_documents(docs: list[dict], crd_schemas: dict) -> list[str]:
    errors = []
    for doc in docs:
        api, kind, name = doc.get("apiVersion", ""), doc.get("kind", ""), doc.get("metadata", {}).get("name", "?")
        where = f"{kind}/{name}"
        if (api, kind) in crd_schemas:
            errors += [f"{where}: {e}" for e in validate_schema(doc, crd_schemas[(api, kind)])]
        else:
            try:
                cls = _model_class(api, kind)
            except ManifestError as e:
                errors.append(f"{where}: {e}")
                continue
            errors += [f"{where}: {e}" for e in validate_model(doc, cls.__name__, "")]
    return errors


def render(kustomization_dir: Path) -> list[dict]:
    """``kubectl kustomize`` the directory; returns the documents."""
    try:
        out = subprocess.run(
            ["kubectl", "kustomize", str(kustomization_dir)], capture_output=True, text=True, timeout=120
        )
    except OSError as e:
        raise ManifestError("kubectl not found: install kubectl (it embeds kustomize)") from e
    if out.returncode != 0:
        raise ManifestError(f"kustomize failed for {kustomization_dir}: {out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]
