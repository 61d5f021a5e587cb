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
    pipeline, serving, drift, capture, dev = (_lock(n) for n in ("pipeline", "serving", "drift", "capture", "dev"))
    initializer = _lock("storage-initializer")
    assert "alibi-detect" not in pipeline and "alibi-detect" not in serving and "transformers" not in serving
    assert "kserve" not in pipeline and "kfp" not in serving
    assert {"kfp", "alibi-detect", "kserve"} <= set(drift)
    assert "kserve-storage" in serving and "kserve-storage" in drift  # loader.py reads s3:// sources with it
    assert not {"kserve", "kfp", "alibi-detect", "xgboost-cpu", "scikit-learn", "torch"} & set(capture)
    assert "kserve-storage" in initializer and not {"kserve", "mlcycle", "pandas"} & set(initializer)
    assert "xgboost" not in dev and "xgboost-cpu" in dev  # no 470 MB CUDA wheel
    for lock in (pipeline, serving, drift, capture, initializer):  # one version of everything across roles
        for package, version in lock.items():
            assert dev.get(package, version) == version, f"{package}: {version} vs dev {dev.get(package)}"


ROLES = {"pipeline": "pipeline", "drift": "drift", "serving": "serving", "capture": "capture"}


def _stage(text: str, name: str) -> str:
    return re.split(rf"^FROM \S+ AS {re.escape(name)}\n", text, flags=re.M)[1].split("\nFROM ", 1)[0]


def test_dockerfile_targets_are_pinned_and_non_root():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}$", text, re.M)
    assert ":latest" not in text
    for target, lock in ROLES.items():
        assert f"source=requirements/{lock}.lock" in _stage(text, f"{target}-deps")  # installed from its lock only
        section = _stage(text, target)
        assert "USER 65532:65532" in section
        assert re.search(r"--no-deps --compile-bytecode /dist/\*\.whl", section)  # the project, nothing resolved
    initializer = _stage(text, "storage-initializer")
    assert "source=requirements/storage-initializer.lock" in initializer and "USER 1000" in initializer
    assert 'ENTRYPOINT ["/storage-initializer/scripts/initializer-entrypoint"]' in initializer


def test_compiled_images_match_dockerfile_targets():
    """Each step of the compiled pipeline runs an image `make images` (scripts/build-images.sh) builds from a target:
    ghcr.io/mlcycle/mlcycle-<target>:<version>; only the detector step pays for the drift image."""
    import yaml

    from mlcycle import __version__

    spec = next(yaml.safe_load_all((ROOT / "tests" / "golden" / "mlcycle-training.yaml").read_text()))
    images = {name: e["container"]["image"] for name, e in spec["deploymentSpec"]["executors"].items()}
    targets = set(re.findall(r"^FROM \S+ AS (\w+)$", (ROOT / "Dockerfile").read_text(), re.M))
    build = (ROOT / "scripts" / "build-images.sh").read_text()
    built = re.findall(r"(\w[\w-]*):\d+", re.search(r"^BUDGETS=\(([^)]*)\)", build, re.M).group(1))
    for name, ref in images.items():
        m = re.fullmatch(rf"ghcr\.io/mlcycle/mlcycle-(\w+):{re.escape(__version__)}", ref)
        assert m and m.group(1) in targets and m.group(1) in built, (name, ref, targets, built)
    assert images.pop("exec-build-detector").split(":")[0].endswith("mlcycle-drift")
    assert {ref.split(":")[0] for ref in images.values()} == {"ghcr.io/mlcycle/mlcycle-pipeline"}


def test_every_test_file_carries_its_tiers_marker():
    """tests/<tier>/ holds the tests marked <tier>, and the tiers are the markers pyproject.toml declares."""
    import tomllib

    pytest_ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    declared = {m.split(":")[0] for m in pytest_ini["markers"]}
    tiers = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and list(p.glob("test_*.py"))}
    assert tiers == declared
    for path in (ROOT / "tests").glob("*/test_*.py"):
        marks = re.findall(r"^pytestmark = pytest\.mark\.(\w+)$", path.read_text(), re.M)
        assert marks == [path.parent.name], f"{path.relative_to(ROOT)}: marked {marks}, lives in {path.parent.name}/"


def test_the_drift_image_carries_the_pipeline_its_kfp_hook_submits():
    import re

    stage = _stage((ROOT / "Dockerfile").read_text(), "drift")
    assert re.search(r"python -m pipelines\.compile --out /app/pipelines", stage)
    main = (ROOT / "inference" / "drift_detector" / "__main__.py").read_text()
    assert '"/app/pipelines/mlcycle-training.yaml"' in main  # the hook's default package is what the stage writes
    import tempfile

    from pipelines.compile import compile_all

    with tempfile.TemporaryDirectory() as tmp:
        assert "mlcycle-training.yaml" in {p.name for p in compile_all(Path(tmp))}
