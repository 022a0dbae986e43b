"""Runs a fuzz target for a long time outside pytest: with atheris (coverage-guided, libFuzzer
flags such as -runs=N, -max_total_time=S and corpus directories) when it is installed, or else
(or with --plain first) with a random-mutation loop over the seeds (--runs N, --seconds S,
--seed N), so the harness runs wherever Python does. A target raises on a finding; both modes
stop at the first.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

# Bytes that matter to the targets: where mutations like to put them.
TOKENS = [
    b"\r\n", b"\r", b"\n", b" ", b"\t", b":", b";", b",", b"\x00", b"\x0b", b"\x7f", b"\xff",
    b"\r\n\r\n", b"0\r\n\r\n", b"Content-Length: ", b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: ", b"chunked", b"Connection: close", b"Host: a", b"HTTP/1.1",
    b"HTTP/1.0", b"Expect: 100-continue", b"Upgrade: x\r\nConnection: upgrade", b"ffffffff",
    b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x00\x00\x00\x01",
]  # fmt: skip


def mutate(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    """One to four random edits: flips, inserts, deletes, duplications, splices."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(out))
        op = rng.randrange(7)
        if op == 0 and out:
            out[min(pos, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[pos:pos] = rng.choice(TOKENS)
        elif op == 2:
            del out[pos : pos + rng.randint(1, 16)]
        elif op == 3:
            out[pos:pos] = out[pos : pos + rng.randint(1, 64)] * rng.randint(1, 4)
        elif op == 4:
            other = rng.choice(seeds)
            start = rng.randint(0, len(other))
            out[pos:] = other[start:]
        elif op == 5 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        else:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(out)


def _mutation_loop(
    target: Callable[[bytes], None], seeds: Sequence[bytes], argv: list[str]
) -> None:
    parser = argparse.ArgumentParser(description="random-mutation fuzzing (atheris not installed)")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    corpus = list(seeds)
    started = time.monotonic()
    print(f"mutation loop: seed {seed}, {args.runs} runs", flush=True)
    for run in range(1, args.runs + 1):
        data = mutate(rng, rng.choice(corpus), seeds)
        target(data)
        if len(corpus) < 10_000 and rng.random() < 0.01:
            corpus.append(data)  # (no coverage feedback: keep a few mutants to go deeper)
        if run % 100_000 == 0:
            print(f"#{run} in {time.monotonic() - started:.0f} s", flush=True)
        if args.seconds is not None and time.monotonic() - started > args.seconds:
            break
    print(f"done: {run} inputs in {time.monotonic() - started:.0f} s, no finding", flush=True)


def run(
    target: Callable[[bytes], None],
    seeds: Sequence[bytes],
    argv: list[str],
    prepare: Callable[[], object],
) -> None:
    """Fuzz `target` until a finding or the run limits. `prepare` imports the code under test,
    so that atheris can instrument it for coverage."""
    try:
        if argv[1:2] == ["--plain"]:
            raise ImportError
        import atheris
    except ImportError:
        prepare()
        _mutation_loop(target, seeds, [arg for arg in argv[1:] if arg != "--plain"])
        return
    prepare()
    atheris.instrument_all()
    if not any(not arg.startswith("-") for arg in argv[1:]):
        # No corpus directory given: start from the seeds, in a scratch one.
        corpus = tempfile.mkdtemp(prefix="interpserve-fuzz-")
        write_seeds(corpus, seeds)
        argv = [*argv, corpus]
    atheris.Setup(argv, target)
    atheris.Fuzz()


def write_seeds(directory: str, seeds: Sequence[bytes]) -> None:
    """Seed an atheris corpus directory (atheris mutates what it finds there)."""
    import hashlib
    import os

    os.makedirs(directory, exist_ok=True)
    for seed in seeds:
        name = hashlib.sha1(seed).hexdigest()
        with open(os.path.join(directory, name), "wb") as f:
            f.write(seed)


if __name__ == "__main__":
    sys.exit("run fuzz_parser.py or fuzz_wire.py")
