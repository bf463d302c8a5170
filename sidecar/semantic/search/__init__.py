"""Search over semantic_text and the inference queries, on a node without the inference plugin.

:class:`SemanticSearch` takes a search request (index expression, URL parameters, body) and
answers it as Elasticsearch with the inference plugin would:

* requests with nothing to rewrite are forwarded byte for byte;
* inference queries are rewritten (:mod:`sidecar.semantic.queries`) and the request forwarded;
* retrievers are rewritten at any depth; those the node lacks (``rrf``, ``linear``,
  ``pinned``: :mod:`.native` asks it once), ``text_similarity_reranker``, and ``rescorer`` /
  ``diversify`` over what runs here or over semantic_text are executed here like
  Elasticsearch's compound retrievers: in a point in time, each child retriever runs
  as a search of ``rank_window_size`` hits sorted by score then ``_shard_doc``, the results are
  fused or reranked, and one final search over the union of the child queries (so totals and
  aggregations are Elasticsearch's) fetches the requested page with the computed scores;
* responses get the semantic highlighter's fragments, semantic_text values for ``fields``,
  ``_inference_fields`` when asked for, and never the ``_sidecar_inference`` internals.

Requests go to Elasticsearch with the caller's own headers, so its security applies; index
metadata is read with the sidecar's credentials (cached briefly).

The parts: :mod:`.service` (the entry point), :mod:`.planner` and :mod:`.plan` (a request
rewritten into a plan: what goes to Elasticsearch, what to add to its answer), :mod:`.retrievers`
(the retriever tree; :mod:`.retriever_params` its parameters), :mod:`.compound` (compound
retrievers run here; :mod:`.fusion` the ``linear`` / ``rrf`` arithmetic and explanations,
:mod:`.stages` pinning, rescoring, MMR and chunk scoring), :mod:`.hits` (hits
finished with what Elasticsearch cannot produce), :mod:`.catalog` (index metadata and what the
node runs itself) and :mod:`.caller` (requests as the caller).
"""

from ...es.caller import Answer, Caller
from .service import SemanticSearch

__all__ = ["Answer", "Caller", "SemanticSearch"]
