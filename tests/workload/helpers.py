"""Builders of tiny hand-made trace files for the reader tests."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path


def write_lines(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def mooncake_records() -> list[dict]:
    """A (2.5 blocks); B unrelated but sharing A's first block (a common system prompt); C continues
    A (A's 2 full blocks + 2 new ones); D repeats A's prompt exactly (all 3 blocks seen, partial one too)."""
    return [
        {"timestamp": 0, "input_length": 1280, "output_length": 10, "hash_ids": [1, 2, 3]},
        {"timestamp": 500, "input_length": 600, "output_length": 5, "hash_ids": [1, 9]},
        {"timestamp": 3000, "input_length": 2000, "output_length": 20, "hash_ids": [1, 2, 4, 5]},
        {"timestamp": 4000, "input_length": 1280, "output_length": 1, "hash_ids": [1, 2, 3]},
    ]


def claude_session(sid: str = "trace_0001", with_subagent: bool = True) -> dict:
    reqs = [
        {"t": 0.0, "type": "n", "in": 200, "out": 30, "hash_ids": [1, 2, 3], "api_time": 2.0, "think_time": 0.0},
        {"t": 10.0, "type": "s", "in": 300, "out": 0, "hash_ids": [1, 2, 3, 4], "api_time": 1.0, "think_time": 8.0},
    ]
    if with_subagent:
        reqs.append({"t": 40.0, "type": "subagent", "duration_ms": 25000, "subagent_type": "Explore",
                     "requests": [
                         {"t": 0.0, "type": "n", "in": 130, "out": 7, "hash_ids": [50, 51], "think_time": 0.0},
                         {"t": 5.0, "type": "n", "in": 140, "out": 9, "hash_ids": [50, 51], "think_time": 3.0},
                     ]})
    reqs.append({"t": 45.0, "type": "n", "in": 400, "out": 50, "hash_ids": [1, 2, 7, 8, 9, 10],
                 "api_time": 3.0, "think_time": 34.0})
    return {"id": sid, "block_size": 64, "hash_id_scope": "local", "tool_tokens": 10, "system_tokens": 20,
            "requests": reqs}


def write_tar(path: Path, members: dict[str, bytes], mode: str = "w:xz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


AZURE_CSV = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:17:03.9799600,4808,10
2023-11-16 18:17:04.0319600,3180,8
2023-11-16 18:17:05.9799600,110,27
"""
