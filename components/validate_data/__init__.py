"""The validate_data lifecycle step: plain-Python logic plus its KFP component shim."""
