"""Model registry: immutable, checksummed model versions with atomic aliases (local dir or S3/MinIO)."""

from mlcycle.registry.registry import (
    ALIAS_NAMES,
    REF_FORMAT,
    ModelRef,
    Registry,
    local_registry_path,
    open_registry,
    parse_model_ref,
)

__all__ = [
    "ALIAS_NAMES",
    "REF_FORMAT",
    "ModelRef",
    "Registry",
    "local_registry_path",
    "open_registry",
    "parse_model_ref",
]
