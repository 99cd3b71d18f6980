"""``resolver media generate | evaluate``: the generated audio/image set and its measurements."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("media", help="the generated audio/image set: build it, measure the media evidence on it")
    s.add_argument("action", choices=["generate", "evaluate"])
    s.add_argument("--size", default="small", choices=["tiny", "small", "large"])
    s.add_argument("--seed", type=int, default=12)
    s.add_argument(
        "--split",
        default="eval",
        choices=["eval", "fit", "tune", "valid"],
        help="eval (default): the measured set; fit / tune: matcher training sets; valid: held out from "
        "training, judged by the promotion gate; fit, tune and valid share no source with the evaluation "
        "sets (seed 12, tiny and small) nor with each other",
    )
    s.add_argument("--out", help="the set's folder (default: .cache/media/set-SIZE-SEED, set-SPLIT-SIZE-SEED)")
    s.add_argument("--fresh", action="store_true", help="rebuild even if the folder holds the set")
    s.add_argument("--json", help="evaluate: write the figures to this file")
    s.set_defaults(fn=run)


def run(args: argparse.Namespace, _settings: object) -> int:
    from media.generated_set import generate

    media_set = generate(args.seed, args.size, Path(args.out) if args.out else None, args.fresh, args.split)
    roles = {r: sum(i.role == r for i in media_set.items) for r in sorted({i.role for i in media_set.items})}
    print(f"[media] {len(media_set.items)} items in {media_set.folder} (built in {media_set.seconds:.1f} s): {roles}")
    if args.action == "evaluate":
        from media.evaluation import evaluate

        figures = evaluate(media_set)
        print(json.dumps(figures, indent=2, default=float))
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2, default=float) + "\n")
    return 0
