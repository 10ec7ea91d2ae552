"""Errors that the command line turns into one clear line and a non-zero exit status."""

from __future__ import annotations


class CalibrateError(Exception):
    """A failure the user can act on; the CLI prints ``str(err)`` alone and exits with code 2."""

    exit_code = 2


class Unavailable(CalibrateError):
    """An optional back-end (pyverbs, an RDMA device, torch, a GPU, the 3FS binding) is missing."""

    exit_code = 3


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, with its type when the message is empty."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
