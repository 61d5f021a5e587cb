"""The build_detector lifecycle step: a drift detector fitted on the training reference sample."""
