"""Independent work on a Dask cluster: connecting to one, shipping what every task
shares to each worker once, and running tasks that keep the engine within the cores a
worker was given. Dask is optional (``pip install "losstopo[distributed]"``); nothing
here imports it until a cluster is asked for."""

from __future__ import annotations

import os
import re
import threading
from typing import Callable, Iterable, Iterator, Optional, Tuple

EXTRA = 'pip install "losstopo[distributed]"'
_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|inproc|ucx)://\[?[A-Za-z0-9_.:-]+\]?:(\d{1,5})$")


def distributed_module():
    """The ``distributed`` package, or an ImportError naming the extra that installs it."""
    try:
        import distributed
    except ImportError as e:
        raise ImportError(f"a cluster needs Dask's distributed scheduler, which is not "
                          f"installed: {EXTRA}") from e
    return distributed


def parse(spec: str) -> Tuple[str, object]:
    """("local", N), ("address", "tcp://HOST:PORT") or ("file", path) of a cluster
    spec; a ValueError naming the accepted forms otherwise (nothing is contacted)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"cluster: expected local:N, tcp://HOST:PORT or a scheduler .json "
                         f"file, got {spec!r}")
    spec = spec.strip()
    if spec.startswith("local:"):
        n = spec[6:]
        if not n.isdigit() or not 1 <= int(n) <= 4096:
            raise ValueError(f"cluster: local:N needs a worker count N from 1 to 4096, got "
                             f"{spec!r}")
        return "local", int(n)
    if "://" in spec:
        m = _ADDRESS.match(spec)
        if not m or not 1 <= int(m.group(2)) <= 65535:
            raise ValueError(f"cluster: {spec!r} is not a scheduler address of the form "
                             "tcp://HOST:PORT (port 1-65535)")
        return "address", spec
    if spec.endswith(".json"):
        if not os.path.isfile(spec):
            raise ValueError(f"cluster: scheduler file {spec} not found (a Dask scheduler "
                             "writes it with --scheduler-file)")
        return "file", spec
    raise ValueError(f"cluster: expected local:N, tcp://HOST:PORT or a scheduler .json file, "
                     f"got {spec!r}")


class Cluster:
    """A connection to a Dask cluster (``with Cluster("local:4") as c: ... c.client``).

    ``local:N`` starts N worker processes on this machine, each given
    cores // N threads (at least one); an address or a scheduler file connects to
    a running scheduler (failing within ``timeout`` seconds when it cannot be
    reached). Closing shuts down only what this object started.
    """

    def __init__(self, spec: str, timeout: float = 20.0):
        kind, value = parse(spec)
        distributed = distributed_module()
        self.spec = spec
        self._cluster = None
        try:
            if kind == "local":
                cores = os.cpu_count() or 1
                self._cluster = distributed.LocalCluster(
                    n_workers=value, threads_per_worker=max(1, cores // value), processes=True,
                    dashboard_address=":0", silence_logs=40)
                self.client = distributed.Client(self._cluster, timeout=timeout)
            elif kind == "address":
                self.client = distributed.Client(value, timeout=timeout)
            else:
                self.client = distributed.Client(scheduler_file=value, timeout=timeout)
        except (OSError, TimeoutError) as e:
            if self._cluster is not None:
                self._cluster.close()
            raise ConnectionError(f"cluster: cannot reach the Dask scheduler of {spec!r} "
                                  f"within {timeout:g} s ({e})") from e

    def describe(self) -> str:
        info = self.client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        return f"{self.spec}: {len(workers)} workers, {threads} threads"

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_client(client):
    """``client`` as a dask Client (an ImportError naming the extra without Dask)."""
    distributed = distributed_module()
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client: expected a dask.distributed.Client, got "
                        f"{type(client).__name__}")
    return client


# One engine call at a time per worker process: a worker with k task threads would
# otherwise run k engines of `cores` threads each.
_ENGINE_LOCK = threading.Lock()


def worker_cores() -> int:
    """Threads the current Dask worker was given (1 outside a worker)."""
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 1


def _run(fn: Callable, shared: tuple, item):
    """fn(*shared, item) on a worker, its landscapes' engines within the worker's cores
    (a landscape asking for fewer threads keeps its number)."""
    from .landscape import Landscape

    with _ENGINE_LOCK:
        cores = worker_cores()
        for s in shared:
            if isinstance(s, Landscape) and s.device == "cpu" and not 0 < s.threads <= cores:
                s.threads = cores
        return fn(*shared, item)


def as_finished(client, fn: Callable, shared: tuple, items: Iterable,
                key: Optional[str] = None) -> Iterator:
    """Runs fn(*shared, item) for every item on the cluster and yields
    (position of the item, result) as the tasks finish. The shared objects (a
    landscape, the solutions) travel to each worker once, not with every task; a task
    whose worker dies is run again on another."""
    distributed = distributed_module()
    items = list(items)
    shared_f = tuple(client.scatter([s], broadcast=True, hash=False)[0] for s in shared)
    prefix = key or getattr(fn, "__name__", "task")
    futures = {}
    for i, item in enumerate(items):
        f = client.submit(_run, fn, shared_f, item, pure=False, key=f"{prefix}-{i}-{os.getpid()}"
                          f"-{id(items)}")
        futures[f] = i
    try:
        for f in distributed.as_completed(list(futures)):
            yield futures[f], f.result()
    finally:
        client.cancel(list(futures))
