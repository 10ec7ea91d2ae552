"""``dpsim-calibrate``: measure, fit, check.

Every failure the user can act on (a missing back-end, an unreachable peer, a bad argument) is
printed as one line on stderr with a non-zero exit status; no traceback.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time

import click

from dpsim.scenario.units import UnitError, parse_bandwidth, parse_bytes, parse_time

from . import __version__
from .errors import CalibrateError, Unavailable, one_line
from .measure import SampleLog, format_table, parse_size_list, provenance, read_samples, summarise
from .testbed import DEFAULT_COMPUTE_RATE, DEFAULT_STORAGE_RATE

SWITCH_INTERVAL_S = 0.0005
INTERNAL_ERROR_EXIT = 70  # EX_SOFTWARE of sysexits.h


def _guard(fn):
    """Turn CalibrateError / Unavailable / interruption into one line and an exit status."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except Unavailable as e:
            click.echo(f"dpsim-calibrate: {one_line(e)}", err=True)
            sys.exit(e.exit_code)
        except CalibrateError as e:
            click.echo(f"dpsim-calibrate: {one_line(e)}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("dpsim-calibrate: interrupted; samples taken so far are in the raw file (use --resume)", err=True)
            sys.exit(130)
        except click.ClickException:
            raise
        except Exception as e:  # a bug, not bad input: still one line (DPSIM_TRACEBACK=1 shows the traceback)
            if os.environ.get("DPSIM_TRACEBACK"):
                raise
            click.echo(f"dpsim-calibrate: internal error ({type(e).__name__}: {one_line(e)}); please report it "
                       "with the command line (DPSIM_TRACEBACK=1 shows where)", err=True)
            sys.exit(INTERNAL_ERROR_EXIT)

    return wrapper


def _quantity(parse):
    """A click callback that checks an option is a positive finite quantity of `parse`'s kind (e.g.
    parse_bandwidth) and passes the text on unchanged; a bad one is a usage error naming the option."""

    def check(ctx, param, value):
        if value is None:
            return value
        try:
            number = parse(value)
        except UnitError as e:
            raise click.BadParameter(str(e)) from None
        if not number > 0:
            raise click.BadParameter(f"{value!r}: expected a positive quantity")
        return value

    return check


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in str(text).split(",") if x.strip())


def _open_log(raw: str | None, resume: bool, **meta) -> SampleLog:
    log = SampleLog(raw, resume=resume)
    if not log.samples:
        log.write({"kind": "meta", **provenance(**meta)})
    return log


def _print_summary(samples: list[dict], as_json: bool = False) -> None:
    rows = summarise([s for s in samples if s.get("kind") not in ("meta", "experiment")])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(format_table(rows))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="dpsim-calibrate")
def main() -> None:
    """Measure a cluster (storage, transport, GPU copies, the dual-path loader), fit dpsim's
    hardware parameters, and check the fitted simulator against the measurements."""
    signal.signal(signal.SIGTERM, _sigterm)
    # threads hand work to each other (I/O completions, the loader's control messages); with the
    # default 5 ms GIL switch interval a waking thread can wait that long behind a busy one
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def _sigterm(*_):
    raise KeyboardInterrupt


# ------------------------------------------------------------------------------------ serve
@main.command()
@click.option("--listen", default="0.0.0.0:18515", show_default=True, help="HOST:PORT (port 0 = any)")
@click.option("--transport", default="tcp", show_default=True, type=click.Choice(["tcp", "rdma"]))
@click.option("--buffer", "buffer_size", default="64MiB", callback=_quantity(parse_bytes), show_default=True,
              help="size of the 'mem' region")
@click.option("--files", type=click.Path(exists=True, file_okay=False), help="serve every file of DIR as a region")
@click.option("--delay", default="0s", show_default=True, help="delay injected into each READ and WRITE (latency ground truth)")
@click.option("--duration", default=None, help="exit after this long (default: until killed)")
@click.option("--device", default=None, help="RDMA device (e.g. mlx5_0)")
@click.option("--gid-index", default=None, type=int, help="RoCE GID index")
@_guard
def serve(listen, transport, buffer_size, files, delay, duration, device, gid_index):
    """Passive side of a transport: advertises regions and serves READ/WRITE requests."""
    if transport == "rdma":
        from .transports.rdma import RdmaServer

        server = RdmaServer(listen, device=device, gid_index=gid_index)
    else:
        from .transports.tcp import TcpServer

        server = TcpServer(listen, delay_s=parse_time(delay))
    server.add_buffer("mem", bytearray(int(parse_bytes(buffer_size))))
    if files:
        server.add_directory(files)
    click.echo(f"LISTENING {server.address}", nl=True)
    sys.stdout.flush()
    server.start()
    try:
        if duration:
            time.sleep(parse_time(duration))
        else:
            while True:
                time.sleep(3600)
    finally:
        server.close()


