"""Micro-batching: concurrent requests share one model batch.

Why: a forward pass over 32 statements of similar length costs less than 32 passes over one
(the encoder's matrix products fill the CPU's vector units better with several rows, and
each call has a fixed cost), so a server that runs each request alone is slowest exactly
when it is busy.
The batcher is the one place that calls the model, from one worker thread: requests put
their statements in a queue, and the worker takes what is waiting, up to
``max_batch_size`` statements, scores it as one list (in forward passes of similar
lengths, ``scorer.LoadedModel.length_groups``) and hands each request its rows back, in
order.

When to start a batch: as soon as it is full, or ``max_wait_ms`` after its first request
arrived, whichever comes first, and at once when no other request is in flight
(``in_flight``: the requests the server is handling, this one included), since then no one
can join but a request not yet sent. While the model is busy, requests pile up in the
queue; the next batch starts the moment the model is free, with everything that waited
(their ``max_wait_ms`` has passed), so under load no wait is added. So the wait only
serves a burst that arrives while the model is idle: the first request waits, at most
``max_wait_ms``, for the others being received. A lone request is never delayed. A
request is never split: one with more statements than ``max_batch_size`` is a batch of
its own (scored in forward passes of ``max_batch_size``), and a request that does not fit
in the batch being gathered starts the next one.

Back-pressure: ``max_queue`` bounds the statements waiting. A request that would go past it
is refused at once with ``QueueFull`` (429 with ``Retry-After``, from the recent
statements/s), rather than accepted and left to time out: the client learns in
milliseconds that it should back off, and the server's memory and latency stay bounded.
A request larger than ``max_queue`` is still taken when the queue is empty.

Failures: if scoring a batch raises, every request in that batch gets ``BatchFailed``
(500 with its request id) and the worker goes on with the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from serve.api.metrics import ServiceMetrics

log = logging.getLogger("detente.serve")
RATE_SMOOTHING = 0.3  # weight of the newest batch in the statements/s estimate
MAX_RETRY_AFTER_S = 60


class QueueFull(Exception):
    """The queue holds ``max_queue`` statements already; try again in ``retry_after`` s."""

    def __init__(self, queued: int, max_queue: int, retry_after: int) -> None:
        super().__init__(f"{queued:,} statements are waiting (the limit is {max_queue:,})")
        self.retry_after = retry_after


class BatchFailed(Exception):
    """Scoring the batch this request was in raised; the cause is in the server log."""


@dataclass(eq=False)
class _Job:
    texts: Sequence[str]
    future: asyncio.Future
    enqueued: float
    request_id: str
    taken: bool = field(default=False)


class MicroBatcher:
    """Gathers concurrent requests into model batches; ``score`` runs on one worker thread.

    ``score`` maps a list of statements to a list of results, one per statement, in order.
    ``run`` runs any other model call (an explanation) on the same thread, so the model and
    its tokenizer are only ever used by one thread.
    """

    def __init__(
        self,
        score: Callable[[list[str]], list[Any]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        metrics: ServiceMetrics | None = None,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self.score = score
        self.in_flight = in_flight
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.metrics = metrics
        self._pending: deque[_Job] = deque()
        self._queued = 0  # statements in _pending
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detente-model")
        self._task: asyncio.Task | None = None
        self._rate: float | None = None  # statements/s of recent batches

    @property
    def queued(self) -> int:
        """Statements waiting for a batch."""
        return self._queued

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._work(),
                                                                name="detente-batcher")

    async def close(self) -> None:
        """Stop after the current batch; requests still waiting get ``BatchFailed``."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(BatchFailed("the server is shutting down"))
        self._set_queued(0)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, texts: Sequence[str], request_id: str = "-") -> list[Any]:
        """Score ``texts`` in a shared batch; their results, in order."""
        if not texts:
            return []
        if self._queued and self._queued + len(texts) > self.max_queue:
            raise QueueFull(self._queued, self.max_queue, self.retry_after())
        loop = asyncio.get_running_loop()
        job = _Job(texts, loop.create_future(), loop.time(), request_id)
        self._pending.append(job)
        self._set_queued(self._queued + len(texts))
        self._wakeup.set()
        try:
            return await job.future
        except asyncio.CancelledError:  # the request timed out or the client went away
            if not job.taken:
                self._pending.remove(job)
                self._set_queued(self._queued - len(texts))
            raise

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the model thread, after the batches already running."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained: waiting statements / recent rate."""
        rate = self._rate or 1.0
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(self._queued / rate)))

    def _set_queued(self, value: int) -> None:
        self._queued = value
        if self.metrics:
            self.metrics.queue_depth.set(value)

    async def _work(self) -> None:
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = await self._gather()
            await self._run_batch(batch)

    async def _gather(self) -> list[_Job]:
        """Take waiting jobs up to ``max_batch_size`` statements, waiting at most until the
        first job's ``max_wait`` has passed for more to arrive."""
        loop = asyncio.get_running_loop()
        first = self._take()
        batch, size = [first], len(first.texts)
        deadline = first.enqueued + self.max_wait
        while size < self.max_batch_size:
            if self._pending:
                if size + len(self._pending[0].texts) > self.max_batch_size:
                    break
                job = self._take()
                batch.append(job)
                size += len(job.texts)
                continue
            remaining = deadline - loop.time()
            if remaining <= 0 or (self.in_flight is not None and self.in_flight() <= len(batch)):
                break  # waited long enough, or nobody else is on the way
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return batch

    def _take(self) -> _Job:
        job = self._pending.popleft()
        job.taken = True
        self._set_queued(self._queued - len(job.texts))
        return job

    async def _run_batch(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        batch = [job for job in batch if not job.future.done()]  # timed out while waiting
        if not batch:
            return
        texts = [text for job in batch for text in job.texts]
        started = loop.time()
        if self.metrics:
            for job in batch:
                self.metrics.queue_duration.observe(started - job.enqueued)
        clock = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.score, texts)
            if len(results) != len(texts):
                raise RuntimeError(f"scored {len(results)} results for {len(texts)} texts")
        except Exception as err:
            ids = ", ".join(job.request_id for job in batch)
            log.exception("scoring a batch of %d statements failed (requests %s)", len(texts),
                          ids)
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(BatchFailed(f"{type(err).__name__}: {err}"))
            return
        seconds = time.perf_counter() - clock
        rate = len(texts) / max(seconds, 1e-6)
        self._rate = rate if self._rate is None else (
            RATE_SMOOTHING * rate + (1 - RATE_SMOOTHING) * self._rate)
        if self.metrics:
            self.metrics.batch_size.observe(len(texts))
            self.metrics.batch_duration.observe(seconds)
        start = 0
        for job in batch:
            end = start + len(job.texts)
            if not job.future.done():
                job.future.set_result(results[start:end])
            start = end
