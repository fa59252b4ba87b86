"""Load tests: ``python loadtest/callbacks.py`` (see docs/reliability.rst)."""
