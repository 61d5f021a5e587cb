"""KFP v2 pipelines composed from the lifecycle components."""
