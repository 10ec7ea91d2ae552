"""The optional compiled network (dpsim.tools.compiled) must give bit-identical runs to pure Python."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dpsim.tools.compiled import compiled_files, missing_build_tools, stale_sources

REPO = Path(__file__).resolve().parents[1]
RESOURCES = Path("dpsim", "kernel", "resources")  # where the compiled modules live

# A DS 660B run with every flow kind: storage reads on both sides, PE<->DE RDMA, loopback copies,
# write-back, and capped HIGH-class all-to-all sharing compute NICs with the LOW class.
PROBE = f"""
import hashlib, json, sys
from dpsim import api
from dpsim.scenario import loading
from dpsim.kernel import loop
from dpsim.kernel.resources import net
sets = ["workload.agents=48", "workload.max_turns=10", "workload.mal=48K"]
sc = loading.load_scenario({str(REPO / "scenarios/paper/ds660b-2p4d.yaml")!r}, sets,
                          [{str(REPO / "scenarios/paper/testbed.yaml")!r}])
r = api.run(sc, api.build_workload(sc), progress=False)
digest = hashlib.sha1(r.turns.to_csv().encode() + r.links.to_csv().encode()).hexdigest()
print(json.dumps({{"compiled": net.COMPILED, "loop_compiled": not loop.__file__.endswith(".py"), "digest": digest,
                  "turns": r.summary["turns"],
                  "flows": r.run_info["flows"], "recorded": r.run_info["network_compiled"]}}))
"""


def _package_copy(root: Path) -> Path:
    shutil.copytree(REPO / "dpsim", root / "dpsim", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.c"))
    return root


def _probe(root: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _compiled_here() -> bool:
    return bool(compiled_files()) and not stale_sources()


def test_compiled_network_gives_bit_identical_runs(tmp_path):
    why = missing_build_tools()
    if why:
        pytest.skip(f"the compiled build cannot run on this machine: {why}")
    pure = _package_copy(tmp_path / "pure")
    if _compiled_here():
        fast = REPO  # the install built it (setup.py): compare that one, no second build
    else:
        fast = _package_copy(tmp_path / "fast")
        built = subprocess.run([sys.executable, "-m", "dpsim.tools.compiled", "build"], cwd=fast, capture_output=True,  # the entry point
                               text=True, timeout=600)
        assert built.returncode == 0, built.stdout + built.stderr
    assert list((fast / RESOURCES).glob("net.*.so")) or list((fast / RESOURCES).glob("net.*.pyd"))

    want, got = _probe(pure), _probe(fast)
    assert want["compiled"] is False and want["recorded"] is False and want["loop_compiled"] is False
    assert got["compiled"] is True and got["recorded"] is True and got["loop_compiled"] is True
    assert got["turns"] == want["turns"] > 0 and got["flows"] == want["flows"]
    assert got["digest"] == want["digest"]  # every turn time and every link byte count, to the last bit


def test_status_line_and_unknown_command(capsys):
    from dpsim.tools import compiled

    compiled.main(["status"])
    out = capsys.readouterr().out
    assert out.startswith("dpsim.kernel.resources.net imported from ")
    with pytest.raises(SystemExit, match="unknown command 'bogus'"):
        compiled.main(["bogus"])


def _setup_copy(root: Path) -> Path:
    _package_copy(root)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, root / name)
    return root


# What `pip install -e .` runs for the compiled modules: setup.py's build_ext, in place. (Through
# setuptools' own setup() it would need the setuptools pip's isolated build gets, not the installed one.)
BUILD_EXT = """
import runpy
from setuptools import Distribution
setup = runpy.run_path("setup.py", run_name="setup_parts")
dist = Distribution({"name": "dpsim-test", "ext_modules": setup["_extensions"](),
                     "cmdclass": {"build_ext": setup["OptionalBuildExt"]}})
command = dist.get_command_obj("build_ext")
command.inplace = True
command.ensure_finalized()
command.run()
"""


def _build_ext(root: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BUILD_EXT], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)


def test_install_without_a_c_compiler_is_pure_python(tmp_path):
    root = _setup_copy(tmp_path)
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # python only: no cc, no gcc
    done = _build_ext(root, env)
    assert done.returncode == 0, done.stderr
    assert "not building the compiled network: no C compiler" in done.stderr
    assert not list((root / "dpsim").rglob("*.so"))


def test_install_with_a_failing_compiler_falls_back_to_pure_python(tmp_path):
    why = missing_build_tools()
    if why:
        pytest.skip(f"needs Cython and a compiler on PATH to get as far as compiling: {why}")
    root = _setup_copy(tmp_path)
    done = _build_ext(root, {**os.environ, "CC": "false"})  # the compiler exits with an error
    assert done.returncode == 0, done.stderr
    assert "the compiled network was not built" in done.stderr
    assert not list((root / "dpsim").rglob("*.so"))  # none, not half: fluid's compiled code needs net's


@pytest.mark.parametrize("folder, name", [(RESOURCES, "net"), (Path("dpsim", "kernel"), "loop")])
def test_compiled_modules_older_than_their_source_are_found(tmp_path, folder, name):
    here = tmp_path / folder
    here.mkdir(parents=True)
    (here / f"{name}.py").write_text("")
    (here / f"{name}.pxd").write_text("")
    (here / f"{name}.cpython-311-x86_64-linux-gnu.so").write_text("")
    for source in (f"{name}.py", f"{name}.pxd"):
        os.utime(here / source, (1000, 1000))
    assert stale_sources(tmp_path) == []
    os.utime(here / f"{name}.pxd", (4e9, 4e9))  # edited after the build
    assert stale_sources(tmp_path) == [f"{name}.pxd"]
    (here / f"{name}.cpython-311-x86_64-linux-gnu.so").unlink()
    assert stale_sources(tmp_path) == []  # nothing compiled: the .py is what runs


def test_staleness_is_judged_only_in_a_source_checkout(tmp_path):
    """An installed wheel's files carry the time pip extracted them (the .so before its .py), so the
    mtime check applies only where sources are edited: a checkout with pyproject.toml beside dpsim/."""
    from dpsim.kernel.resources.build_state import in_checkout

    assert in_checkout(REPO)
    assert not in_checkout(tmp_path)  # e.g. site-packages


@pytest.mark.parametrize("first", ["resources.fluid", "resources.net", "resources.elements", "loop"])
def test_any_network_module_can_be_imported_first(first):
    """The compiled modules cimport each other's types; importing the solver first used to fail
    (a cycle through net.pxd) until the types moved to the leaf module `elements`."""
    done = subprocess.run([sys.executable, "-c", f"import dpsim.kernel.{first}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
