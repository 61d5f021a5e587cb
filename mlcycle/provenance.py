"""Where a model came from: library versions and code version."""

import os
import subprocess
from importlib import metadata
from pathlib import Path

from mlcycle import __version__

TRACKED_LIBRARIES = (
    "mlcycle",
    "scikit-learn",
    "xgboost",
    "xgboost-cpu",
    "pandas",
    "numpy",
    "skops",
    "kfp",
    "alibi-detect",
)


def library_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def code_version() -> str:
    """``MLCYCLE_CODE_VERSION`` (baked into images), else the git commit of the checkout, else the package version."""
    if env := os.environ.get("MLCYCLE_CODE_VERSION"):
        return env
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"git:{sha}" + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"mlcycle=={__version__}"