# -------------------------------------------------------------------------------- transport
@main.command()
@click.argument("address")
@click.option("--transport", default="tcp", show_default=True, type=click.Choice(["tcp", "rdma"]))
@click.option("--op", default="read", show_default=True, type=click.Choice(["read", "write"]))
@click.option("--link", default="compute", show_default=True, help="label of the measured link in the profile")
@click.option("--region", default="mem", show_default=True)
@click.option("--sizes", default="4KiB..4MiB", show_default=True, help="'LO..HI[/per-octave]' or a list")
@click.option("--reps", default=8, show_default=True)
@click.option("--warmup", default=3, show_default=True)
@click.option("--depths", default="1", show_default=True, help="outstanding requests per stream, e.g. 1,4,16")
@click.option("--concurrency", default="1", show_default=True, help="parallel streams (QPs), e.g. 1,2,4")
@click.option("--count", default=16, show_default=True, help="messages per sample when depth or concurrency > 1")
@click.option("--priority", default=None, type=int, help="SO_PRIORITY (tcp) / service level (rdma)")
@click.option("--device", default=None, help="RDMA device (e.g. mlx5_0)")
@click.option("--gid-index", default=None, type=int)
@click.option("--doorbell", default=None, type=int, help="RDMA: work requests chained per post_send (doorbell batching)")
@click.option("--seed", default=1, show_default=True)
@click.option("--gap", default=None, callback=_quantity(parse_time),
              help="idle this long before each timed sample (lets a shaper's token bucket refill; test bed)")
@click.option("--bucket", default=None, callback=_quantity(parse_bytes),
              help="the link's token bucket, recorded in each sample for the fit (test bed; real NICs have none)")
@click.option("--raw", type=click.Path(dir_okay=False), help="append raw samples to this JSONL file")
@click.option("--resume", is_flag=True, help="continue an interrupted --raw file")
@click.option("--json", "as_json", is_flag=True)
@_guard
def transport(address, transport, op, link, region, sizes, reps, warmup, depths, concurrency, count, priority,
              device, gid_index, doorbell, seed, gap, bucket, raw, resume, as_json):
    """Size / depth / concurrency sweep of one-sided READ or WRITE to a `serve` peer."""
    from .sweeps import TransportSweep

    opts = {k: v for k, v in (("device", device), ("gid_index", gid_index), ("doorbell", doorbell)) if v is not None}
    if transport == "rdma":
        from .transports.rdma import probe

        probe(device)  # one clear line if pyverbs or a device is missing
    sweep = TransportSweep(address, transport, op, region, link, tuple(parse_size_list(sizes)), reps, warmup,
                           _ints(depths), _ints(concurrency), count, priority, seed, opts,
                           gap_s=parse_time(gap) if gap else 0.0, bucket_bytes=int(parse_bytes(bucket)) if bucket else 0)
    with _open_log(raw, resume, tool="transport", transport=transport) as log:
        sweep.run(log)
        _print_summary([s for s in log.samples if s.get("config") == sweep.config()], as_json)


@main.command()
@click.argument("address")
@click.option("--flow", "flows", multiple=True, required=True,
              help="BYTES[:PRIORITY[:START]] per concurrent READ stream, e.g. 16MiB:0x10010 16MiB:0x10020:0.1")
