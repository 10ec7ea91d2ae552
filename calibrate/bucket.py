"""The token bucket of a shaped link (tc tbf/htb on the namespace test bed;
docs/calibration.md#the-token-bucket): after an idle period its first ``bucket_bytes`` cross at
once and the rest at the rate, so a message of s bytes takes about latency + max(0, s - bucket) /
rate. Real NICs have no bucket: a profile's hardware keys carry the link's rate and latency, and
``calibration.links.NAME.bucket_bytes`` records the bucket the measurement crossed, for the fit
and the closure."""

from __future__ import annotations

from .errors import CalibrateError


def records_bucket(records: list[dict], what: str) -> int:
    """The token bucket (bytes) the records say their link had (``bucket_bytes``, written by the
    test bed's sweeps; 0 = none, as on a real NIC). One link, one bucket: a mix is a located error."""
    buckets = {int(r.get("bucket_bytes") or 0) for r in records}
    if len(buckets) > 1:
        raise CalibrateError(f"{what}: samples with different token buckets ({sorted(buckets)} bytes): fit each "
                             "measurement on its own")
    return buckets.pop() if buckets else 0


def profile_buckets(profile: dict, source: str = "<profile>") -> dict[str, int]:
    """The token bucket (bytes) of each measured link the profile records (test bed only)."""
    calibration = profile.get("calibration")
    links = calibration.get("links") if isinstance(calibration, dict) else None
    if not isinstance(links, dict):
        return {}
    out: dict[str, int] = {}
    for name, link in links.items():
        bucket = link.get("bucket_bytes") if isinstance(link, dict) else None
        if bucket is None:
            continue
        if isinstance(bucket, bool) or not isinstance(bucket, int) or bucket < 0:
            raise CalibrateError(f"{source}: calibration.links.{name}.bucket_bytes = {bucket!r}: expected a whole "
                                 "number of bytes >= 0")
        out[str(name)] = bucket
    return out


class TokenBucket:
    """A shaper's token bucket in front of a modelled link: a transfer that starts while the link is
    idle sends what the bucket holds at once and the rest at the link's rate; the bucket refills at
    that rate while the link is idle (tc tbf; docs/calibration.md#the-token-bucket)."""

    def __init__(self, env, size_bytes: int, rate_Bps: float):
        self.env, self.size_bytes, self.rate_Bps = env, size_bytes, rate_Bps
        self.tokens, self.busy, self.idle_since = float(size_bytes), 0, 0.0

    def take(self, nbytes: float) -> float:
        """Start a transfer of nbytes: the bytes left for the link's rate."""
        if self.busy == 0:
            self.tokens = min(self.size_bytes, self.tokens + (self.env.now - self.idle_since) * self.rate_Bps)
        free = min(self.tokens, nbytes)
        self.tokens -= free
        self.busy += 1
        return nbytes - free

    def release(self) -> None:
        self.busy -= 1
        if self.busy == 0:
            self.idle_since = self.env.now
