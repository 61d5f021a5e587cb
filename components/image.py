"""The one image reference for every pipeline step, resolved when the pipeline is compiled.

Override with ``MLCYCLE_PIPELINE_IMAGE`` at compile time (e.g. your registry and a digest); a
reference without a tag or digest, or with ``:latest``, is refused.
"""

import os

from mlcycle import __version__
from mlcycle.errors import MlcycleError

DEFAULT_PIPELINE_IMAGE = f"ghcr.io/mlcycle/mlcycle-pipeline:{__version__}"


def pipeline_image() -> str:
    image = os.environ.get("MLCYCLE_PIPELINE_IMAGE", DEFAULT_PIPELINE_IMAGE)
    last = image.rsplit("/", 1)[-1]
    if "@sha256:" not in image and (":" not in last or last.endswith(":latest")):
        raise MlcycleError(f"pipeline image {image!r} must be pinned to a tag or digest, never ':latest' or untagged")
    return image


PIPELINE_IMAGE = pipeline_image()