@click.option("--transport", default="tcp", show_default=True, type=click.Choice(["tcp", "rdma"]))
@click.option("--region", default="mem", show_default=True)
@click.option("--link", default="compute", show_default=True)
@click.option("--raw", type=click.Path(dir_okay=False))
@click.option("--resume", is_flag=True)
@_guard
def contend(address, flows, transport, region, link, raw, resume):
    """Concurrent READ streams with different priorities (SO_PRIORITY / service level): when each
    started and finished; the priority (virtual-lane) and sharing ground truth."""
    from .sweeps import contend as run_contend

    spec = []
    for f in flows:
        parts = f.split(":")
        prio = int(parts[1], 0) if len(parts) > 1 and parts[1] else None
        start = parse_time(parts[2]) if len(parts) > 2 else 0.0
        spec.append((int(parse_bytes(parts[0])), prio, start))
    with _open_log(raw, resume, tool="contend") as log:
        for r in run_contend(address, spec, log, transport, region, link=link):
            click.echo(f"flow {r['flow']} priority {r['priority']}: {r['bytes']} B from {r['t_start']:.4f} s to "
                       f"{r['t_end']:.4f} s ({r['bytes'] / r['elapsed_s'] / 1e6:.2f} MB/s)")


# ---------------------------------------------------------------------------------- storage
@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--reader", default="odirect", show_default=True, type=click.Choice(["posix", "odirect", "usrbio"]))
@click.option("--model", default=None, help="lay block files out as Full Blocks of this model (ds27b, ds660b, qwen32b)")
@click.option("--block-tokens", default=64, show_default=True)
@click.option("--block-size", default=None, help="Full Block size when no --model is given, e.g. 2MiB")
@click.option("--blocks", default=64, show_default=True, help="blocks per file to create when missing")
@click.option("--files", "nfiles", default=2, show_default=True)
@click.option("--sizes", default=None, help="read sizes for the latency sweep (default: the Full Block size)")
@click.option("--depths", default="1,2,4,8,16", show_default=True, help="queue depths for the bandwidth sweep")
@click.option("--reps", default=8, show_default=True)
@click.option("--count", default=32, show_default=True, help="reads per bandwidth sample")
@click.option("--warmup", default=2, show_default=True)
@click.option("--link", default="storage", show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--raw", type=click.Path(dir_okay=False))
@click.option("--resume", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@_guard
def storage(directory, reader, model, block_tokens, block_size, blocks, nfiles, sizes, depths, reps, count, warmup,
            link, seed, raw, resume, as_json):
    """Read Full Blocks from files in DIRECTORY (a 3FS mount or local disk): size sweep at depth 1,
    then a queue-depth sweep."""
    from . import storage as st

    layout = st.BlockLayout.for_model(model, block_tokens) if model else st.BlockLayout(int(parse_bytes(block_size or "2MiB")))
    files = st.ensure_block_files(directory, layout, blocks, nfiles)
    rd = st.open_reader(reader, files)
    size_list = tuple(parse_size_list(sizes, align=4096)) if sizes else (layout.full_block,)
    with _open_log(raw, resume, tool="storage", **rd.versions()) as log:
        st.StorageSweep(rd, layout, size_list, _ints(depths), reps, count, warmup, link, seed).run(log)
        _print_summary([s for s in log.samples if s.get("kind") == "storage"], as_json)
    rd.close()


# -------------------------------------------------------------------------------------- gpu
@main.command()
@click.option("--device", default="cuda", show_default=True, help="torch device; 'cpu' runs the same code, not representative")
@click.option("--sizes", default="64KiB..256MiB", show_default=True)
@click.option("--reps", default=10, show_default=True)
@click.option("--model", default=None, help="also time prefill/decode shapes of this model (ds27b, ds660b, qwen32b)")
@click.option("--raw", type=click.Path(dir_okay=False))
@click.option("--resume", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@_guard
def gpu(device, sizes, reps, model, raw, resume, as_json):
    """Pinned host<->device copy bandwidth versus size, and kernel timing for a model's shapes."""
    from . import gpu as g

    torch = g.require_torch(device)
    with _open_log(raw, resume, tool="gpu", **g.versions(torch, device)) as log:
        g.copy_sweep(torch, device, parse_size_list(sizes), reps, log)
        if model:
            g.kernel_timing(torch, device, model, reps, log)
        _print_summary([s for s in log.samples if s.get("kind") == "gpu"], as_json)


# ----------------------------------------------------------------------------------- loader
@main.command()
@click.option("--storage-pe", required=True,
              help="storage as the prefill host reads it: file:DIR[?reader=odirect|posix|usrbio] (e.g. a 3FS mount) "
                   "or the HOST:PORT of a `serve --files` storage host")
@click.option("--storage-de", default=None, help="(recorded only) the storage address the decode agent uses")
@click.option("--decode", "decode_addr", default=None, help="decode agent control address (DE read path)")
@click.option("--listen", default="0.0.0.0:0", show_default=True, help="where this prefill host accepts layer blocks")
@click.option("--advertise", default=None, help="address the decode agent uses to reach --listen")
@click.option("--model", default=None)
@click.option("--block-size", default="1MiB", show_default=True)
@click.option("--layers", default=8, show_default=True, help="layer blocks per Full Block (when no --model)")
@click.option("--blocks-per-request", default=8, show_default=True)
@click.option("--requests", default=32, show_default=True)
@click.option("--paths", default="both", show_default=True, type=click.Choice(["pe", "de", "both"]))
@click.option("--depth", default=2, show_default=True, help="requests in flight per path")
@click.option("--files", default="blocks", show_default=True, help="prefix of the block files on the storage host")
@click.option("--repeat", default=1, show_default=True)
@click.option("--transport", default="tcp", show_default=True, type=click.Choice(["tcp", "rdma"]),
              help="transport of the storage reads and the DE path's layer-block writes")
@click.option("--priority", default=None, type=int, help="SO_PRIORITY (tcp) / service level (rdma) of KV traffic")
@click.option("--raw", type=click.Path(dir_okay=False))
@click.option("--resume", is_flag=True)
@_guard
def loader(storage_pe, storage_de, decode_addr, listen, advertise, model, block_size, layers, blocks_per_request,
           requests, paths, depth, files, repeat, transport, priority, raw, resume):
    """The dual-path loader, run on the prefill host: PE path (storage -> local buffer -> target)
    and DE path (storage -> decode host buffer -> layer blocks over the transport -> target)."""
    from . import loader as ld

    cfg = ld.LoaderConfig.build(model=model, block_size=block_size, layers=layers,
                                blocks_per_request=blocks_per_request, requests=requests, paths=paths, depth=depth,
                                files=files, transport=transport)
    with _open_log(raw, resume, tool="loader", transport=transport) as log:
        res = ld.run_prefill_side(cfg, storage_pe, storage_de, decode_addr, listen, advertise, log, repeat=repeat,
                                  priority=priority)
    click.echo(ld.format_result(res))


@main.command("decode-agent")
@click.option("--listen", default="0.0.0.0:18600", show_default=True)
@click.option("--storage", "storage_addr", required=True,
              help="storage as this host reads it: file:DIR[?reader=...] or HOST:PORT of a `serve --files` host")
@click.option("--duration", default=None)
@_guard
def decode_agent(listen, storage_addr, duration):
    """Decode-host side of the DE read path: reads Full Blocks from storage into its buffer and writes
    layer blocks to the prefill host over the transport."""
    from .decode_agent import DecodeAgent

    DecodeAgent(listen, storage_addr).serve(parse_time(duration) if duration else None)


# -------------------------------------------------------------------------------------- fit
@main.command()
@click.argument("raw", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="profile YAML to write")
@click.option("--storage-nic", default=None, callback=_quantity(parse_bandwidth),
              help="storage NIC line rate, e.g. 400Gbps (read_efficiency = fit / line rate)")
@click.option("--compute-nic", default=None, callback=_quantity(parse_bandwidth),
              help="compute NIC line rate (recorded beside the fitted goodput)")
@click.option("--boot", default=300, show_default=True, type=click.IntRange(10, 100_000), help="bootstrap resamples")
@click.option("--min-size", default=None, callback=_quantity(parse_bytes),
              help="leave out messages smaller than this (e.g. below a protocol breakpoint)")
@click.option("--max-size", default=None, callback=_quantity(parse_bytes), help="leave out messages larger than this")
@click.option("--json", "as_json", is_flag=True, help="also print the fit report as JSON")
@_guard
def fit(raw, output, storage_nic, compute_nic, boot, min_size, max_size, as_json):
    """Fit latency + size / bandwidth per link (with CIs, hold-out and goodness of fit) and bandwidth
    versus concurrency, and write a profile a scenario can `include:`."""
    from .profile import FIT_KINDS, build_profile, fit_report_text, fit_samples, write_profile

    samples = read_samples(raw)
    lo = parse_bytes(min_size) if min_size else 0
    hi = parse_bytes(max_size) if max_size else float("inf")
    samples = [s for s in samples if s.get("kind") not in FIT_KINDS or lo <= s.get("size", 0) <= hi]
    if not any(s.get("kind") in FIT_KINDS and "elapsed_s" in s for s in samples):
        raise CalibrateError(f"{', '.join(raw)}: no {'/'.join(FIT_KINDS)} samples to fit"
                             + (" between --min-size and --max-size" if min_size or max_size else ""))
    report = fit_samples(samples, n_boot=boot)
    prof = build_profile(report, samples, raw_files=list(raw),
                         storage_nic=parse_bandwidth(storage_nic) if storage_nic else None,
                         compute_nic=parse_bandwidth(compute_nic) if compute_nic else None)
    write_profile(prof, output)
    click.echo(fit_report_text(report))
    click.echo(f"wrote {output}")
    for warning in prof["calibration"].get("warnings", []):
        click.echo(f"dpsim-calibrate fit: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=float))


# ------------------------------------------------------------------------------------ check
@main.command()
@click.argument("profile", type=click.Path(exists=True, dir_okay=False))
@click.option("--raw", "raw", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--tolerance", default=0.05, show_default=True, type=click.FloatRange(0, 1e6), help="relative error that counts as agreement")
@click.option("--perftest-json", default=None, type=click.Path(exists=True), help="ib_*_bw --out_json file to compare with")
@click.option("--json", "as_json", is_flag=True)
@_guard
def check(profile, raw, tolerance, perftest_json, as_json):
    """Predict every measured experiment (loader runs; link sweeps when their raw files are given)
    with dpsim's hardware model loaded from the profile, and print predicted versus measured times
    per experiment and per path. Exit 1, naming the gate, when the worst experiment or the worst
    path's mean completion-time error exceeds --tolerance."""
    from .check import closure, closure_gates, format_closure, perftest_compare

    samples = read_samples(raw)
    res = closure(profile, samples)
    gates = closure_gates(res, tolerance)
    if as_json:
        res["gates"] = [{"name": g.name, "value": g.value, "limit": g.limit, "where": g.where, "passed": g.passed}
                        for g in gates]
        click.echo(json.dumps(res, indent=2, default=float))
    else:
        click.echo(format_closure(res))
        for g in gates:
            click.echo(g.line())
    if perftest_json:
        click.echo(perftest_compare(perftest_json, samples))
    failed = [g for g in gates if not g.passed]
    if failed:
        click.echo("dpsim-calibrate: closure failed: " + "; ".join(g.line()[len("FAIL: "):] for g in failed), err=True)
        sys.exit(1)


# ---------------------------------------------------------------------------------- testbed
@main.command()
@click.argument("action", type=click.Choice(["up", "down", "check"]))
@click.option("--prefix", default="dpcal", show_default=True)
@click.option("--storage-rate", default=DEFAULT_STORAGE_RATE, show_default=True, callback=_quantity(parse_bandwidth))
@click.option("--compute-rate", default=DEFAULT_COMPUTE_RATE, show_default=True, callback=_quantity(parse_bandwidth))
@click.option("--priority", is_flag=True, help="htb strict-priority classes on the compute link")
@_guard
def testbed(action, prefix, storage_rate, compute_rate, priority):
    """Namespace test bed with known tc rates (root; see calibrate/testbed.py)."""
    from .testbed import Testbed, netns_available

    if action == "check":
        ok, reason = netns_available()
        if not ok:
            raise Unavailable(f"network namespaces unavailable: {reason}")
        click.echo("network namespaces, veth, tbf and htb are available")
        return
    bed = Testbed(storage_rate, None, compute_rate, priority=priority, prefix=prefix)
    if action == "up":
        bed.up()
        click.echo(json.dumps(bed.describe(), indent=2))
    else:
        bed.down(quiet=True)


# ---------------------------------------------------------------------------------- summary
@main.command()
@click.argument("raw", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@_guard
def table(raw, as_json):
    """perftest-like table of raw samples (bytes, iterations, peak/average bandwidth, rate, latency)."""
    _print_summary(read_samples(raw), as_json)


if __name__ == "__main__":  # python -m calibrate.cli
    main()
