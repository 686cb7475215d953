"""The network-namespace lab (a package so its conftest never shadows tests/conftest.py)."""
