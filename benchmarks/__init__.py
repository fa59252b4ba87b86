"""Benchmarks of django-whatsapp at volume: ``python -m benchmarks`` (or ``make bench``).

Each prints ratios measured in the same run; docs/benchmarks.rst keeps the latest figures.
"""
