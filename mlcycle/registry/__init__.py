"""Model registry: immutable, checksummed model versions with atomic aliases (local dir or S3/MinIO)."""

from mlcycle.registry.registry import ALIAS_NAMES, Registry, open_registry

__all__ = ["ALIAS_NAMES", "Registry", "open_registry"]
