"""Benchmarks for hp-components: ``python -m benchmarks all --quick`` (see benchmarks/README.md).

Parts: ``latency`` (suggest() time vs history size), ``quality`` (simple regret under batch
parallelism, with a plot), ``model`` (the digits example through the real local runner),
``overhead`` (the local runner's per-trial cost), ``size`` (compiled KFP/Argo pipelines).
Every part writes ``benchmarks/results/<part>.json`` with the command, date, machine and
versions; ``summary`` rewrites the tables in ``benchmarks/README.md`` from those files.
Full runs are slow and stay out of CI; tests/test_benchmarks.py runs a tiny latency case.
"""
