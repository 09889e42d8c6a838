"""Maintainer commands that are not part of the lab or the package (`python -m tools.release --help`)."""
