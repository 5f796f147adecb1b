"""Benchmark: the event loop of the care-chain simulation, simpy against a heapq loop.

The model is the core of generator/chain.py: casualties arrive (Poisson), and pass four stages
in turn (a lift, a treatment team, an operating table for a share of them, a bed), each a pool
of servers granted in priority order (triage rank, then arrival). The same arrivals, service
times and priorities run in both; both must give the same mean wait (printed). Medians of
`--repeats` runs, each in this process. simpy is optional (`pip install -e .[bench]`).

    python bench/chain_loop.py                      # 100,000 casualties, 3 repeats
    python bench/chain_loop.py --casualties 20000
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import time

#: (servers, mean minutes): loaded at 75-85%, so queues form and clear as in a busy plan
STAGES = ((14, 45.0), (9, 30.0), (10, 90.0), (180, 600.0))


def _workload(n: int, seed: int) -> list[tuple[float, int, list[float]]]:
    rng = random.Random(seed)
    t = 0.0
    out = []
    for _ in range(n):
        t += rng.expovariate(1 / 4.0)  # a casualty every 4 minutes on average
        services = [rng.expovariate(1 / mean) for _, mean in STAGES]
        if rng.random() < 0.6:
            services[2] = 0.0  # no surgery
        out.append((t, rng.randrange(4), services))
    return out


def heapq_loop(work: list[tuple[float, int, list[float]]]) -> float:
    free = [servers for servers, _ in STAGES]
    queues: list[list[tuple[int, float, int]]] = [[] for _ in STAGES]
    events: list[tuple[float, int, int, int]] = []  # time, seq, kind (0 arrive, 1 done), who
    seq = 0
    stage = [0] * len(work)
    since = [0.0] * len(work)
    waited = 0.0
    for i, (t, _, _) in enumerate(work):
        events.append((t, i, 0, i))
    heapq.heapify(events)
    seq = len(work)

    def request(i: int, t: float) -> None:
        nonlocal seq
        s = stage[i]
        while s < len(STAGES) and work[i][2][s] == 0.0:
            s += 1
        stage[i] = s
        if s == len(STAGES):
            return
        since[i] = t
        heapq.heappush(queues[s], (work[i][1], t, i))
        grant(s, t)

    def grant(s: int, t: float) -> None:
        nonlocal seq, waited
        q = queues[s]
        while q and free[s] > 0:
            _, _, i = heapq.heappop(q)
            free[s] -= 1
            waited += t - since[i]
            seq += 1
            heapq.heappush(events, (t + work[i][2][s], seq, 1, i))

    while events:
        t, _, kind, i = heapq.heappop(events)
        if kind == 1:
            s = stage[i]
            free[s] += 1
            stage[i] += 1
            grant(s, t)
        request(i, t)
    return waited / len(work)


def simpy_loop(work: list[tuple[float, int, list[float]]]) -> float:
    import simpy

    env = simpy.Environment()
    pools = [simpy.PriorityResource(env, capacity=servers) for servers, _ in STAGES]
    total = [0.0]

    def casualty(arrive: float, rank: int, services: list[float]):  # type: ignore[no-untyped-def]
        yield env.timeout(arrive)
        for s, service in enumerate(services):
            if service == 0.0:
                continue
            asked = env.now
            with pools[s].request(priority=rank) as request:
                yield request
                total[0] += env.now - asked
                yield env.timeout(service)

    for arrive, rank, services in work:
        env.process(casualty(arrive, rank, services))
    env.run()
    return total[0] / len(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--casualties", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = _workload(args.casualties, 1)
    loops = {"heapq": heapq_loop}
    try:
        import simpy  # noqa: F401

        loops["simpy"] = simpy_loop
    except ImportError:
        print("simpy is not installed (pip install -e .[bench]): heapq only")
    print(f"{'loop':>6} {'casualties':>10} {'seconds':>8} {'casualties/s':>12} {'mean wait':>10}")
    for name, loop in loops.items():
        times = []
        mean = 0.0
        for _ in range(args.repeats):
            started = time.perf_counter()
            mean = loop(work)
            times.append(time.perf_counter() - started)
        seconds = statistics.median(times)
        print(
            f"{name:>6} {args.casualties:>10,} {seconds:>8.2f} {args.casualties / seconds:>12,.0f}"
            f" {mean:>9.1f}m",
            flush=True,
        )


if __name__ == "__main__":
    main()
