"""What can be checked of the images and lock files without a Docker engine."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def _lock(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / f"{name}.lock").read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line):
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_role_locks_carry_only_their_role():
    pipeline, serving, drift, dev = (_lock(n) for n in ("pipeline", "serving", "drift", "dev"))
    assert "alibi-detect" not in pipeline and "alibi-detect" not in serving and "transformers" not in serving
    assert "kserve" not in pipeline and "kfp" not in serving
    assert {"kfp", "alibi-detect", "kserve"} <= set(drift)
    assert "xgboost" not in dev and "xgboost-cpu" in dev  # no 470 MB CUDA wheel
    for lock in (pipeline, serving, drift):  # one version of everything across roles
        for package, version in lock.items():
            assert dev.get(package, version) == version, f"{package}: {version} vs dev {dev.get(package)}"


def test_dockerfile_targets_are_pinned_and_non_root():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+", text)
    assert ":latest" not in text
    for target, lock in (("pipeline", "pipeline"), ("drift", "drift"), ("serving", "serving")):
        section = text.split(f" AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert f"COPY requirements/{lock}.lock" in section
        assert "USER 65532:65532" in section
        assert "pip install" not in section.replace("uv pip install --system --no-cache", "")


def test_compiled_images_match_dockerfile_targets():
    from components.image import DEFAULT_IMAGES

    assert set(DEFAULT_IMAGES) == {"pipeline", "drift"}
    text = (ROOT / "Dockerfile").read_text()
    for role in DEFAULT_IMAGES:
        assert f" AS {role}\n" in text
