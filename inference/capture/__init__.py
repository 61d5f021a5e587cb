"""Traffic capture and late labels (see mlcycle.capture for the storage layout)."""
