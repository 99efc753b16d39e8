"""probes: everything that touches a model's internals (packs, loading, hook sites, activation capture)."""
