"""The transport interface every measurement loop and the loader use.

One-sided semantics modelled on RDMA RC queue pairs:

* ``register(buf)`` makes local memory usable for transfers and returns a :class:`Region`;
* ``connect(address)`` performs the out-of-band exchange (over a TCP socket for every transport)
  and returns an :class:`Endpoint` that knows the peer's advertised regions;
* ``endpoint.post_read(local, local_off, remote, remote_off, length)`` /
  ``post_write(...)`` start a transfer and return its work-request id; many may be outstanding;
* ``endpoint.poll()`` returns the completions available now, ``endpoint.wait(n)`` blocks for n.

Completions of one endpoint arrive in posting order (as on an RC QP).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field


@dataclass
class Region:
    """Registered local memory."""

    buf: memoryview
    key: int
    name: str = ""
    handle: object = None  # transport-specific (pyverbs MR)

    @property
    def length(self) -> int:
        return self.buf.nbytes


@dataclass(frozen=True)
class RemoteRegion:
    """What the peer advertised for one of its regions during the exchange."""

    name: str
    key: int
    length: int
    addr: int = 0  # remote virtual address (RDMA); 0 for TCP
    rkey: int = 0


@dataclass
class Completion:
    wr_id: int
    op: str
    length: int
    status: int = 0  # 0 = success
    t_post: float = 0.0
    t_done: float = 0.0
    extra: dict = field(default_factory=dict)


class Endpoint(abc.ABC):
    """One connection (an RC QP or a TCP stream) to a peer."""

    remote_regions: dict[str, RemoteRegion]

    @abc.abstractmethod
    def post_read(self, local: Region, local_off: int, remote: RemoteRegion, remote_off: int, length: int,
                  wr_id: int | None = None) -> int: ...

    @abc.abstractmethod
    def post_write(self, local: Region, local_off: int, remote: RemoteRegion, remote_off: int, length: int,
                   wr_id: int | None = None) -> int: ...

    @abc.abstractmethod
    def poll(self, max_n: int = 64) -> list[Completion]: ...

    @abc.abstractmethod
    def wait(self, n: int = 1) -> list[Completion]: ...

    @property
    @abc.abstractmethod
    def outstanding(self) -> int: ...

    def close(self) -> None:  # noqa: B027  (an optional hook: a default no-op)  # pragma: no cover
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def remote(self, name: str) -> RemoteRegion:
        try:
            return self.remote_regions[name]
        except KeyError:
            raise KeyError(f"peer advertises no region {name!r} (has {sorted(self.remote_regions)})") from None


class Transport(abc.ABC):
    name: str = "?"

    @abc.abstractmethod
    def register(self, buf, name: str = "") -> Region: ...

    @abc.abstractmethod
    def connect(self, address: str, **opts) -> Endpoint: ...

    def versions(self) -> dict:
        return {}


def transfer_batch(ep: Endpoint, op: str, local: Region, remote: RemoteRegion, size: int, count: int,
                   depth: int, remote_off: int = 0, local_off: int = 0, stride: int | None = None) -> None:
    """Move ``count`` messages of ``size`` bytes keeping up to ``depth`` outstanding (perftest's
    tx-depth). Message i uses remote offset ``remote_off + (i * stride) % span``."""
    post = ep.post_read if op == "read" else ep.post_write
    stride = size if stride is None else stride
    span = max(size, remote.length - remote_off - size + 1) if remote.length else size
    lspan = max(size, local.length - local_off - size + 1)
    posted = done = 0
    while done < count:
        while posted < count and posted - done < depth:
            roff = remote_off + (posted * stride) % span if span > size else remote_off
            loff = local_off + (posted * stride) % lspan if lspan > size else local_off
            post(local, loff, remote, roff, size)
            posted += 1
        done += len(ep.wait(1))
