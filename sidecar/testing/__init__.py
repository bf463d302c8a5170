"""Running the sidecar and a local Elasticsearch as child processes, as the test suite, the
benchmark (``scripts/bench``) and the soak test (``scripts/soak``) do. Standard library only:
importing it loads no model runtime."""
