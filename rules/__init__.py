"""Rules: the registry, the engine and the packs that judge records (pure, no I/O)."""
