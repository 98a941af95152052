"""Benchmarks of maskdepth against the capstone's way of training (issue 10).

Run `make bench` (or `python -m bench.run`); see bench/README.md. Nothing here runs in the
test suite except an import and dry-run check: numbers live in `bench/results/`, never in
timed tests.
"""
