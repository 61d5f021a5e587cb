"""Canary rollout: the pure policy, the controller loop, the metrics providers and the KServe adapter."""
