"""Authentication (TLS peer certificates, front proxy headers, tokens) and authorization."""
