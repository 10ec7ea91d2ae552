"""Scenarios: YAML files validated by pydantic, with `include:` and `--set` overrides.

A scenario has seven sections: cluster, hardware, model, workload, policy, slo, run (plus free-form
`calibration` provenance written by calibration profiles). Quantities are unit strings parsed by
`dpsim.scenario.units`. `include:` lists other YAML files (paths relative to the including file) merged first,
in order; the including file's own keys win, and `--set a.b=value` wins over everything. Every error
names the file that set the offending field, the field, the value and what was expected.
Validation at the edge (finite values, physical ranges, units where a bare number is ambiguous, no
booleans for numbers) is listed in docs/validation-of-inputs.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from dpsim.scenario import units
from dpsim.scenario.cost import CostConfig

# Reading the files lives in dpsim.scenario.files; these names stay importable from here.
from dpsim.scenario.files import ScenarioError, apply_overrides, deep_merge, load_yaml_with_includes, read_yaml  # noqa: F401
from dpsim.scenario.models import ModelName, ModelSpec, get_model
from dpsim.workload.synthetic import PAPER_SET_STATS

# Physical ranges: a value outside is an error, never a silent run (docs/validation-of-inputs.md).
# They are wide on purpose (a thought experiment may make GPUs 100x faster); plausibility warnings
# for ordinary hardware live in `dpsim.scenario.plausibility`.
BANDWIDTH_RANGE = (1e3, 1e18)  # bytes/s: 1 kB/s .. 1 EB/s
BYTES_RANGE = (1e3, 1e16)  # bytes: 1 kB .. 10 PB
SECONDS_RANGE = (1e-9, 1e7)  # s: 1 ns .. ~116 days
FLOPS_RANGE = (1e6, 1e21)  # FLOP/s
TOKENS_RANGE = (1, 2**30)  # tokens
MAX_NODES = 100_000  # nodes per role or EP group
MAX_COUNT = 1_000_000  # queue depths, turns, block sizes
MAX_AGENTS = 10_000_000  # trajectories
MIN_SIM_TIME_S = 1e-3  # run.max_sim_time below this cannot finish one forward pass
EDGE = {"edge": True}  # validation context of user input: ambiguous bare numbers need a unit


def _quantity(parser, example: str, allow_zero: bool = False, unit_required: bool = False,
              bounds: tuple[float, float] = (0.0, float("inf"))):
    """A unit-string field: parsed, finite, inside `bounds` (or 0 when `allow_zero`). In user input
    (context EDGE), a bare non-zero number is refused where `unit_required` (400 what? Gbps? GB/s?)."""
    def parse(value: Any, info: ValidationInfo) -> float:
        try:
            number = parser(value)
        except units.UnitError as exc:
            raise ValueError(f"{exc}; expected e.g. '{example}'") from None
        if unit_required and number != 0 and (info.context or {}).get("edge") and not units.has_unit(value):
            raise ValueError(f"a bare number is ambiguous here; give a unit, e.g. '{example}'")
        if number == 0 and allow_zero:
            return number
        if number < 0 or (number == 0 and not allow_zero):
            raise ValueError(f"expected a {'non-negative' if allow_zero else 'positive'} quantity like '{example}'")
        low, high = bounds
        if not low <= number <= high:
            raise ValueError(f"{number:.4g} (SI units) is outside the physical range [{low:g}, {high:g}]; "
                             f"expected e.g. '{example}'")
        return number
    return BeforeValidator(parse)


Bandwidth = Annotated[float, _quantity(units.parse_bandwidth, "400Gbps", unit_required=True, bounds=BANDWIDTH_RANGE)]
Bytes = Annotated[float, _quantity(units.parse_bytes, "80GiB", unit_required=True, bounds=BYTES_RANGE)]
BytesOrZero = Annotated[float, _quantity(units.parse_bytes, "8GB", allow_zero=True, unit_required=True,
                                         bounds=BYTES_RANGE)]
Seconds = Annotated[float, _quantity(units.parse_time, "300ms", bounds=SECONDS_RANGE)]
SecondsOrZero = Annotated[float, _quantity(units.parse_time, "2us", allow_zero=True, bounds=SECONDS_RANGE)]
Flops = Annotated[float, _quantity(units.parse_flops, "990TFLOPS", unit_required=True, bounds=FLOPS_RANGE)]
Tokens = Annotated[float, _quantity(units.parse_count, "64K", bounds=TOKENS_RANGE)]
# An efficiency: below 0.1 % no hardware runs (1e-300 would make every transfer last forever).
Fraction = Annotated[float, Field(ge=1e-3, le=1.0)]
Scale = Annotated[float, Field(ge=1e-6, le=1e6)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        """Strict types: `True` is not a count, a fraction or a name (pydantic would read it as 1)."""
        if isinstance(value, bool) and not _accepts_bool(cls.model_fields[info.field_name].annotation):
            raise ValueError("expected a number or a string, got a boolean")
        return value


def _accepts_bool(annotation: Any) -> bool:
    return annotation is bool or bool in get_args(annotation)


class ClusterConfig(_Section):
    prefill_nodes: int = Field(ge=1, le=MAX_NODES, description="P: nodes whose engines prefill")
    decode_nodes: int = Field(ge=1, le=MAX_NODES, description="D: nodes whose engines decode")
    gpus_per_node: int = Field(8, ge=1, le=64, description="g: GPUs (one engine each) per node")
    # DeepSeek's V3/R1 inference system runs EP32 prefill (4 nodes) and EP144 decode (18 nodes).
    prefill_ep_nodes: int = Field(4, ge=1, le=MAX_NODES, description="nodes per prefill EP group (MoE models)")
    decode_ep_nodes: int = Field(18, ge=1, le=MAX_NODES, description="nodes per decode EP group (MoE models)")


class GpuConfig(_Section):
    hbm_capacity: Bytes = "80GB"
    hbm_bandwidth: Bandwidth = "3.35TB/s"
    peak_flops_fp8: Flops = "1979TFLOPS"
    peak_flops_bf16: Flops = "989TFLOPS"
    gemm_efficiency: Fraction = 0.68
    attention_efficiency: Fraction = 0.6
    hbm_efficiency: Fraction = 0.9
    hbm_reserved: BytesOrZero = "8GB"
    prefill_pass_overhead: SecondsOrZero = "5ms"
    decode_step_overhead: SecondsOrZero = "2ms"
    copy_submit_overhead: SecondsOrZero = "6us"


class NicConfig(_Section):
    bandwidth: Bandwidth = "400Gbps"
    latency: SecondsOrZero = "2us"


class StorageNicConfig(_Section):
    bandwidth: Bandwidth = "400Gbps"
    count: int = Field(1, ge=1, le=64, description="s: storage NICs per node")


class HostConfig(_Section):
    memory_bandwidth: Bandwidth = "500GB/s"
    dram_buffer: Bytes = "80GB"


class StorageConfig(_Section):
    read_efficiency: Fraction = 0.86
    io_overhead: SecondsOrZero = "0us"
    queue_depth: int = Field(64, ge=1, le=MAX_COUNT)
    request_latency: SecondsOrZero = "0us"
    inflight_requests: int = Field(2, ge=1, le=MAX_COUNT, description="requests a node reads at once (FIFO beyond)")
    aggregate_bandwidth: Bandwidth | None = None


class DramTierEviction(StrEnum):
    """How the DRAM tier picks what to drop when full (docs/whatif.md#1-a-dram-cache-tier-in-front-of-storage)."""

    LRU_BLOCK = "lru_block"  # least recently used Full Block first


class DramTierConfig(_Section):
    """A Mooncake-store-style pool of host DRAM in front of storage (dpsim.kernel.dram_tier); off by default."""

    enabled: bool = False
    # Paper §8: the SGL(MC) baseline ran SGLang with a Mooncake store of 1.5 TB DRAM per node.
    capacity_per_node: Bytes = "1.5TB"
    # DRAM of the pool taken by other state (e.g. an RL rollout's offloaded training state) [assumed 0].
    reserved_per_node: BytesOrZero = "0GB"
    eviction: DramTierEviction = DramTierEviction.LRU_BLOCK

    @field_validator("reserved_per_node")
    @classmethod
    def _fits(cls, reserved: float, info: ValidationInfo) -> float:
        capacity = info.data.get("capacity_per_node")
        if capacity is not None and reserved > capacity:
            raise ValueError(f"reserves {reserved / 1e9:.4g} GB, more than the pool's capacity_per_node of "
                             f"{capacity / 1e9:.4g} GB; expected at most the capacity (equal: an empty pool)")
        return reserved


class NetworkConfig(_Section):
    low_class_share: float = Field(0.01, ge=1e-4, le=0.9999)


class HardwareConfig(_Section):
    gpu: GpuConfig = GpuConfig()
    compute_nic: NicConfig = NicConfig()
    storage_nic: StorageNicConfig = StorageNicConfig()
    host: HostConfig = HostConfig()
    storage: StorageConfig = StorageConfig()
    network: NetworkConfig = NetworkConfig()
    dram_tier: DramTierConfig = DramTierConfig()


class ModelConfig(_Section):
    name: ModelName  # the names of dpsim.scenario.models.MODELS
    # DSA models (DeepSeek-V3.2-like): the indexer key cache is stored, read and moved with the KV
    # (docs/modeling.md#indexer-key-cache); false leaves it out, as the profiles fitted before it did.
    indexer_keys_cached: bool = True

    def spec(self) -> ModelSpec:
        """The model's cost parameters (`dpsim.scenario.models`) with this section's options applied."""
        spec = get_model(self.name)
        if spec.indexer_keys_cached != self.indexer_keys_cached:
            spec = dataclasses.replace(spec, indexer_keys_cached=self.indexer_keys_cached)
        return spec


class ToolLatencySource(StrEnum):
    """Where each turn's tool latency comes from (docs/whatif.md#5-tool-latency-and-larger-working-sets)."""

    FIXED = "fixed"  # workload.tool_latency, the same for every turn
    CLAUDE_CODE = "claude_code"  # drawn from real Claude Code sessions' gaps (dpsim.workload.tool_latency)


class PhaseProfileConfig(_Section):
    """Two phases per trajectory (docs/whatif.md#4-adaptive-prefilldecode-roles): turns before `split` (a fraction of
    its turns) scale their appends and generations by the `first_` factors, the rest by `second_`."""

    split: float = Field(0.5, gt=0, lt=1)
    first_append_scale: float = Field(1.0, gt=0, le=1e3)
    first_gen_scale: float = Field(1.0, gt=0, le=1e3)
    second_append_scale: float = Field(1.0, gt=0, le=1e3)
    second_gen_scale: float = Field(1.0, gt=0, le=1e3)


class WorkloadConfig(_Section):
    trace: str | None = Field(None, min_length=1, description="trace file (format detected); relative to the scenario file")
    mal: Tokens = Field("64K", description="maximum context length of the synthetic set: 32K, 48K or 64K")
    agents: int | None = Field(None, ge=1, le=MAX_AGENTS, description="number of trajectories (None: all of a trace)")
    mode: Literal["offline", "online"] = "offline"
    aps: float | None = Field(None, gt=0, le=1e6, description="online: agent arrivals per second (Poisson)")
    tool_latency: SecondsOrZero = "0s"
    tool_latency_source: ToolLatencySource = Field(
        ToolLatencySource.FIXED, description="'fixed' (tool_latency per turn) or 'claude_code' (drawn from real "
        "Claude Code gaps up to tool_latency_max; synthetic sets only; dpsim.workload.tool_latency)")
    tool_latency_max: Seconds = "30s"  # claude_code draws: gaps above are people, not tools [assumed; issue 19's range]
    max_context: Tokens | None = Field(None, description="cut trace sessions whose context exceeds this")
    time_scale: Scale = 1.0
    max_turns: int | None = Field(None, ge=1, le=MAX_COUNT, description="truncate trajectories to this many turns")
    append_scale: float = Field(1.0, gt=0, le=1e3, description="multiply every append (synthetic sets)")
    gen_scale: float = Field(1.0, gt=0, le=1e3, description="multiply every generation (synthetic sets)")
    phase_profile: PhaseProfileConfig | None = Field(None, description="scale appends/generations by trajectory phase")

    @field_validator("phase_profile")
    @classmethod
    def _phases_synthetic_only(cls, profile, info: ValidationInfo):
        """Phases rebuild a trajectory from its appends and generations, which only the synthetic set's
        purely agentic turns have (docs/whatif.md#4-adaptive-prefilldecode-roles)."""
        if profile is not None and info.data.get("trace") is not None:
            raise ValueError("a phase profile applies to the synthetic set only; remove workload.trace or it")
        return profile

    @field_validator("tool_latency_source")
    @classmethod
    def _tool_gaps_synthetic_only(cls, source: ToolLatencySource, info: ValidationInfo) -> ToolLatencySource:
        if source is ToolLatencySource.CLAUDE_CODE and info.data.get("trace") is not None:
            raise ValueError("draws tool latencies for the synthetic sets; a trace carries its own think times "
                             "(scale them with workload.time_scale), expected 'fixed' with workload.trace")
        return source

    @field_validator("mal")
    @classmethod
    def _published_set(cls, mal: float, info: ValidationInfo) -> float:
        """Without a trace the workload is a synthetic set, and only three exist (paper §6)."""
        if info.data.get("trace") is None and int(mal) not in PAPER_SET_STATS:
            raise ValueError(f"no synthetic set with a maximum context of {int(mal):,} tokens; expected 32K, 48K or "
                             "64K (or give workload.trace)")
        return mal


class WholePromptKvRead(StrEnum):
    """When whole-prompt prefill reads a request's hit KV from storage (docs/modeling.md#basic-pipeline).
    Layerwise prefill always reads ahead."""

    AHEAD = "ahead"  # into the read side's DRAM buffer as soon as the request is placed
    AT_PASS = "at_pass"  # when the prefill pass that needs it forms (storage -> DRAM -> HBM, then compute)
    NEXT_PASS = "next_pass"  # double buffering: while a pass computes, the next pass's KV (storage -> DRAM)

    @property
    def by_prefill_engine(self) -> bool:
        """The prefill engine's loader reads the KV (at its pass, or one pass ahead), not the dispatch."""
        return self is not WholePromptKvRead.AHEAD


class ReadSplit(StrEnum):
    """How much of a request's hit KV each side reads:
    docs/whatif.md#2-split-reads-one-requests-kv-from-both-paths-at-once."""

    WHOLE = "whole"  # all of it on the side with the shorter read queue (paper §5): today's behaviour
    BALANCED = "balanced"  # split between PE and DE node so both read queues end equal (paper §6.1 future work)


class DispatchOrder(StrEnum):
    """Which request a scheduler serves first (docs/whatif.md#6-tail-aware-scheduling)."""

    FIFO = "fifo"  # arrival order; PE by the paper's alpha/beta rule (paper §5): today's behaviour
    DEADLINE = "deadline"  # earliest TTFT deadline first, PE with the earliest expected first token


class RoleSwitching(StrEnum):
    """Whether nodes change role between prefill and decode as load shifts:
    docs/whatif.md#4-adaptive-prefilldecode-roles."""

    FIXED = "fixed"  # the layout of `cluster` for the whole run: today's behaviour
    BACKLOG = "backlog"  # move one node at a time toward the side whose backlog is out of bounds


class AdaptivePdConfig(_Section):
    """Role switching (docs/whatif.md#4-adaptive-prefilldecode-roles). Every default is [assumed]: the switch cost is an
    engine restart in the other role (weights stay; KV pool, CUDA graphs, warm-up), swept 0-120 s
    there; the backlog bounds are 1/2 and 1/8 of the paper's 4 s TTFT SLO (paper §6)."""

    mode: RoleSwitching = RoleSwitching.FIXED
    switch_cost: SecondsOrZero = Field("30s", description="node idle between draining and its new role")
    check_every: Seconds = Field("10s", description="how often the controller looks at the load")
    backlog_high: Seconds = Field("2s", description="prefill backlog (per PE) above which a D node turns P")
    backlog_low: Seconds = Field("0.5s", description="prefill backlog (per PE) below which a P node may turn D")
    decode_hbm_limit: Fraction = Field(0.7, description="D under pressure above this KV HBM use; no D->P past it")

    @field_validator("backlog_low")
    @classmethod
    def _below_high(cls, low: float, info: ValidationInfo) -> float:
        high = info.data.get("backlog_high")
        if high is not None and low >= high:
            raise ValueError(f"must be below backlog_high ({high:g} s), or nodes would switch back and forth")
        return low


class System(StrEnum):
    """The three systems the paper compares (docs/architecture.md#paper-systems): the values are the YAML spellings."""

    BASIC = "basic"  # whole-prompt prefill, storage reads on the prefill side only
    DUALPATH = "dualpath"  # layerwise prefill, reads on both sides, the DualPath scheduler
    ORACLE = "oracle"  # DualPath with free I/O: the bound the paper measures against


class SchedulerName(StrEnum):
    """The global schedulers a scenario may name; `dpsim.kernel.policies.scheduler.SCHEDULERS` maps
    each to its class (a test checks that every name has one)."""

    DUALPATH = "dualpath"  # docs/architecture.md#paper-scheduler: read-queue and load thresholds, DE balance
    ROUND_ROBIN = "round_robin"  # the Basic system's placement


@dataclass(frozen=True)
class Switches:
    """The ablation switches after `policy.system` defaults are applied (docs/architecture.md#paper-systems)."""

    system: System
    layerwise: bool
    dual_path: bool
    scheduler: SchedulerName
    isolation: bool
    kv_read: WholePromptKvRead  # when hit KV is read: AHEAD whenever prefill is layerwise
    free_io: bool


class PolicyConfig(_Section):
    system: System = System.DUALPATH
    layerwise: bool | None = None
    dual_path: bool | None = None
    scheduler: SchedulerName | None = None
    isolation: bool | None = None
    whole_prompt_kv_read: WholePromptKvRead = Field(
        WholePromptKvRead.AT_PASS,
        description="whole-prompt prefill (Basic): read hit KV 'at_pass' (when its pass forms), 'next_pass' "
                    "(while the pass before it computes) or 'ahead' (as soon as it is placed); layerwise "
                    "prefill always reads ahead")
    alpha: Seconds = "3s"  # read-queue threshold: tokens readable in this time (docs/architecture.md#paper-scheduler)
    beta: Seconds = "5s"  # PE overload threshold: tokens one GPU prefills in this time (docs/architecture.md#paper-scheduler)
    z_slack: float = Field(1.05, ge=1.0, le=100.0)  # DE balance target multiplier (docs/architecture.md#paper-scheduler)
    attention_quota: Seconds = "300ms"  # per forward pass (docs/architecture.md#paper-scheduler)
    block_tokens: int = Field(64, ge=1, le=MAX_COUNT)  # tokens per KV block [assumed, docs/architecture.md#paper-data-paths]
    de_bypass: bool = Field(False, description="GPUDirect RDMA of the prompt KV straight into decode HBM, "
                            "without the DE DRAM buffer (docs/whatif.md#3-de-buffer-bypass-gpudirect-rdma-into-decode-hbm)")
    read_split: ReadSplit = ReadSplit.WHOLE  # docs/whatif.md#2-split-reads-one-requests-kv-from-both-paths-at-once
    dispatch_order: DispatchOrder = DispatchOrder.FIFO  # docs/whatif.md#6-tail-aware-scheduling
    adaptive_pd: AdaptivePdConfig = AdaptivePdConfig()  # docs/whatif.md#4-adaptive-prefilldecode-roles


class SloConfig(_Section):
    ttft: Seconds = "4s"
    tpot: Seconds = "50ms"


class RunConfig(_Section):
    seed: int = Field(0, ge=0, le=2**63 - 1)
    max_sim_time: Seconds | None = None
    bin: Seconds = "1s"
    progress: bool | None = None

    @field_validator("max_sim_time")
    @classmethod
    def _long_enough(cls, max_sim_time: float | None) -> float | None:
        if max_sim_time is not None and max_sim_time < MIN_SIM_TIME_S:
            raise ValueError(f"{max_sim_time:g} s simulates nothing (not one forward pass); expected at least "
                             f"{MIN_SIM_TIME_S * 1e3:g} ms, e.g. '600s', or leave it unset to run every turn")
        return max_sim_time


class Scenario(_Section):
    """A complete, validated scenario."""

    name: str = "scenario"
    cluster: ClusterConfig
    hardware: HardwareConfig = HardwareConfig()
    model: ModelConfig
    workload: WorkloadConfig = WorkloadConfig()
    policy: PolicyConfig = PolicyConfig()
    slo: SloConfig = SloConfig()
    run: RunConfig = RunConfig()
    cost: CostConfig | None = None  # prices and power (dpsim/scenario/cost.py); no cost figures without it
    calibration: dict[str, Any] | None = None
    source_path: str | None = Field(None, exclude=True)
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @field_validator("policy")
    @classmethod
    def _what_ifs_combine(cls, policy: PolicyConfig, info: ValidationInfo) -> PolicyConfig:
        """What-if options that dpsim does not model together (docs/whatif.md)."""
        hardware = info.data.get("hardware")
        if hardware is not None and hardware.dram_tier.enabled and policy.read_split is ReadSplit.BALANCED:
            raise ValueError("read_split: balanced is not modelled with hardware.dram_tier.enabled (the tier counts "
                             "its hits per read side, and a split read has two); expected read_split: whole or the "
                             "tier off")
        return policy

    @property
    def warnings(self) -> list[str]:
        """Plausibility warnings found when the scenario was loaded (`dpsim.scenario.plausibility`), one
        located line each; empty for a scenario built in Python."""
        return list(self._warnings)

    def effective_policy(self) -> Switches:
        """The ablation switches after `policy.system` defaults are applied (docs/architecture.md#paper-systems)."""
        p = self.policy
        advanced = p.system is not System.BASIC
        layerwise = advanced if p.layerwise is None else p.layerwise
        default_scheduler = SchedulerName.DUALPATH if advanced else SchedulerName.ROUND_ROBIN
        return Switches(
            system=p.system,
            layerwise=layerwise,
            dual_path=advanced if p.dual_path is None else p.dual_path,
            scheduler=default_scheduler if p.scheduler is None else p.scheduler,
            isolation=advanced if p.isolation is None else p.isolation,
            kv_read=WholePromptKvRead.AHEAD if layerwise else p.whole_prompt_kv_read,
            free_io=p.system is System.ORACLE,
        )


def validate_scenario(data: dict, origins: dict[tuple, str] | None = None, default_source: str = "<scenario>") -> Scenario:
    try:
        return Scenario.model_validate(data, context=EDGE)
    except ValidationError as exc:
        raise ScenarioError(_format_validation_error(exc, data, origins or {}, default_source)) from None


def _format_validation_error(exc: ValidationError, data: dict, origins: dict, default_source: str) -> str:
    errors = exc.errors()
    first = errors[0]
    loc = tuple(str(p) for p in first["loc"])
    field = ".".join(loc)
    source = origins.get(loc, default_source)
    kind = first["type"]
    if kind == "extra_forbidden":
        section = ".".join(loc[:-1]) or "the top level"
        allowed = _allowed_keys(loc[:-1])
        message = f"unknown key '{loc[-1]}' in {section}" + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
        line = f"{source}: {field}: {message}"
    elif kind == "missing":
        line = f"{source}: {field}: required field is missing"
    else:
        value = first.get("input")
        msg = first["msg"].removeprefix("Value error, ")
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        line = f"{source}: {field} = {shown}: {msg}"
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return line


def _allowed_keys(loc: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = Scenario
    for part in loc:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [name for name in model.model_fields if name != "source_path"]


def scenario_json_schema() -> dict:
    return Scenario.model_json_schema()
