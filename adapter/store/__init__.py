"""The metric store: cached, single-flight, batched reads of scaler values."""
