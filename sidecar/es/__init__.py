"""The sidecar's view of the Elasticsearch node behind it."""
