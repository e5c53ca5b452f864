"""Time and memory to prepare 50,000 IMDB-length reviews (a generated corpus), on this machine.

    python launch/benchmarks/bench_text_prep.py [--reviews 50000] [--words 230]

Generates reviews with a Zipf-distributed vocabulary of 90,000 words of 3-8 letters and IMDB's
mean length (about 230 words, 1,300 characters),
writes them as a CSV, then runs the real text preparation (stratified split, TextVectorization
adapted on train, front padding to 250) and prints wall seconds and peak resident memory.
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hindsight_ray.config.schema import DataConfig
from hindsight_ray.data import prepare


def corpus(reviews: int, words: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = np.unique(["".join(rng.choice(letters, n)) for n in rng.integers(3, 9, 95_000)])[:90_000]
    lengths = np.clip(rng.normal(words, words / 2, reviews).astype(int), 10, 2500)
    ids = np.minimum(rng.zipf(1.3, lengths.sum()), len(vocabulary)) - 1
    tokens = vocabulary[ids]
    splits = np.cumsum(lengths)[:-1]
    texts = [" ".join(chunk) + " <br /><br />" for chunk in np.split(tokens, splits)]
    return pd.DataFrame({"text": texts, "label": rng.integers(0, 2, reviews)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=50_000)
    parser.add_argument("--words", type=int, default=230)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reviews.csv"
        corpus(args.reviews, args.words).to_csv(path, index=False)
        size_mb = path.stat().st_size / 1e6
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        began = time.perf_counter()
        prepared = prepare(DataConfig(kind="text", source=str(path), num_words=88584, max_length=250))
        elapsed = time.perf_counter() - began
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine       {platform.node()} {platform.machine()} python {platform.python_version()}")
    print(f"corpus        {args.reviews} reviews, {size_mb:.0f} MB CSV")
    print(f"prepare       {elapsed:.1f} s (read, split, adapt vocabulary on train, vectorize, pad)")
    print(f"memory        peak RSS {peak:.0f} MB (before preparing: {before:.0f} MB, incl. the generated corpus)")
    print(f"result        vocabulary {prepared.num_words}, train/val/test {prepared.info['windows']}, "
          f"arrays {prepared.nbytes / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
