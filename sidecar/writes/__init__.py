"""The write path (``_bulk``, ``_doc``, ``_create``, ``_update`` and the sidecar's reindex):

* :mod:`.items`: the request's items, read from the NDJSON stream (or one document);
* :mod:`.bulk`: windows of items, each through the steps below and sent as one bulk while
  the next is prepared;
* :mod:`.pipeline_step`: ingest pipelines the sidecar runs;
* :mod:`.semantic_step` and :mod:`.fill`: semantic_text chunking and embedding;
* :mod:`.documents`: Elasticsearch's side, with the caller's credentials;
* :mod:`.reindex`: ``_reindex`` into destinations that need the steps above.

The HTTP handlers (:mod:`sidecar.api.writes`) only parse and render.
"""
