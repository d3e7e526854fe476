"""Parsing off the daemon's interpreter: a small pool of worker processes.

Parsing is pure and CPU-bound; in the daemon's own process it would compete for the GIL with the
SMTP sessions. Worker processes also contain the damage a hostile message can do: one that makes
the parser hang is cut off after ``intake.parse_timeout_seconds`` (the worker is killed and
replaced), one that crashes its worker costs only that worker. Either way the message gets a
failure instead of a parse, and the ledger retries or quarantines it; the daemon never stops.
``intake.parse_workers = 0`` parses in the daemon's process (no isolation; for small setups).

Messages may be handed over as the ledger stores them (:class:`PackedRaw`, compressed): each is
unpacked where it is parsed, one at a time, and dropped once parsed, so a batch never exists
unpacked in the back office. A worker that parsed a lot of mail gives the freed memory back to
the system (intaked/memory.py).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

import structlog

from intaked.memory import LARGE_WORK_BYTES, WorkMeter, tune_allocator
from intaked.parsing import ParsedMessage, parse_message
from intaked.processes import die_with_parent
from intaked.store.rawbytes import PackedRaw

log = structlog.get_logger(__name__)

_work = WorkMeter()  # in a worker process: memory goes back after each few MiB parsed
#: A parse result: the parsed message, or why there is none.
ParseResult = ParsedMessage | str
#: A message to parse: its raw bytes, or those bytes as the ledger stores them.
RawSource = bytes | PackedRaw


def _guarded(parse: Callable[[bytes], ParseResult], source: RawSource) -> ParseResult:
    try:
        return parse(source.unpack() if isinstance(source, PackedRaw) else source)
    except Exception as exc:  # parse_message promises not to raise; never trust that with mail
        return f"parser failed: {type(exc).__name__}: {exc}"


def parse_in_process(raw: RawSource) -> ParseResult:
    return _guarded(parse_message, raw)


def _parse_chunk(parse: Callable[[bytes], ParseResult], sources: list[RawSource]) -> list[ParseResult]:
    """Parse one message after another (only the one being parsed is unpacked); the bytes parsed
    count towards giving memory back (intaked/memory.py)."""
    results = [_guarded(parse, source) for source in sources]
    _work.handled(sum(map(_unpacked_size, sources)))
    return results


def _unpacked_size(source: RawSource) -> int:
    return source.size if isinstance(source, PackedRaw) else len(source)


def _start_worker() -> None:
    die_with_parent()
    tune_allocator()


def _nothing() -> None:
    """A call that only replaces the last one in the pool's call queue (see ``parse_many``)."""


class ParsePool:
    """Parses batches of raw messages in worker processes (or in-process with ``workers=0``)."""

    def __init__(
        self,
        workers: int,
        timeout_seconds: float,
        *,
        parse: Callable[[bytes], ParseResult] = parse_in_process,
    ) -> None:
        self._workers = workers
        self._timeout = timeout_seconds
        self._parse = parse  # a module-level function (workers import it by name)
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
            )
        return self._pool

    def _discard_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()  # a worker stuck in a hostile message does not stop on request
            pool.shutdown(wait=False, cancel_futures=True)

    def warm_up(self) -> None:
        """Start the workers now (a first start costs a fraction of a second), not on the first mail."""
        if self._workers:
            self.parse_many([b"Subject: warm-up\r\n\r\nwarm-up\r\n"])

    def parse_many(self, raws: Sequence[RawSource]) -> list[ParseResult]:
        """Parse every message; never raises, every slot gets a message or a failure."""
        if not raws:
            return []
        if self._workers == 0:
            return _parse_chunk(self._parse, list(raws))
        results = self._parse_in_workers(raws)
        if sum(map(_unpacked_size, raws)) >= LARGE_WORK_BYTES:
            self._let_go_of_last_call()
        return results

    def _parse_in_workers(self, raws: Sequence[RawSource]) -> list[ParseResult]:
        per_worker = max(1, -(-len(raws) // self._workers))
        chunks = [list(raws[i : i + per_worker]) for i in range(0, len(raws), per_worker)]
        try:
            futures: list[Future[list[ParseResult]]] = [
                self._executor().submit(_parse_chunk, self._parse, chunk) for chunk in chunks
            ]
            results: list[ParseResult] = []
            for future, chunk in zip(futures, chunks, strict=True):
                results.extend(future.result(timeout=self._timeout * len(chunk)))
            return results
        except (BrokenProcessPool, FutureTimeout) as exc:
            log.warning("parse_batch_failed_isolating", messages=len(raws), error=type(exc).__name__)
            self._discard_pool()
        except Exception as exc:  # the pool itself cannot run (no processes?): parse here instead
            log.error("parse_pool_unusable_parsing_in_process", error=str(exc))
            self._discard_pool()
            return _parse_chunk(self._parse, list(raws))
        return [self._parse_alone(raw) for raw in raws]

    def _let_go_of_last_call(self) -> None:
        """The pool's feeder thread keeps the pickled form of the last call it sent (a chunk of
        mail) until it sends another one: send a small one."""
        if self._pool is None:
            return
        try:
            self._pool.submit(_nothing).result(timeout=self._timeout)
        except Exception as exc:  # the next batch finds out about a broken pool
            log.warning("parse_pool_flush_failed", error=type(exc).__name__)

    def _parse_alone(self, raw: RawSource) -> ParseResult:
        """Parse one message in a fresh worker, so a hostile one hurts only itself."""
        try:
            return self._executor().submit(_guarded, self._parse, raw).result(timeout=self._timeout)
        except FutureTimeout:
            self._discard_pool()
            return f"parser gave up after {self._timeout:g}s (message kept; see its raw bytes)"
        except BrokenProcessPool:
            self._discard_pool()
            return "parser crashed on this message (message kept; see its raw bytes)"

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
