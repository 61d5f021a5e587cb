"""The train lifecycle step: plain-Python logic plus its KFP component shim."""
