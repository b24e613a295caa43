"""Memory a hostile stream leaves behind in the pipeline's caches (issue 9, must hold).

EVENTS requests through the real pipeline (hostile_headers.py), each with a distinct 12 KB
User-Agent (distinct from its first bytes on), a distinct 3 KB Accept-Language, a distinct
client behind the trusted proxy after a 1 KB spoofed X-Forwarded-For chain, and its own Host;
in batches of 1,000, the rows dropped as they come. After a warm-up of 200 such events and a
full collection, two figures, each in a fresh process:

  RSS        the process's resident set after the stream minus before (/proc/self/status);
  traced     what tracemalloc still counts as allocated after the stream minus before.

RSS holds, besides the caches, what the allocator keeps of one batch in flight (1,000 events
of ~16 KB of headers each): the same ~16 MiB after 5,000 events as after 60,000, where it grew
with the stream before (271.6 MiB RSS, 265.5 MiB traced after 20,000, caches bounded in
entries only; 16.6 and 3.4 MiB after, in the same run).

Every cache keyed by request data is a caches.ByteLRU whose budget counts key and value bytes:
agents 1 MiB, Accept-Language 256 KiB, (peer, X-Forwarded-For) → client 2 MiB, trusted peers,
Host → site and the pseudonymiser's (day, site) hashers 64 KiB each, ≈ 3.4 MiB in all; the
bound tests/test_cache_bounds.py asserts is that plus 2 MiB of slack. Runs against any veil
(it uses only Pipeline's public parts), so the same command measures before and after.

    .venv/bin/python bench/cache_memory.py [events]
"""

import gc
import subprocess
import sys
import time
import tracemalloc

import traffic
from hostile_headers import AGENT_BYTES, LANGUAGE_BYTES, stream

from veil import agents
from veil.pipeline import Pipeline
from veil.proxy import ClientResolver
from veil.pseudonymise import Pseudonymiser
from veil.store.keys import KeyStore

EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 20_000


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(mode: str) -> None:
    cfg, _ = traffic.veil_config()
    keystore = KeyStore.open(cfg.keys)
    pipeline = Pipeline(
        cfg.policy, None, ClientResolver(cfg.trusted_proxies), Pseudonymiser(keystore), None, False
    )
    now = time.time()
    agents.warm_up()
    pipeline.process(list(stream(200, now, first=10**7)))
    gc.collect()
    if mode == "traced":
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if mode == "traced" else rss()
    kept, batch, t0 = 0, [], time.perf_counter()
    for event in stream(EVENTS, now):
        batch.append(event)
        if len(batch) == 1000:
            kept += len(pipeline.process(batch).rows)
            batch.clear()
    seconds = time.perf_counter() - t0
    del batch
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if mode == "traced" else rss()
    print(f"{mode:<8}{(after - before) / 2**20:>9.1f} MiB   ({kept} rows, {seconds:.1f} s)")
    keystore.close()


def main() -> None:
    if len(sys.argv) > 2:
        measure(sys.argv[2])
        return
    print(f"{EVENTS} events: distinct {AGENT_BYTES} B agents, {LANGUAGE_BYTES} B languages")
    print(f"{'':<8}{'growth':>9}")
    for mode in ("RSS", "traced"):
        subprocess.run([sys.executable, __file__, str(EVENTS), mode], check=True)


if __name__ == "__main__":
    main()
