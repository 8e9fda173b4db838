"""LLM client throughput: ours (async, bounded concurrency) vs one request at a time.

The fake OpenAI-compatible server runs in its own process and answers every request after a
fixed latency L, so the ideal throughput at concurrency C is C/L requests per second. The
baseline is how the published pipeline calls its endpoints: the `openai` client, one request
after the other (1/L at best). Run: `python -m bench.llm_client [--latency 0.2]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from openai import OpenAI

from mmfr_devkit.drive import run_requests
from mmfr_assets.llm import ChatRequest, LLMEndpoint
from mmfr_devkit.fake_server import start_fake_server

CONCURRENCY = (1, 8, 32, 64)
GOAL_SHARE = 0.90  # of the ideal C/L (issue: LLM endpoints)


def ours(url: str, concurrency: int, requests: int, tag: str) -> float:
    """Sustained rate: one untimed wave of `concurrency` requests first opens the session's
    connections (a one-off cost a 2.3M-row stage pays once), then `requests` are timed."""
    endpoint = LLMEndpoint(base_url=url, model="fake", max_concurrency=concurrency, timeout_s=30)
    with tempfile.TemporaryDirectory() as cache:
        with endpoint.open_session(cache=f"{cache}/cache.sqlite") as session:
            warm_up = ((i, ChatRequest.from_text(f"{tag} warm-up {i}")) for i in range(concurrency))
            assert all(r.ok for _, r in run_requests(session, warm_up))
            batch = ((i, ChatRequest.from_text(f"{tag} question {i}")) for i in range(requests))
            start = time.perf_counter()
            results = [r for _, r in run_requests(session, batch)]
            elapsed = time.perf_counter() - start
    assert all(r.ok for r in results)
    return requests / elapsed


def one_at_a_time(url: str, requests: int) -> float:
    client = OpenAI(base_url=url, api_key="none", max_retries=0)
    start = time.perf_counter()
    for i in range(requests):
        client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": f"baseline question {i}"}]
        )
    return requests / (time.perf_counter() - start)


def run(latency: float = 0.2, waves: int = 20) -> list[str]:
    server = start_fake_server({"latency_s": latency}, in_process=False)
    try:
        baseline = one_at_a_time(server.url, 20)
        lines = [
            f"LLM client, fake server latency L = {latency:.2f} s (separate process)",
            "| concurrency C | ideal C/L req/s | ours req/s | % of ideal | one-at-a-time req/s | ours / baseline |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        shares = {}
        for c in CONCURRENCY:
            rate = ours(server.url, c, c * waves, f"c{c}")
            ideal = c / latency
            shares[c] = rate / ideal
            lines.append(
                f"| {c} | {ideal:.0f} | {rate:.1f} | {100 * rate / ideal:.0f}% | {baseline:.2f} | {rate / baseline:.1f}x |"
            )
        worst = min(shares, key=shares.get)
        verdict = "**met**" if shares[worst] >= GOAL_SHARE else "**missed**"
        lines += ["", f"Goal >= {GOAL_SHARE:.0%} of C/L for C up to {max(CONCURRENCY)}: {verdict} "
                      f"(lowest {shares[worst]:.0%}, at C = {worst}); {waves} waves of C requests timed "
                      f"after one untimed warm-up wave."]
        return lines
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--waves", type=int, default=20, help="requests per slot of concurrency")
    args = parser.parse_args()
    print("\n".join(run(args.latency, args.waves)))


if __name__ == "__main__":
    main()
