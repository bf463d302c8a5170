"""Query DSL rewriting: the inference queries Elasticsearch's inference plugin adds, turned
into queries every node runs.

* ``semantic`` on a ``semantic_text`` field embeds the query text once per inference endpoint
  (the field's ``search_inference_id``, else its ``inference_id``) and becomes the query
  Elasticsearch builds itself: a ``nested`` query (``score_mode: max``) over the field's chunks
  holding a ``knn`` query (dense) or a weighted-token query (sparse), carrying the ``boost`` and
  ``_name``. Indices whose fields use different endpoints each get their own clause, filtered by
  ``_index``; indices without the field match nothing, and a field of another type is an error.
* ``match``, ``knn`` and ``sparse_vector`` naming a semantic_text field are rewritten as
  Elasticsearch 8.18+ rewrites them.
* ``sparse_vector`` (``inference_id`` + ``query`` or ``query_vector``), ``text_expansion`` and
  ``weighted_tokens`` on ``sparse_vector`` fields become a ``bool`` of ``term`` queries boosted by
  the token weights (``minimum_should_match: 1``): Lucene builds exactly this query for them, so
  the score is Σ weight·value as in Elasticsearch. When Elasticsearch would prune tokens
  (``prune``, ``pruning_config``, or its default for indices created on 8.19+/9.1+) the decision
  needs the shard's term statistics, so the query is left to the node's own ``sparse_vector``
  query with the computed ``query_vector`` where the node has it.
* ``query_vector_builder.text_embedding`` becomes ``query_vector``.

The rewriter is async (embedding needs inference) and plain: it takes and returns JSON-like
Python values. Every semantic leaf it builds is also recorded (:attr:`QueryRewriter.leaves`) so
the semantic highlighter can score chunks against the same query embeddings.

The parts: :mod:`.rewriter` (the query families a rewriter handles) built on :mod:`.base`
(walking compound queries, per-index bookkeeping), :mod:`.semantic` (``semantic`` and ``match``
on semantic_text), :mod:`.knn`, :mod:`.sparse` (``sparse_vector``, ``text_expansion``,
``weighted_tokens``, pruning), :mod:`.clauses` (the query bodies they build), :mod:`.embedder`
(query texts embedded through the cache), :mod:`.context` and :mod:`.errors`.
"""
