"""Decision records: one-off measurements, each kept for what its first line says it decided."""
