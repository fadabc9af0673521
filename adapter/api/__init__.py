"""The HTTP surface: discovery, OpenAPI, health, metric values, Status errors."""
