"""One measurement: an attack, the benign client alongside, and the target's memory."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from tests.security.slowclients.benign import BenignClient
from tests.security.slowclients.common import SAMPLE_INTERVAL_S, Json
from tests.security.slowclients.memory import RssSampler, vm_rss_kb


@dataclass
class Measurement:
    """One attack on one target, with what the benign client and the RSS sampler saw."""

    attack: Json
    benign: Json
    rss_start_kb: int
    rss_peak_kb: int
    rss_after_kb: int
    after_s: float
    rss_samples: list[tuple[float, int]]
    attack_s: float

    def to_json(self) -> Json:
        return asdict(self)


def measure(
    host: str,
    port: int,
    pids: Callable[[], list[int]],
    run_attack: Callable[[], Json],
    *,
    after_s: float,
    settled: Callable[[int, int], bool] | None = None,
    benign_rate: float = 20.0,
) -> Measurement:
    """Run the benign client and the RSS sampler while `run_attack()` (which blocks until
    the attack is over and returns its report) runs; then keep sampling for `after_s`
    (less once `settled(start_kb, now_kb)` holds, if given)."""
    rss_start = vm_rss_kb(pids())
    with RssSampler(pids) as sampler:
        with BenignClient(host, port, benign_rate) as benign:
            time.sleep(0.5)
            started = time.monotonic()
            report = run_attack()
            attack_s = time.monotonic() - started
        ends = time.monotonic() + after_s
        after = sampler.sample()
        while time.monotonic() < ends and not (settled and settled(rss_start, after)):
            time.sleep(SAMPLE_INTERVAL_S)
            after = sampler.sample()
        waited = after_s - max(0.0, ends - time.monotonic())
    return Measurement(
        attack=report,
        benign=benign.report.summary(),
        rss_start_kb=rss_start,
        rss_peak_kb=max(sampler.peak_kb, rss_start),
        rss_after_kb=after,
        after_s=round(waited, 2),
        rss_samples=sampler.samples,
        attack_s=round(attack_s, 2),
    )
