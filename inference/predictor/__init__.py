"""KServe custom runtime serving an mlcycle model version (V1 + V2, REST + gRPC)."""
