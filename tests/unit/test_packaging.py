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
    """Each step of the compiled pipeline runs an image scripts/kind-up.sh builds from a Dockerfile target:
    ghcr.io/mlcycle/mlcycle-<target>:<version>; only the detector step pays for the drift image."""
    import yaml

    from mlcycle import __version__

    spec = next(yaml.safe_load_all((ROOT / "tests" / "golden" / "mlcycle-training.yaml").read_text()))
    images = {name: e["container"]["image"] for name, e in spec["deploymentSpec"]["executors"].items()}
    targets = set(re.findall(r"^FROM \S+ AS (\w+)$", (ROOT / "Dockerfile").read_text(), re.M))
    kind_up = (ROOT / "scripts" / "kind-up.sh").read_text()
    built = re.search(r"^for target in ([\w ]+); do$", kind_up, re.M).group(1).split()
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

    stage = (ROOT / "Dockerfile").read_text().split("FROM base AS drift", 1)[1].split("\nFROM ", 1)[0]
    assert re.search(r"python -m pipelines\.compile --out /app/pipelines", stage)
    main = (ROOT / "inference" / "drift_detector" / "__main__.py").read_text()
    assert '"/app/pipelines/mlcycle-training.yaml"' in main  # the hook's default package is what the stage writes
    import tempfile

    from pipelines.compile import compile_all

    with tempfile.TemporaryDirectory() as tmp:
        assert "mlcycle-training.yaml" in {p.name for p in compile_all(Path(tmp))}
