"""Deployments: idempotent deploy, shared weights, timeouts, loading waits, allocations,
adaptive scaling, undeploy and the ES-shaped stats."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from tiny_models import make_tiny_embedding_model, make_tiny_sparse_model

from sidecar.errors import EsError
from sidecar.runtime import ModelManager


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-deploy")
    return {
        "embed": str(make_tiny_embedding_model(root / "embed")),
        "sparse": str(make_tiny_sparse_model(root / "sparse")),
    }


@pytest.fixture
def no_hub(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_deploy_is_idempotent_and_conflicts_are_rejected(tiny):
    m = ModelManager(aliases={"e": tiny["embed"]})
    try:
        a = await m.deploy("d", "e", "text_embedding")
        b = await m.deploy("d", "e", "text_embedding")
        assert a is b and m.deployments() == [a] and m.get("d") is a
        with pytest.raises(EsError) as e:
            await m.deploy("d", tiny["sparse"], "sparse_embedding")
        assert e.value.status == 400 and "[d]" in e.value.reason
    finally:
        await m.close()


async def test_unknown_model_fails_fast_and_is_not_kept(no_hub, tmp_path):
    m = ModelManager(cache_dir=str(tmp_path / "hub"))
    try:
        started = time.monotonic()
        with pytest.raises(EsError) as e:
            await m.deploy("x", "acme/does-not-exist", "text_embedding", timeout=30)
        assert time.monotonic() - started < 10
        assert e.value.status == 400
        assert "[acme/does-not-exist]" in e.value.reason
        assert "could not download model" in e.value.reason
        assert m.get("x") is None
    finally:
        await m.close()


async def test_unloadable_model_is_a_400_naming_the_model(tmp_path):
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    m = ModelManager(aliases={"broken-model": str(bad)})
    try:
        with pytest.raises(EsError) as e:
            await m.deploy("b", "broken-model", "sparse_embedding")
        assert e.value.status == 400 and "Could not load model [broken-model]" in e.value.reason
    finally:
        await m.close()


async def test_bad_task_and_settings():
    m = ModelManager()
    try:
        with pytest.raises(EsError):
            await m.deploy("c", "all-MiniLM-L6-v2", "completion")
        with pytest.raises(EsError) as e:
            await m.deploy("c", "all-MiniLM-L6-v2", "text_embedding", num_allocations=0)
        assert e.value.type == "validation_exception"
        with pytest.raises(EsError):
            await m.deploy(
                "c",
                "all-MiniLM-L6-v2",
                "text_embedding",
                adaptive={"enabled": True, "min_number_of_allocations": 3, "max_number_of_allocations": 1},
            )
        assert m.deployments() == []
    finally:
        await m.close()


async def test_one_model_copy_shared_by_deployments(tiny):
    m = ModelManager(aliases={"e": tiny["embed"]})
    try:
        deps = await asyncio.gather(*[m.deploy(f"d{i}", "e", "text_embedding") for i in range(10)])
        assert len(m.loaded_models()) == 1
        assert all(d.model is deps[0].model for d in deps)
        # The same model through its path is the same copy too.
        other = await m.deploy("by-path", tiny["embed"], "text_embedding")
        assert other.model is deps[0].model
        vecs = await asyncio.gather(*[d.embed(["hello"]) for d in deps])
        assert all(np.array_equal(v, vecs[0]) for v in vecs)
        for i in range(10):
            await m.undeploy(f"d{i}")
        assert len(m.loaded_models()) == 1  # still used by "by-path"
        await m.undeploy("by-path")
        assert m.loaded_models() == {}
        assert m.deployments() == []
    finally:
        await m.close()


async def test_deploy_timeout_keeps_loading_and_requests_wait_for_the_model(tiny):
    m = ModelManager(aliases={"e": tiny["embed"]})
    try:
        with pytest.raises(EsError) as e:
            await m.deploy("slow", "e", "text_embedding", timeout=0)
        assert e.value.status == 408 and e.value.type == "timeout_exception"
        dep = m.get("slow")
        assert dep is not None and dep.state == "starting"
        assert dep.info.dimensions is None  # not known before the model has loaded
        assert dep.stats()["allocation_status"]["state"] == "starting"
        # A request arriving while the model loads waits for it.
        vecs = await dep.embed(["hello"], timeout=30)
        assert vecs.shape == (1, 32) and dep.state == "started"
        assert await m.deploy("slow", "e", "text_embedding") is dep
    finally:
        await m.close()


async def test_inference_timeout_is_408_and_drops_the_request(tiny):
    m = ModelManager(aliases={"e": tiny["embed"]})
    try:
        dep = await m.deploy("d", "e", "text_embedding")
        with pytest.raises(EsError) as e:
            await dep.embed(["a"] * 50, timeout=1e-9)
        assert e.value.status == 408 and e.value.type == "timeout_exception"
        assert dep.batcher.queued == 0
        assert dep.stats()["timeout_count"] == 1
        assert (await dep.embed(["still works"])).shape == (1, 32)
    finally:
        await m.close()


async def test_request_larger_than_the_queue_is_429_without_retry_after(tiny):
    m = ModelManager(aliases={"e": tiny["embed"]}, max_queue=8)
    try:
        dep = await m.deploy("d", "e", "text_embedding")
        with pytest.raises(EsError) as e:
            await dep.embed(["x"] * 9)
        # Retrying cannot help: the reason says why and what to do, and there is no Retry-After.
        assert e.value.status == 429 and e.value.type == "es_rejected_execution_exception"
        assert "Retry-After" not in e.value.headers
        assert "[9] inputs exceeds the inference queue capacity [8]" in e.value.reason
        assert "split it into requests of at most [8] inputs" in e.value.reason
        assert dep.stats()["rejected_execution_count"] == 1
        assert dep.stats()["queue_capacity"] == 8
        assert (await dep.embed(["x"] * 8)).shape == (8, 32)
    finally:
        await m.close()


async def test_update_allocations(tiny):
    m = ModelManager(aliases={"e": tiny["embed"]})
    try:
        dep = await m.deploy("d", "e", "text_embedding", num_allocations=1, num_threads=2)
        assert (dep.allocation_count, dep.threads_per_allocation) == (1, 2)
        await m.update("d", num_allocations=3)
        assert dep.allocation_count == dep.target_allocation_count == 3
        vecs = await asyncio.gather(*[dep.embed([f"t{i}"]) for i in range(20)])
        assert len(vecs) == 20
        await m.update(
            "d", adaptive={"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 2}
        )
        assert dep.target_allocation_count == 2
        with pytest.raises(EsError):
            await m.update(
                "d",
                num_allocations=1,
                adaptive={"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 2},
            )
        # A fixed number alone switches adaptive scaling off.
        await m.update("d", num_allocations=1)
        assert dep.adaptive.enabled is False and dep.allocation_count == 1
        with pytest.raises(EsError) as e:
            await m.update("missing", num_allocations=1)
        assert e.value.status == 404
    finally:
        await m.close()


async def test_adaptive_scales_to_zero_when_idle_and_back_on_demand(tiny):
    m = ModelManager(aliases={"e": tiny["embed"]}, scale_to_zero_after_s=0.2, adaptive_interval_s=0.02)
    try:
        dep = await m.deploy(
            "d",
            "e",
            "text_embedding",
            num_allocations=None,
            adaptive={"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 2},
        )
        assert dep.allocation_count == 1
        model = dep.model
        await _until(lambda: dep.allocation_count == 0)
        stats = dep.stats()
        assert stats["allocation_status"] == {
            "allocation_count": 0,
            "target_allocation_count": 0,
            "state": "fully_allocated",
        }
        assert stats["adaptive_allocations"]["min_number_of_allocations"] == 0
        assert dep.model is model and len(m.loaded_models()) == 1  # nothing unloaded
        vecs = await dep.embed(["wake up"], timeout=10)
        assert vecs.shape == (1, 32) and dep.allocation_count >= 1
    finally:
        await m.close()


async def test_adaptive_scales_up_under_backlog_and_back_down(tiny):
    m = ModelManager(
        aliases={"e": tiny["embed"]},
        max_batch_size=2,
        max_batch_wait_ms=0,
        scale_down_after_s=0.1,
        adaptive_interval_s=0.02,
    )
    try:
        dep = await m.deploy(
            "d",
            "e",
            "text_embedding",
            adaptive={"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 3},
        )
        assert dep.allocation_count == 1
        await asyncio.gather(*[dep.embed([f"text {i}"] * 4) for i in range(30)])
        assert dep.target_allocation_count > 1
        await _until(lambda: dep.target_allocation_count == 1)  # min stays 1, never zero
    finally:
        await m.close()


async def test_undeploy_fails_waiting_requests_and_frees_the_model(tiny):
    m = ModelManager(aliases={"s": tiny["sparse"]})
    try:
        dep = await m.deploy("s", "s", "sparse_embedding")
        await m.update(
            "s", adaptive={"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 1}
        )
        dep._set_allocations(0)  # park the request in the queue
        dep.adaptive.enabled = False
        pending = asyncio.create_task(dep.sparse(["hello"]))
        await asyncio.sleep(0.05)
        assert not pending.done()
        await m.undeploy("s")
        with pytest.raises(EsError):
            await pending
        assert dep.state == "stopping" and m.get("s") is None and m.loaded_models() == {}
        with pytest.raises(EsError):
            await dep.sparse(["after"])
        await m.undeploy("s")  # no-op
    finally:
        await m.close()


async def test_stats_shape(tiny):
    m = ModelManager(aliases={"e": tiny["embed"]}, max_queue=100)
    try:
        dep = await m.deploy("my-deployment", "e", "text_embedding", num_allocations=2, num_threads=1)
        await dep.embed(["a", "b", "c"])
        stats = dep.stats()
        json.dumps(stats)  # plain JSON types only
        assert stats["deployment_id"] == "my-deployment"
        assert stats["model_id"] == "e"
        assert stats["state"] == "started"
        assert stats["allocation_status"] == {
            "allocation_count": 2,
            "target_allocation_count": 2,
            "state": "fully_allocated",
        }
        assert stats["number_of_allocations"] == 2
        assert stats["threads_per_allocation"] == 1
        assert stats["queue_capacity"] == 100
        assert stats["priority"] == "normal"
        assert stats["inference_count"] == 3
        assert stats["peak_throughput_per_minute"] >= 3
        assert isinstance(stats["start_time"], int)
        [node] = stats["nodes"]
        assert node["routing_state"] == {"routing_state": "started"}
        assert node["inference_count"] == 3
        assert node["number_of_allocations"] == 2
        assert node["number_of_pending_requests"] == 0
        assert len(node["node"]) == 1
    finally:
        await m.close()


async def test_undeploy_while_starting(tiny):
    m = ModelManager(aliases={"s": tiny["sparse"]})
    try:
        with pytest.raises(EsError):
            await m.deploy("s", "s", "sparse_embedding", timeout=0)
        dep = m.get("s")
        pending = asyncio.create_task(dep.sparse(["hello"], timeout=30))
        await asyncio.sleep(0)
        await m.undeploy("s")
        with pytest.raises(EsError):
            await pending
        assert m.get("s") is None and m.loaded_models() == {}
        # Deploying again afterwards works.
        again = await m.deploy("s", "s", "sparse_embedding")
        assert (await again.sparse(["hello"]))[0][0]
    finally:
        await m.close()
