"""Following a registry alias: the part the predictor and the drift detector share.

A server started on ``<registry-uri>#<model>@<alias>`` polls the alias; when it names another version, the
server builds that version aside (``prepare``: download, verify every checksum, deserialize) and then switches
to it in one step (``install``). A version that fails to prepare is reported (``on_failure``) and not retried
until the alias moves again; the server keeps the version it has. ``AliasFollower.check`` is one poll, so it is
tested without threads or sleeps; ``start`` runs it every ``interval_s`` in a daemon thread.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from mlcycle.registry import ModelRef, Registry, open_registry, parse_model_ref

log = logging.getLogger("mlcycle.follow")


def alias_source(source: str) -> ModelRef | None:
    """The reference when ``source`` names an alias (``uri#model@alias``, ``uri#model`` means production); None for
    a fixed version or a directory; RegistryError for a malformed reference."""
    ref = parse_model_ref(source)
    return ref if ref is not None and ref.is_alias else None


class AliasFollower:
    """``prepare(version) -> state`` runs in the caller's thread and must not change what is served;
    ``install(state)`` switches; ``on_failure(version, error)`` hears of a version refused. ``current()`` is the
    version served now."""

    def __init__(
        self,
        source: ModelRef,
        current: Callable[[], str],
        prepare: Callable[[str], Any],
        install: Callable[[Any], None],
        on_failure: Callable[[str, Exception], None] | None = None,
        registry: Registry | None = None,
        logger: logging.Logger | None = None,
    ):
        self.source, self.current, self.prepare, self.install = source, current, prepare, install
        self.on_failure = on_failure
        self.log = logger or log
        self.registry = registry or open_registry(source.registry_uri)
        self.failed: str | None = None  # the version last refused: not tried again until the alias moves on
        self.error = ""  # why, for status pages; empty once a version was installed
        self.failures = 0
        self.last_check: float | None = None
        self._stop = threading.Event()

    def check(self) -> str:
        """One poll: ``unchanged``, ``unreachable`` (the registry could not be read), ``refused`` or ``switched``."""
        self.last_check = time.time()
        try:
            target = self.registry.resolve(self.source.model, self.source.ref)
        except Exception as e:  # the registry is unreachable or the alias gone: keep what is served, try again
            self.log.warning("follow %s: cannot resolve the alias: %s", self.source.ref, e)
            return "unreachable"
        if target == self.current() or target == self.failed:
            return "unchanged"
        try:
            state = self.prepare(target)
        except Exception as e:
            self.failed, self.error, self.failures = target, f"{target}: {type(e).__name__}: {e}", self.failures + 1
            self.log.error("follow %s: %s refused, still serving %s: %s", self.source.ref, target, self.current(), e)
            if self.on_failure is not None:
                self.on_failure(target, e)
            return "refused"
        self.install(state)
        self.failed, self.error = None, ""
        self.log.info("follow %s: now serving %s", self.source.ref, target)
        return "switched"

    def start(self, interval_s: float, name: str = "follow-alias") -> threading.Thread:
        def run():
            while not self._stop.wait(interval_s):
                try:
                    self.check()
                except Exception:  # an install that raised: logged, and the next poll tries again
                    self.log.exception("follow %s: switching failed", self.source.ref)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def status(self) -> dict:
        return {
            "alias": self.source.ref,
            "registry": self.source.registry_uri,
            "last_check": self.last_check,
            "failures": self.failures,
            "error": self.error,
            "refused_version": self.failed,
        }
