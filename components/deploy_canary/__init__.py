"""The deploy_canary lifecycle step: roll a registered version out as a KServe canary."""
