"""`chatstack world --world tiny --output_dir outputs/tiny/world`: write the world to JSONL
(people, QA with ground truth, pretraining text, encyclopedia) to read or to feed elsewhere."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from chatstack.world import datasets as wd


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="chatstack world", description=__doc__)
    p.add_argument("--world", default="tiny", help="preset name in datasets_cfg/worlds/")
    p.add_argument("--output_dir", default="outputs/tiny/world")
    a = p.parse_args(argv)
    out = Path(a.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = wd.get_world(a.world)
    with open(out / "people.jsonl", "w") as f:
        for person in world.to_dict()["people"]:
            f.write(json.dumps(person) + "\n")
    for name, ds in {"qa": wd.qa(a.world), "pretraining": wd.pretraining_text(a.world),
                     "encyclopedia": wd.encyclopedia(a.world)}.items():
        ds.to_json(out / f"{name}.jsonl")
    counts = {s: len(world.by_split(s)) for s in ("qa_train", "qa_heldout", "unseen")}
    print(json.dumps({"output_dir": str(out), "people": len(world.people), **counts}))
    return 0
