"""Runnable studies that produce reports: the UDA comparison (run-uda) and throughput benchmarks."""
