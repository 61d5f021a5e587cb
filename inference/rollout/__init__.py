"""Canary rollout: a pure policy, metrics providers, and adapters for KServe and for the local loop."""
