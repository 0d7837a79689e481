"""One model thread that runs requests arriving together as one batch.

The event loop must never wait on the model: a translation of a large batch takes seconds on a
CPU, and during it the page, the gallery and /api/health must still answer. So requests hand
their work to a single worker thread and await an asyncio future. The thread takes whatever has
queued up (up to `max_batch` items, waiting at most `max_wait_s` after the first for company),
groups it by kind, runs one call per kind and settles each request's future in its own loop.
Under load this batches naturally: everything that arrived while the previous batch ran goes
into the next one. One thread also means the model's device is never shared by two calls.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Handler = Callable[[list[Any]], Sequence[Any]]


@dataclass
class _Pending:
    kind: str
    item: Any
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class BatchStats:
    """What /api/health reports about batching."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    busy_s: float = 0.0

    def record(self, size: int, seconds: float) -> None:
        self.batches += 1
        self.items += size
        self.largest = max(self.largest, size)
        self.busy_s += seconds


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the request went away (client disconnected) while its batch ran
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Batcher:
    """Runs `handlers[kind](items) -> results` (same length, same order) in one thread, batched."""

    def __init__(self, handlers: dict[str, Handler], max_batch: int = 16, max_wait_s: float = 0.005) -> None:
        self.handlers, self.max_batch, self.max_wait_s = handlers, max_batch, max_wait_s
        self.stats = BatchStats()
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="twingan-model", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def submit(self, kind: str, item: Any) -> Any:
        """Queue one item and wait for its result (or its exception) without blocking the loop."""
        if kind not in self.handlers:
            raise ValueError(f"no handler for {kind!r}")
        if not self._thread.is_alive():
            raise RuntimeError("the model thread has stopped")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Pending(kind, item, future, loop))
        return await future

    def close(self) -> None:
        """Finish the batch in hand, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch, deadline = [first], time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                pending = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if pending is None:
                return batch, True
            batch.append(pending)
        return batch, False

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = self._collect(first)
            started = time.perf_counter()
            for kind in dict.fromkeys(p.kind for p in batch):
                group = [p for p in batch if p.kind == kind]
                try:
                    results, error = list(self.handlers[kind]([p.item for p in group])), None
                    if len(results) != len(group):
                        raise RuntimeError(f"handler {kind!r} returned {len(results)} results for {len(group)} items")
                except Exception as exc:  # noqa: BLE001 - every waiting request must hear of it
                    results, error = [None] * len(group), exc
                for pending, result in zip(group, results):
                    try:
                        pending.loop.call_soon_threadsafe(_settle, pending.future, result, error)
                    except RuntimeError:  # that request's event loop has closed: nobody is waiting
                        pass
            self.stats.record(len(batch), time.perf_counter() - started)
