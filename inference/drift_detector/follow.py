"""The drift detector following ``registry#model@alias`` (the predictor's ``--follow_s``, the same mlcycle.follow):
the new version is fetched through the one verified loader (every checksum first) and its detector loaded in the
follower's thread while the old one keeps testing windows; then ``DriftService.switch`` swaps them on the event
loop. A version that fails is refused: the old detector stays, ``/status`` says why (``follow.error``) and
``mlcycle_drift_follow_failures_total`` counts it."""

import asyncio
from collections.abc import Callable

from inference.drift_detector.server import DriftService
from inference.loader import materialize
from mlcycle.drift import Backend
from mlcycle.follow import AliasFollower, alias_source
from mlcycle.schema import VersionFiles

SWITCH_TIMEOUT_S = 120.0  # the window under test finishes first; a test takes well under a second


def follow(
    service: DriftService, storage_uri: str, interval_s: float, load: Callable[[VersionFiles], Backend]
) -> AliasFollower | None:
    """Attach a follower to ``service`` (started with it) when ``storage_uri`` names an alias; None otherwise."""
    source = alias_source(storage_uri)
    if source is None or interval_s <= 0:
        return None

    def prepare(version: str) -> tuple[Backend, str]:
        files = materialize(str(source.at(version)))  # raises IntegrityError on any checksum mismatch
        if files.metadata.model != service.model:
            raise ValueError(f"{version} is a version of {files.metadata.model}, not {service.model}")
        return load(files), files.metadata.version

    def install(state: tuple[Backend, str]) -> None:
        loop = service._loop
        if loop is None or not loop.is_running():
            raise RuntimeError("the drift service is not running")
        asyncio.run_coroutine_threadsafe(service.switch(*state), loop).result(SWITCH_TIMEOUT_S)

    service.follower = AliasFollower(source, lambda: service.version, prepare, install, service.follow_failed)
    service.follow_s = interval_s
    return service.follower
