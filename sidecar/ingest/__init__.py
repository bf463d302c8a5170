"""Ingest pipelines with ``inference`` processors, run by the sidecar.

What the user sees
------------------
``PUT/GET/DELETE _ingest/pipeline/{id}`` and ``_simulate`` work as in Elasticsearch. A
pipeline with an ``inference`` processor anywhere (nested ``on_failure`` handlers included)
is kept by the sidecar in the hidden index ``.sidecar-pipelines`` exactly as written, and
``GET`` shows it that way, merged with the pipelines Elasticsearch holds. Pipelines without
inference processors go to Elasticsearch untouched.

What Elasticsearch holds under the id of a sidecar pipeline
-----------------------------------------------------------
A *guard* pipeline (``_meta.managed_by: es-inference-sidecar``), so that
``index.default_pipeline``/``index.final_pipeline`` settings naming the pipeline are
accepted and a write that bypasses the sidecar fails loudly instead of silently skipping
inference:

* nodes with the ``fail`` and ``remove`` processors and painless (every default
  distribution): ``fail`` with ``pipeline [x] contains inference processors and must be run
  through es-inference-sidecar`` unless the document carries the mark
  ``_es_inference_sidecar_final: true``, then ``remove`` of the mark. The sidecar marks the
  documents it has run through the pipeline as their index's *final* pipeline (which
  Elasticsearch always runs again, even with ``pipeline=_none``);
* nodes with ``fail`` but no painless: ``fail`` alone;
* nodes without ``fail`` (the server-only test distribution): ``set_security_user`` on
  ``_index``, which fails every document; the guard's ``description`` explains.

Without the marked guard a document cannot get past an index's *final* pipeline once the
sidecar has run it, so writes to an index whose final pipeline has inference processors fail
there with a message saying what the nodes lack (see :meth:`Pipelines.plan`).

How a pipeline runs
-------------------
The pipeline is split into steps (:mod:`.definition`): runs of ordinary processors that
Elasticsearch executes with ``_ingest/pipeline/_simulate`` (:mod:`.residual`), and inference
processors that the sidecar executes (:mod:`.processor`), in order, for a whole batch of
documents at a time (:mod:`.runner`). ``if``, ``on_failure``, ``ignore_failure``, ``tag`` and
``description`` behave as Elasticsearch's ``CompoundProcessor``/``ConditionalProcessor``.

The core API (for the bulk path)
--------------------------------
``app["pipelines"]`` is a :class:`Pipelines`::

    plan = await pipelines.plan(index, request_pipeline)   # IngestPlan | None
    if plan is None:
        ...  # forward the item to Elasticsearch untouched
    outcomes = await pipelines.run(plan, [IngestDoc(index, id, source, routing=...), ...])

``plan(index, request_pipeline=None)`` resolves the request's or item's ``pipeline``
(``"_none"`` skips the default pipeline), ``index.default_pipeline`` and
``index.final_pipeline`` (index settings, or the matching index template's when the index
does not exist yet; cached for ``settings_ttl_s``, see :meth:`Pipelines.invalidate_index`).
It returns None when neither pipeline is a sidecar pipeline. When a final pipeline cannot be
handled on these nodes (see above) the plan carries an ``error`` and ``run`` fails every
document with it. All documents given to one ``run`` share the plan. (A third positional
argument, the caller's headers, is accepted and unused: Elasticsearch resolves an index's
pipelines whatever the caller may read, so the sidecar reads settings with its own
credentials.)

``run(plan, docs)`` returns one :class:`IngestOutcome` per document, in order:

* ``"ok"``: forward the document with the outcome's ``index``, ``id``, ``routing``,
  ``version``…, ``source`` and ``"pipeline": "_none"`` (``outcome.pipeline``) so that
  Elasticsearch does not run the default pipeline again. An index's final pipeline still
  runs in Elasticsearch: when it is a plain Elasticsearch pipeline the sidecar leaves it to
  Elasticsearch; when it is a sidecar pipeline the sidecar runs it and adds the mark (see
  above) to the source, which the guard removes.
* ``"dropped"``: a ``drop`` processor dropped it (Elasticsearch answers ``"result": "noop"``).
* ``"failed"``: ``error`` is the item's Elasticsearch-shaped error (``error.status`` is the
  item status, ``error.to_cause()`` the item's ``error`` object); other documents are not
  affected.

Changes of ``_index`` follow Elasticsearch: the new index's final pipeline is planned (its
default pipeline too after a ``reroute``), a final pipeline may not change the index, and
index cycles fail the document.

Where the sidecar differs from Elasticsearch, and why
----------------------------------------------------
* ``_ingest.timestamp``: each Elasticsearch-run segment sees the time of its own
  ``_simulate`` call (the API takes no ingest metadata); the sidecar's steps see the time the
  batch started. Other ``_ingest.*`` values a segment writes reach the sidecar's steps but not
  later segments.
* Key order of ``_source``: Elasticsearch-run segments return Elasticsearch's (hash) order;
  values the sidecar writes are appended.
* A document that fails inside an Elasticsearch-run segment and goes to a handler the sidecar
  runs: the failed processor and the document's state at that moment come from a verbose
  re-run (changes the failing processor itself made before failing are lost; untagged
  processors of one type are told apart by position only when they are in separate segments).
  On nodes without ``set``/``remove``, Elasticsearch processors inside such handlers do not
  see ``_ingest.on_failure_*``. ``_ingest.on_failure_pipeline`` is never set (Elasticsearch
  sets it only for nested pipelines).
* The status of an item that an Elasticsearch-run processor failed is derived from the
  error's type (the simulate API does not report it).
* Inference is one call per processor and batch (split into the service's batch size), so a
  failing provider call fails all documents of that call; the time limit is the inference
  endpoints' default timeout (30 s) per call instead of Elasticsearch's 10 s per document.
* ``inference_config``: its type and ``results_field`` are checked and ``results_field`` is
  used; tokenization overrides are accepted and ignored (endpoints choose their own).
  ``xpack.ml.max_inference_processors`` is not enforced.
* Not supported: inference processors inside ``foreach`` (refused when the pipeline is put)
  and ``pipeline`` processors, or a change of ``_index`` in a pipeline Elasticsearch runs on
  its own, leading to a pipeline with inference processors (its guard fails the document).
  A ``reroute`` is recognised by an index change in a segment that has a ``reroute``
  processor.

``references(inference_id)`` is registered in the inference endpoints'
``reference_finders`` so that ``DELETE _inference`` refuses to delete an endpoint a pipeline
uses (unless ``force``).
"""

from .service import IngestDoc, IngestOutcome, IngestPlan, Pipelines

__all__ = ["IngestDoc", "IngestOutcome", "IngestPlan", "Pipelines"]
