"""Ensembles and level biases on the held-out probabilities that ``epitome_cv.py --dump`` saved.

Question it answers: can a mechanism's rare level (IP's weak interpretations, 3.7 % of the pairs) be
predicted often enough to lift macro-F1 without costing accuracy, by averaging the probabilities of
several training seeds (``--member K`` runs of epitome_cv.py) and/or by adding a bias to that level's
log-probability before the argmax? It trains nothing; it prints one line per rule with the mean
held-out accuracy and macro-F1 over the draws, the per-draw figures, and how often the level is predicted.

    tools/venv/bin/python bench/epitome_cv.py IP --dump /tmp/ip_cv              # member 0
    tools/venv/bin/python bench/epitome_cv.py IP --dump /tmp/ip_cv --member 1   # another seed, same draws
    tools/venv/bin/python bench/epitome_decision_rules.py /tmp/ip_cv IP --level 1 --biases 0,0.5,1,1.5
"""
import argparse
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def load_dumps(folder, mechanism):
    """``{draw: {member: (probs [N, 3], true levels [N])}}``."""
    found = defaultdict(dict)
    for path in sorted(Path(folder).glob(f"{mechanism}_draw*_member*.npz")):
        draw, member = map(int, re.search(r"_draw(\d+)_member(\d+)\.npz$", path.name).groups())
        with np.load(path) as z:
            found[draw][member] = (z["probs"], z["levels"])
    if not found:
        raise SystemExit(f"no {mechanism}_draw*_member*.npz in {folder}; run epitome_cv.py --dump {folder} first")
    return dict(found)


def decide(probs, level, bias):
    """Argmax of the log-probabilities with ``bias`` added to ``level``'s."""
    scores = np.log(np.clip(probs, 1e-9, None))
    scores[:, level] += bias
    return scores.argmax(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("mechanism", choices=["ER", "IP", "EX"])
    ap.add_argument("--level", type=int, default=1, help="the level to bias (1: weak)")
    ap.add_argument("--biases", default="0,0.5,1,1.5,2")
    args = ap.parse_args()
    dumps = load_dumps(args.folder, args.mechanism)
    members = sorted(set.intersection(*(set(m) for m in dumps.values())))  # members present in every draw
    rules = [(f"member {k}", [k]) for k in members]
    rules += [(f"mean of members 0..{n - 1}", members[:n]) for n in range(2, len(members) + 1)]
    print(f"{args.mechanism}: {len(dumps)} draws, members {members}; bias on level {args.level}")
    for name, chosen in rules:
        for bias in (float(b) for b in args.biases.split(",")):
            rows = []
            for draw in sorted(dumps):
                probs = np.mean([dumps[draw][k][0] for k in chosen], axis=0)
                truth = dumps[draw][chosen[0]][1]
                pred = decide(probs, args.level, bias)
                rows.append((accuracy_score(truth, pred), f1_score(truth, pred, average="macro", labels=[0, 1, 2]),
                             int((pred == args.level).sum())))
            acc, f1, count = np.array(rows).T
            print(f"{name:22s} bias {bias:4.1f}: accuracy {acc.mean():.4f} macro-F1 {f1.mean():.4f} "
                  f"(per draw {np.round(acc, 3).tolist()} / {np.round(f1, 3).tolist()}), "
                  f"level {args.level} predicted {count.mean():.1f} times per draw")


if __name__ == "__main__":
    main()
