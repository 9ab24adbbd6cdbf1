"""Shared machinery of the benchmarks in benches/, one job per module (see benches/README.md)."""
