"""external and external-push: KEDA's gRPC external scaler protocol (`externalscaler.proto`)."""
