"""Built-in rule packs."""
