"""Benchmarks: loaders for real data, synthetic generators, encoding and collation."""
