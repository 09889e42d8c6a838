"""What keeps the documentation in step with the code and the measurements.

`python -m docs_tools write` rewrites the tables generated from the code (`make docs` runs it first);
`python -m docs_tools check` says what is stale or wrong without writing. tests/test_docs.py runs the
same checks in `make test`.
"""
