"""A directory to sync cardholders from: slapd with an Active-Directory-like schema (tests, bench_directory)."""
