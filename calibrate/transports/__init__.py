"""Transports behind one interface (see :mod:`calibrate.transports.base`): ``tcp`` (sockets, runs
anywhere) and ``rdma`` (pyverbs RC QPs, imported only when asked for)."""

from __future__ import annotations

from ..errors import CalibrateError
from .base import Completion, Endpoint, Region, RemoteRegion, Transport, transfer_batch

NAMES = ("tcp", "rdma")


def get_transport(name: str, **opts) -> Transport:
    """A transport by name. ``rdma`` raises :class:`calibrate.errors.Unavailable` with one line when
    pyverbs or a device is missing."""
    if name == "tcp":
        from .tcp import TcpTransport

        return TcpTransport()
    if name == "rdma":
        from .rdma import RdmaTransport

        return RdmaTransport(**opts)
    raise CalibrateError(f"unknown transport {name!r} (choose from {', '.join(NAMES)})")


__all__ = ["Completion", "Endpoint", "Region", "RemoteRegion", "Transport", "get_transport", "transfer_batch"]
