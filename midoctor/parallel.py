"""A parallel map on daemon threads: a check may be abandoned by the runner when over budget, and its helper
threads must then not hold the process open at exit (ThreadPoolExecutor's workers are joined at exit)."""

from __future__ import annotations

import queue
import threading
from typing import Callable, List, Sequence, Tuple, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(func: Callable[[T], R], items: Sequence[T], workers: int) -> List[R]:
    """``[func(x) for x in items]`` computed by up to ``workers`` daemon threads; exceptions propagate."""
    if len(items) <= 1 or workers <= 1:
        return [func(item) for item in items]
    todo: queue.Queue[Tuple[int, T]] = queue.Queue()
    for pair in enumerate(items):
        todo.put(pair)
    results: List[Tuple[int, bool, object]] = []
    lock = threading.Lock()

    def work() -> None:
        while True:
            try:
                index, item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                outcome: Tuple[int, bool, object] = (index, True, func(item))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                outcome = (index, False, exc)
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, len(items)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.sort(key=lambda r: r[0])
    for _, ok, value in results:
        if not ok:
            raise value  # type: ignore[misc]
    return [value for _, _, value in results]  # type: ignore[misc]
