import pandas as pd
import pytest

from components.ingest.logic import ingest
from mlcycle.data import CHANNELS, fingerprint, make_demo_dataset, read_table
from mlcycle.errors import DataError

pytestmark = pytest.mark.unit


def test_demo_dataset_is_deterministic_and_realistic():
    a, b = make_demo_dataset(5000, seed=3), make_demo_dataset(5000, seed=3)
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(make_demo_dataset(5000, seed=4))
    assert 0.02 <= a["is_fraud"].mean() <= 0.05
    assert set(a["channel"]) <= set(CHANNELS)
    assert a["distance_from_home_km"].isna().any()  # missing values for the imputer
    assert pd.api.types.is_datetime64_any_dtype(a["timestamp"])


def test_demo_dataset_scales_to_a_million_rows():
    frame = make_demo_dataset(1_000_000, seed=1)
    assert len(frame) == 1_000_000


@pytest.mark.parametrize("rows", [999, 0, -5])
def test_demo_dataset_size_is_bounded(rows):
    with pytest.raises(DataError, match="n_rows"):
        make_demo_dataset(rows)


def test_drift_shifts_the_distribution():
    base, drifted = make_demo_dataset(20000, seed=1), make_demo_dataset(20000, seed=1, drift=1.0)
    assert drifted["amount"].median() > 1.5 * base["amount"].median()
    assert drifted["channel"].eq("online").mean() > base["channel"].eq("online").mean() + 0.1


def test_csv_and_parquet_roundtrip_to_same_fingerprint(tmp_path):
    frame = make_demo_dataset(2000, seed=2).drop(columns=["timestamp"])
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    assert fingerprint(read_table(str(tmp_path / "d.parquet"))) == fingerprint(frame)
    assert len(read_table(f"file://{tmp_path / 'd.csv'}")) == 2000


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "data file not found"),
        (lambda p: p.with_suffix(".json").write_text("{}"), "unknown data format '.json'"),
        (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
        (lambda p: p.write_text("a,b,is_fraud\n"), "header but no rows"),
        (lambda p: p.write_text("\n\n"), "no columns"),
    ],
    ids=["missing", "unknown-format", "empty", "header-only", "blank"],
)
def test_bad_files_give_a_clear_error_and_write_nothing(tmp_path, make, message):
    src = tmp_path / "input.csv"
    make(src)
    source = str(src.with_suffix(".json")) if "format" in message else str(src)
    out = tmp_path / "out" / "dataset.parquet"
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        ingest(source, out)
    assert source in str(err.value)  # the error names the file
    assert not (tmp_path / "out").exists()  # nothing written, not even the output directory


def test_unreadable_parquet_is_named(tmp_path):
    src = tmp_path / "broken.parquet"
    src.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError, match="cannot parse .*broken.parquet as parquet"):
        read_table(str(src))


def test_ingest_writes_parquet_and_fingerprint(tmp_path):
    out = tmp_path / "ds"
    result = ingest("demo", out, demo_rows=1500, seed=9)
    assert result.rows == 1500
    assert fingerprint(pd.read_parquet(out)) == result.fingerprint
