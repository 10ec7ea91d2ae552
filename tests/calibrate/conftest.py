"""Fixtures for the calibration harness tests. Namespace tests skip with the probe's reason."""

from __future__ import annotations

import os

import pytest

from calibrate.testbed import Testbed, netns_available

_NETNS = None


def netns_reason() -> str | None:
    global _NETNS
    if _NETNS is None:
        ok, reason = netns_available()
        _NETNS = "" if ok else reason
    return _NETNS or None


@pytest.fixture
def require_netns():
    reason = netns_reason()
    if reason:
        pytest.skip(f"network namespace test bed unavailable: {reason}")


@pytest.fixture
def make_testbed(require_netns, request):
    """Factory: make_testbed(storage_rate, compute_rate, priority=False) -> an up Testbed, deleted
    by a finalizer whatever the test does."""
    beds: list[Testbed] = []

    def make(storage_rate="200Mbit/s", compute_rate="800Mbit/s", **kw):
        bed = Testbed(storage_rate, None, compute_rate, prefix=f"dt{os.getpid() % 10000}{len(beds)}", **kw)
        beds.append(bed)
        request.addfinalizer(lambda: bed.down(quiet=True))
        return bed.up()

    return make
