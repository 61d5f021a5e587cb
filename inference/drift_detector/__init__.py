"""Drift detection on the predictor's payload log (KServe CloudEvents), alibi-detect or scipy."""
