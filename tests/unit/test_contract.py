import numpy as np
import pandas as pd
import pytest

from components.validate_data.logic import validate
from mlcycle.contract import check, enforce, infer_contract
from mlcycle.data import make_demo_dataset
from mlcycle.errors import ContractViolation, DataError

pytestmark = pytest.mark.unit


def test_inferred_contract_describes_the_data(demo_frame, contract):
    assert contract.label == "is_fraud" and contract.task == "classification"
    assert contract.classes == [0, 1]
    kinds = {c.name: c.kind for c in contract.columns}
    assert kinds["amount"] == "numeric" and kinds["channel"] == "categorical" and kinds["timestamp"] == "datetime"
    assert "timestamp" not in contract.feature_names
    assert contract.column("distance_from_home_km").max_null_ratio > 0
    assert check(demo_frame, contract) == []


def test_missing_label_column(demo_frame):
    with pytest.raises(DataError, match="label column 'target' not found"):
        infer_contract(demo_frame, "target")


def test_constant_label(demo_frame):
    frame = demo_frame.assign(is_fraud=0)
    with pytest.raises(DataError, match="label column 'is_fraud' is constant"):
        infer_contract(frame, "is_fraud")


def test_nan_in_label(demo_frame):
    frame = demo_frame.astype({"is_fraud": float})
    frame.loc[5, "is_fraud"] = np.nan
    with pytest.raises(DataError, match="label column 'is_fraud' has 1 missing value"):
        infer_contract(frame, "is_fraud")


def test_identifier_column_with_a_million_values_is_refused():
    frame = make_demo_dataset(1_000_000, seed=5)
    frame["card_id"] = np.char.add("card-", np.arange(len(frame)).astype(str))
    with pytest.raises(DataError, match=r"column 'card_id' has 1000000 distinct values .*identifier"):
        infer_contract(frame, "is_fraud")


def test_wrong_dtype_against_contract_names_column_rule_and_value(demo_frame, contract):
    frame = demo_frame.copy()
    frame["amount"] = frame["amount"].astype(str)
    frame.loc[3, "amount"] = "twelve"
    with pytest.raises(ContractViolation) as err:
        enforce(frame, contract)
    message = str(err.value)
    assert "column 'amount'" in message and "rule 'dtype'" in message and "'twelve'" in message


@pytest.mark.parametrize(
    "mutate, column, rule",
    [
        (lambda f: f.drop(columns=["country"]), "country", "column_present"),
        (lambda f: f.assign(amount=f["amount"] * 1000), "amount", "range"),
        (lambda f: f.assign(channel="teleport"), "channel", "allowed_categories"),
        (lambda f: f.assign(hour=np.where(np.arange(len(f)) % 3 == 0, np.nan, f["hour"])), "hour", "max_null_ratio"),
        (lambda f: f.head(50), "*", "min_rows"),
        (lambda f: pd.concat([f.head(10)] * 300, ignore_index=True), "*", "max_duplicate_ratio"),
        (lambda f: f.assign(is_fraud=np.where(np.arange(len(f)) == 0, 7, f["is_fraud"])), "is_fraud", "label_classes"),
    ],
    ids=["missing-column", "range", "unknown-category", "nulls", "too-few-rows", "duplicates", "unknown-class"],
)
def test_contract_breach_names_the_problem(demo_frame, contract, mutate, column, rule):
    breaches = check(mutate(demo_frame.copy()), contract)
    assert any(b.column == column and b.rule == rule for b in breaches), [str(b) for b in breaches]


def test_training_serving_skew_fails_validation(demo_frame, contract):
    drifted = demo_frame.assign(merchant_category="crypto")
    with pytest.raises(
        ContractViolation, match="column 'merchant_category': rule 'allowed_categories' observed 100.00% unseen"
    ):
        validate(drifted, "is_fraud", timestamp="timestamp", reference=contract, reference_version="v1")


def test_validation_report_is_markdown(demo_frame, contract):
    result = validate(demo_frame, "is_fraud", timestamp="timestamp", reference=contract, reference_version="v123")
    assert result.report.startswith("# Data validation")
    assert "v123" in result.report and "| amount | numeric |" in result.report


def test_iso_timestamps_from_csv_are_datetimes_not_categories(demo_frame, tmp_path):
    from mlcycle.data import read_table

    demo_frame.to_csv(tmp_path / "d.csv", index=False)
    contract = infer_contract(read_table(str(tmp_path / "d.csv")), "is_fraud")
    assert contract.column("timestamp").kind == "datetime" and "timestamp" not in contract.feature_names
