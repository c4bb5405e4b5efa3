"""Image processing off the event loop: `process_image` in a pool of worker processes.

A 12 MP photo costs about 0.4 s of CPU; on the loop that would stall every request of the
process, and in threads it would hold the GIL. Workers come from a fork server, not fork():
the API process runs driver threads, and forking a threaded process can copy a held lock into
the child. They are all started by the constructor, at start-up, so no upload waits for one.

The queue is bounded: with every worker busy and `max_waiting` jobs queued, `process` refuses
at once (ProcessorBusy, 503 with Retry-After) instead of piling up latency and memory, since
each queued upload holds its bytes. A worker that dies (out of memory, a codec crash) breaks
the whole pool: the jobs it took down answer ProcessorRestarted and the next job gets a new pool.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from app.errors import Unavailable
from app.media.filters import find_filter
from app.media.processing import ProcessedImage, configure_worker, process_image

WAITING_PER_WORKER = 4  # the default bound of the queue: a few seconds of work at most


class ProcessorBusy(Unavailable):
    """Every worker is busy and the queue is full (503)."""

    code = "image_processor_busy"

    def __init__(self) -> None:
        super().__init__("too many images are being processed; retry shortly", retry_after_s=2)


class ProcessorRestarted(Unavailable):
    """The worker processing this image died; the pool was replaced (503)."""

    code = "image_processor_restarted"

    def __init__(self) -> None:
        super().__init__("image processing was interrupted; retry shortly", retry_after_s=1)


class ImageProcessor:
    """`process_image` for the event loop: run in worker processes, behind a bounded queue."""

    def __init__(self, workers: int, max_pixels: int, max_waiting: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.max_pixels = max_pixels
        self.max_waiting = WAITING_PER_WORKER * self.workers if max_waiting is None else max_waiting
        self._in_flight = 0
        self._pool = self._start_pool()

    async def process(self, data: bytes, filter_name: str | None) -> ProcessedImage:
        """The image's variants and preview, computed in a worker process."""
        find_filter(filter_name)  # an unknown name is refused without taking a worker's time
        if self._in_flight >= self.workers + self.max_waiting:
            raise ProcessorBusy()
        self._in_flight += 1
        pool = self._pool
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(pool, process_image, data, filter_name, self.max_pixels)
        except BrokenProcessPool:
            self._replace(pool)
            raise ProcessorRestarted() from None
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        """Stop the workers, dropping queued jobs and waiting for the running ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _start_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=configure_worker,
            initargs=(self.max_pixels,),
        )
        # The pool starts a process per job submitted while none is idle: these start them all.
        for _ in range(self.workers):
            pool.submit(os.getpid)
        return pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is broken:  # the first of the jobs it took down replaces it
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start_pool()
