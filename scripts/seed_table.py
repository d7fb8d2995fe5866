"""The table and plot of a several-seed benchmark from its results.json (`tgazsr eval ... -o DIR`).

    python scripts/seed_table.py mini-world-benchmark/eval/results.json [--attack pgd] [--out DIR]

Writes DIR/seeds.md (mean ± standard deviation per method and dataset, robust and clean, and the ranking by
mean average robust accuracy) and DIR/seeds.png (trade-off plot with error bars); DIR defaults to the folder
of results.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tgazsr_cli.analysis.seeds import ranking, seed_markdown, seed_plot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--attack", default="pgd")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    records = json.loads(args.results.read_text())
    out = args.out or args.results.parent
    order = "\n".join(f"{i}. {group}: robust {robust.text()}, clean {clean.text()}"
                      for i, (group, clean, robust) in enumerate(ranking(records, args.attack), start=1))
    text = seed_markdown(records, args.attack) + "\n**Ranking by mean average robust accuracy**\n\n" + order + "\n"
    (out / "seeds.md").write_text(text)
    seed_plot(records, args.attack, out / "seeds.png")
    print(text)


if __name__ == "__main__":
    main()
