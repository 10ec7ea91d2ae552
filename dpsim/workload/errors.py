"""Errors of trace reading, and the one place that turns an exception met while reading a file into
a located :class:`TraceError` (file, line): a trace reader never raises anything else."""

from __future__ import annotations

import lzma
import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO


class TraceError(ValueError):
    """A trace that cannot be read: the message names the file and, where there is one, the line."""


# Raised by a file that is unreadable, not text, or a broken archive / compressed stream.
FILE_ERRORS = (OSError, EOFError, UnicodeDecodeError, zlib.error, lzma.LZMAError, tarfile.TarError)


def describe(exc: BaseException) -> str:
    """One line for an exception met while reading a trace."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    if isinstance(exc, IsADirectoryError):
        return "a directory, not a file"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read ({exc.strerror})"
    text = str(exc).strip().removeprefix(": ").splitlines()
    if isinstance(exc, ValueError) and text:  # TraceError, a Turn invariant: the message says it all
        return text[0]
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def numbered_lines(path, open_binary: Callable[[], IO[bytes]]) -> Iterator[tuple[int, str]]:
    """(line number from 1, line) of a UTF-8 text file, each line decoded on its own so that a byte
    that is not UTF-8, or a file that cannot be read, raises a TraceError naming the exact line."""
    lineno = 0
    try:
        with open_binary() as f:
            for lineno, raw in enumerate(f, 1):
                yield lineno, raw.decode("utf-8")
    except FILE_ERRORS as exc:
        line = lineno if isinstance(exc, UnicodeDecodeError) else lineno + 1
        raise TraceError(f"{path}:{line}: {describe(exc)}") from None
