"""Serving: the KServe predictor runtime, the drift detector and the rollout controller."""
