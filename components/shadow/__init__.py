"""The shadow lifecycle step: plain-Python logic plus its KFP component shim."""
