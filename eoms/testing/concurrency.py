"""Concurrency tests' one helper: start work in several threads at the same instant."""

import threading

from django.db import close_old_connections, connection

__all__ = ["race"]


def race(n: int, work) -> list:
    """Run work(i) in n threads released together by a barrier; each thread's result or the
    exception it raised, in thread order. Each thread uses (and closes) its own connection."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:  # collected and asserted on by the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    close_old_connections()
    return results
