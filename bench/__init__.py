"""Benchmarks: ``make bench`` runs every ``bench/*_bench.py`` and writes ``bench/report.json``
and ``bench/report.txt``. Row names are stable; see docs/benchmarks.md."""
