"""One exception root for the project; every module raises a specific subclass."""


class MlcycleError(Exception):
    """Root of every error mlcycle raises on purpose."""


class DataError(MlcycleError):
    """Input data cannot be read or is unusable (missing file, unknown format, empty, bad label)."""


class ContractViolation(DataError):
    """Data breaches its data contract. ``breaches`` lists (column, rule, observed, allowed)."""

    def __init__(self, breaches: list["Breach"]):
        self.breaches = breaches
        lines = "; ".join(str(b) for b in breaches)
        super().__init__(f"data contract breached ({len(breaches)} rule(s)): {lines}")


class Breach:
    """One failed rule of a data contract."""

    __slots__ = ("column", "rule", "observed", "allowed")

    def __init__(self, column: str, rule: str, observed: object, allowed: object):
        self.column, self.rule, self.observed, self.allowed = column, rule, observed, allowed

    def __str__(self) -> str:
        observed = self.observed if isinstance(self.observed, str) else repr(self.observed)
        return f"column '{self.column}': rule '{self.rule}' observed {observed}, allowed {self.allowed}"

    def as_dict(self) -> dict:
        return {
            "column": self.column,
            "rule": self.rule,
            "observed": _plain(self.observed),
            "allowed": _plain(self.allowed),
        }


def _plain(value: object) -> object:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class ModelError(MlcycleError):
    """A model cannot be trained, saved or loaded."""


class IntegrityError(ModelError):
    """A stored file does not match its recorded sha256, or a file is not allowed to be loaded."""


class FormatError(ModelError):
    """A version file (metadata.json, bundle.json) does not match its schema: an unknown key, a missing or
    mistyped field, or a ``format_version`` newer than this code reads."""


class RegistryError(MlcycleError):
    """The model registry refused an operation."""


class ObjectNotFound(RegistryError):
    """The object store has no object under the key (the registry says which version is meant: VersionNotFound)."""


class VersionNotFound(RegistryError):
    """The named model, version or alias does not exist."""


class AliasConflict(RegistryError):
    """An alias moved since it was read (optimistic concurrency): re-read and retry."""


class ProtectedVersion(RegistryError):
    """The version is behind a protected alias (production) and cannot be deleted or overwritten."""


class StorageUnavailable(RegistryError):
    """The object store cannot be reached (after retries)."""


class ConfigError(ModelError):
    """A run's options are invalid (so no model can be trained): unknown family, metric, task or threshold policy,
    or a threshold on a metric the task lacks."""


class DriftError(MlcycleError):
    """A drift detector cannot be built or loaded (e.g. an unknown backend)."""


class ImageError(MlcycleError):
    """A container image reference is unsafe to deploy: not pinned to a tag or digest."""


class ToolMissing(MlcycleError):
    """An external program the command needs (MinIO, Prometheus) is not installed."""


class ProcessError(MlcycleError):
    """A local server process exited early or did not answer its health check in time."""


class PipelineError(MlcycleError):
    """A local pipeline run failed or left no result."""
