"""Reading tabular data and generating the bundled demo dataset.

The demo dataset is a deterministic, seeded synthetic card-transaction fraud table: numeric and
categorical features, a timestamp, missing values, ~3 % positives. The same (n_rows, seed,
drift) always gives the same bytes, so its fingerprint is stable and caching works.
"""

from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from mlcycle import defaults
from mlcycle.errors import DataError

DEMO_LABEL = "is_fraud"
DEMO_TIMESTAMP = "timestamp"
# What a client sends for the demo model (every column but the label and the timestamp), and one such row.
DEMO_FEATURES = [
    "amount",
    "hour",
    "card_age_days",
    "distance_from_home_km",
    "txn_count_24h",
    "avg_amount_30d",
    "is_foreign",
    "merchant_category",
    "channel",
    "country",
]
DEMO_ROW = {
    "amount": 42.5,
    "hour": 13,
    "card_age_days": 400,
    "distance_from_home_km": 3.2,
    "txn_count_24h": 2,
    "avg_amount_30d": 40.0,
    "is_foreign": 0,
    "merchant_category": "grocery",
    "channel": "pos",
    "country": "KR",
}
DEMO_SEGMENT = "channel"
MERCHANT_CATEGORIES = [
    "grocery",
    "fuel",
    "restaurant",
    "travel",
    "electronics",
    "fashion",
    "gaming",
    "pharmacy",
    "utilities",
    "jewelry",
]
CHANNELS = ["pos", "online", "atm", "contactless"]
COUNTRIES = ["KR", "US", "JP", "DE", "GB", "FR", "CN", "BR"]
MIN_DEMO_ROWS, MAX_DEMO_ROWS = 1_000, 20_000_000
SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")
DEMO_SOURCES = ("", "demo")  # a source naming the bundled demo data


def make_demo_dataset(
    n_rows: int = defaults.DEMO_ROWS, seed: int = defaults.SEED, drift: float = 0.0, pattern: float = 0.0
) -> pd.DataFrame:
    """Synthetic card transactions with an ``is_fraud`` label (~3 % positives).

    Args:
        n_rows: number of rows, 1k to 20M.
        seed: random seed; the output is a pure function of (n_rows, seed, drift).
        drift: 0 for the reference distribution; > 0 shifts amounts, hours and the channel mix
            (used to exercise drift detection and retraining).
        pattern: 0 for the reference fraud pattern; > 0 a new one (concept drift): more grocery and
            pharmacy purchases, paid contactless, and fraud among them, which a model trained on the
            reference pattern does not know (its online accuracy falls; a retrain learns it).
    """
    if not MIN_DEMO_ROWS <= n_rows <= MAX_DEMO_ROWS:
        raise DataError(f"demo dataset size n_rows={n_rows} is outside [{MIN_DEMO_ROWS}, {MAX_DEMO_ROWS}]")
    rng = np.random.default_rng(seed)
    n = n_rows
    merchant_p = np.array([0.22, 0.12, 0.16, 0.06, 0.08, 0.1, 0.05, 0.09, 0.08, 0.04])
    if pattern:
        merchant_p = merchant_p + pattern * np.array([0.12, -0.03, -0.03, -0.01, -0.02, -0.02, 0.0, 0.1, -0.01, 0.0])
        merchant_p = np.clip(merchant_p, 0.01, None) / np.clip(merchant_p, 0.01, None).sum()
    merchant = rng.choice(len(MERCHANT_CATEGORIES), size=n, p=merchant_p)
    channel_p = np.array([0.45, 0.3, 0.1, 0.15])
    if pattern:
        channel_p = channel_p + pattern * np.array([-0.15, 0.0, 0.0, 0.15])
    if drift:
        channel_p = channel_p + drift * np.array([-0.25, 0.3, 0.0, -0.05])
        channel_p = np.clip(channel_p, 0.01, None)
        channel_p /= channel_p.sum()
    channel = rng.choice(len(CHANNELS), size=n, p=channel_p)
    country = rng.choice(len(COUNTRIES), size=n, p=[0.55, 0.12, 0.08, 0.06, 0.06, 0.05, 0.05, 0.03])
    amount = np.round(rng.lognormal(mean=3.6 + 0.8 * drift, sigma=1.1, size=n), 2)
    hour = (rng.normal(14 + 4 * drift, 5, size=n).round() % 24).astype(np.int64)
    card_age_days = rng.gamma(2.0, 400.0, size=n).round().astype(np.int64)
    distance_km = rng.exponential(12.0, size=n)
    txn_count_24h = rng.poisson(3.0, size=n).astype(np.int64)
    avg_amount_30d = np.round(amount * rng.lognormal(0.0, 0.35, size=n), 2)
    is_foreign = (country != 0).astype(np.int64)

    logit = (
        -8.6
        + 2.4 * np.log1p(amount / avg_amount_30d)
        + 1.8 * (channel == 1)
        + 1.2 * (channel == 2)
        + 2.2 * np.isin(merchant, [4, 6, 9])
        + 1.7 * is_foreign
        + 2.6 * ((hour <= 4) | (hour >= 23))
        - 0.9 * np.log1p(card_age_days / 365.0)
        + 0.06 * np.minimum(distance_km, 80)
        + 0.6 * np.maximum(txn_count_24h - 4, 0)
        + pattern * 4.5 * ((channel == 3) & np.isin(merchant, [0, 7]))
    )
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    start = np.datetime64("2026-01-01T00:00:00")
    seconds = np.sort(rng.integers(0, 180 * 86400, size=n))
    distance_km[rng.random(n) < 0.02] = np.nan  # GPS unavailable: exercised by the imputer
    frame = pd.DataFrame(
        {
            "amount": amount,
            "hour": hour,
            "card_age_days": card_age_days,
            "distance_from_home_km": np.round(distance_km, 3),
            "txn_count_24h": txn_count_24h,
            "avg_amount_30d": avg_amount_30d,
            "is_foreign": is_foreign,
            "merchant_category": pd.Series(np.asarray(MERCHANT_CATEGORIES, dtype=object)[merchant]),
            "channel": pd.Series(np.asarray(CHANNELS, dtype=object)[channel]),
            "country": pd.Series(np.asarray(COUNTRIES, dtype=object)[country]),
            DEMO_TIMESTAMP: start + seconds.astype("timedelta64[s]"),
            DEMO_LABEL: label,
        }
    )
    return frame


