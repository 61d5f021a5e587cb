"""Image references per role, resolved when the pipeline is compiled (never at run time).

Override with ``MLCYCLE_PIPELINE_IMAGE`` / ``MLCYCLE_DRIFT_IMAGE`` at compile time (your registry,
ideally a digest); a reference without a tag or digest, or with ``:latest``, is refused. The
pipeline image carries the training stack; the drift image adds alibi-detect (~1 GB), so only the
step that builds the detector pays for it.
"""

import os

from mlcycle import __version__
from mlcycle.errors import ImageError

DEFAULT_IMAGES = {
    "pipeline": f"ghcr.io/mlcycle/mlcycle-pipeline:{__version__}",
    "drift": f"ghcr.io/mlcycle/mlcycle-drift:{__version__}",
}


def image(role: str) -> str:
    ref = os.environ.get(f"MLCYCLE_{role.upper()}_IMAGE", DEFAULT_IMAGES[role])
    last = ref.rsplit("/", 1)[-1]
    if "@sha256:" not in ref and (":" not in last or last.endswith(":latest")):
        raise ImageError(f"{role} image {ref!r} must be pinned to a tag or digest, never ':latest' or untagged")
    return ref


PIPELINE_IMAGE = image("pipeline")
DRIFT_IMAGE = image("drift")
