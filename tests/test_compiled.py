"""The optional compiled network (dpsim.compiled) must give bit-identical runs to pure Python."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dpsim.compiled import missing_build_tools

REPO = Path(__file__).resolve().parents[1]

# A DS 660B run with every flow kind: storage reads on both sides, PE<->DE RDMA, loopback copies,
# write-back, and capped HIGH-class all-to-all sharing compute NICs with the LOW class.
PROBE = f"""
import hashlib, json, sys
from dpsim import api, config, net
sets = ["workload.agents=48", "workload.max_turns=10", "workload.mal=48K"]
sc = config.load_scenario({str(REPO / "scenarios/paper/ds660b-2p4d.yaml")!r}, sets,
                          [{str(REPO / "scenarios/paper/testbed.yaml")!r}])
r = api.run(sc, api.build_workload(sc), progress=False)
digest = hashlib.sha1(r.turns.to_csv().encode() + r.links.to_csv().encode()).hexdigest()
print(json.dumps({{"compiled": net.COMPILED, "digest": digest, "turns": r.summary["turns"],
                  "flows": r.run_info["flows"], "recorded": r.run_info["network_compiled"]}}))
"""


def _package_copy(root: Path) -> Path:
    shutil.copytree(REPO / "dpsim", root / "dpsim", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.c"))
    return root


def _probe(root: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_compiled_network_gives_bit_identical_runs(tmp_path):
    why = missing_build_tools()
    if why:
        pytest.skip(f"the compiled build cannot run on this machine: {why}")
    pure = _package_copy(tmp_path / "pure")
    fast = _package_copy(tmp_path / "fast")
    built = subprocess.run([sys.executable, "-m", "dpsim.compiled", "build"], cwd=fast, capture_output=True,
                           text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    assert list((fast / "dpsim").glob("net.*.so")) or list((fast / "dpsim").glob("net.*.pyd"))

    want, got = _probe(pure), _probe(fast)
    assert want["compiled"] is False and want["recorded"] is False
    assert got["compiled"] is True and got["recorded"] is True
    assert got["turns"] == want["turns"] > 0 and got["flows"] == want["flows"]
    assert got["digest"] == want["digest"]  # every turn time and every link byte count, to the last bit


def test_status_line_and_unknown_command(capsys):
    from dpsim import compiled

    compiled.main(["status"])
    out = capsys.readouterr().out
    assert out.startswith("dpsim.net imported from ")
    with pytest.raises(SystemExit, match="unknown command 'bogus'"):
        compiled.main(["bogus"])