def read_table(source: str, storage_options: dict | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet table from a local path, ``file://`` or ``s3://`` URI.

    Raises:
        DataError: the file is missing, empty, unreadable or of an unknown format; the message
            names the source.
    """
    parsed = urlparse(source)
    suffix = Path(parsed.path).suffix.lower()
    if parsed.scheme in ("", "file") and Path(parsed.path if parsed.scheme == "file" else source).is_dir():
        raise DataError(f"data source {source!r} is a directory; give one .csv or .parquet file")
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"unknown data format '{suffix or '(no extension)'}' for {source!r}; expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if parsed.scheme == "s3":
        return _read_s3(source, suffix, storage_options)
    if parsed.scheme not in ("", "file"):
        raise DataError(f"unsupported URI scheme '{parsed.scheme}' in {source!r}; use a local path, file:// or s3://")
    path = Path(parsed.path if parsed.scheme == "file" else source)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"data file is empty (0 bytes): {path}")
    with open(path, "rb") as fh:
        return _parse(fh, suffix, str(path))


def _parse(fh, suffix: str, name: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(fh) if suffix == ".csv" else pd.read_parquet(fh)
    except pd.errors.EmptyDataError as e:
        raise DataError(f"data file has no columns: {name}") from e
    except Exception as e:  # parser errors differ per engine; all mean "unreadable"
        raise DataError(f"cannot parse {name} as {suffix.lstrip('.')}: {e}") from e
    if frame.empty:
        raise DataError(f"data file has a header but no rows: {name}")
    return frame


def _read_s3(source: str, suffix: str, storage_options: dict | None) -> pd.DataFrame:
    import io

    from mlcycle.errors import RegistryError
    from mlcycle.registry.s3 import client_from_env

    parsed = urlparse(source)
    try:
        client = client_from_env(**(storage_options or {}))
    except RegistryError as e:
        raise DataError(f"cannot read {source}: {e}") from e
    key = parsed.path.lstrip("/")
    try:
        response = client.get_object(parsed.netloc, key)
        try:
            body = response.read()
        finally:
            response.close()
            response.release_conn()
    except Exception as e:
        raise DataError(f"cannot read {source}: {e}") from e
    if not body:
        raise DataError(f"data file is empty (0 bytes): {source}")
    return _parse(io.BytesIO(body), suffix, source)


def fingerprint(frame: pd.DataFrame) -> str:
    """Content sha256 of a table: column names, dtypes and values, independent of file format."""
    import hashlib

    digest = hashlib.sha256()
    datetimes = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    if datetimes:  # Parquet and CSV round-trips change the time unit, not the content
        frame = frame.astype({c: "datetime64[ns]" for c in datetimes})
    digest.update("|".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items()).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
