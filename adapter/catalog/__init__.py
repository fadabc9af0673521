"""The catalog: ScaledObjects and what they depend on, parsed, validated and resolved."""
