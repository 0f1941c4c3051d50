#!/usr/bin/env python3
"""Draw the documentation figures (docs/figures/*.png) with matplotlib.

    tools/venv/bin/python tools/draw_figures.py              # writes docs/figures/model.png and stages.png
    tools/venv/bin/python tools/draw_figures.py --out /tmp   # somewhere else

- ``model.png``: the speech-LLM (docs/method.md#components): frozen Whisper encoder -> adapter -> LLM with partial
  LoRA; RE-LLM's emotion nuance module (frozen emotion encoder, fusion, emotion and A/V/D heads).
- ``stages.png``: which stage writes which folder and which outputs each stage reads (egs/TEMPLATE/stages.sh,
  DEVELOPING.md#stage-contracts).
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

REPO = Path(__file__).resolve().parents[1]
FROZEN = "#dbe4f0"   # blue-grey: frozen weights
TRAINED = "#fdd9a8"  # orange: trained in stage 4
DATA = "#f2f2f2"     # inputs and outputs
NUANCE = "#7a4fa3"   # the outline of RE-LLM's emotion nuance module


def box(ax, x, y, w, h, text, colour, size=9, bold=False, edge="#444444", style="round,pad=0.02,rounding_size=0.08",
        linestyle="-"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle=style, facecolor=colour, edgecolor=edge, linewidth=1.2,
                                linestyle=linestyle))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, weight="bold" if bold else "normal",
            wrap=True)
    return (x, y, w, h)


def arrow(ax, start, end, text="", dashed=False, rad=0.0, colour="#333333", size=7.5, text_offset=(0, 0)):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=colour, linewidth=1.2,
                                 linestyle=(0, (4, 3)) if dashed else "-", connectionstyle=f"arc3,rad={rad}",
                                 shrinkA=2, shrinkB=2))
    if text:
        ax.text((start[0] + end[0]) / 2 + text_offset[0], (start[1] + end[1]) / 2 + text_offset[1], text,
                fontsize=size, ha="center", va="center", color=colour,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.9})


def right(b):
    return (b[0] + b[2], b[1] + b[3] / 2)


def left(b):
    return (b[0], b[1] + b[3] / 2)


def top(b):
    return (b[0] + b[2] / 2, b[1] + b[3])


def bottom(b):
    return (b[0] + b[2] / 2, b[1])


def draw_model(path):
    fig, ax = plt.subplots(figsize=(12.5, 6.4))
    ax.set_xlim(0, 12.5)
    ax.set_ylim(0, 6.4)
    ax.axis("off")

    wav = box(ax, 0.2, 3.3, 1.5, 0.9, "speech\n16 kHz waveform", DATA)
    whisper = box(ax, 2.2, 3.3, 2.1, 0.9, "Whisper encoder\n(large-v2; frozen)", FROZEN, bold=True)
    adapter = box(ax, 5.4, 3.3, 2.6, 0.9, "adapter: 3 x Conv1d + GLU,\nstride 8 (trained)", TRAINED, size=8.5)
    llm = box(ax, 9.0, 2.8, 3.3, 1.9, "LLM: Qwen-7B-Chat (frozen)\n+ partial LoRA, active at the\nspeech "
              "positions only (trained)\n\nChatML: system prompt, instruction,\n<speech tokens>, response", FROZEN,
              size=8.5)
    response = box(ax, 9.15, 5.3, 3.0, 0.6, "empathetic response / SER answer", DATA, size=8.5)
    prompt = box(ax, 9.35, 1.6, 2.6, 0.6, "prompt tokens (text)", DATA, size=8.5)
    head = box(ax, 5.4, 5.1, 1.7, 0.85, "emotion head\n5 classes (CE)", TRAINED, size=8.5)

    arrow(ax, right(wav), left(whisper))
    arrow(ax, right(whisper), left(adapter), "[T, 1280]\n50 frames/s", text_offset=(0, 0.38))
    arrow(ax, right(adapter), (9.0, 3.75), "N = T / 8\ntokens\n[N, 4096]", text_offset=(0, -0.55))
    arrow(ax, top(llm), bottom(response))
    arrow(ax, top(prompt), bottom(llm))
    arrow(ax, (6.25, 4.2), bottom(head), colour="#8a5a00")
    ax.text(7.2, 4.6, "mean-pooled\nadapter output", fontsize=7.5, color="#8a5a00", ha="left", va="center")

    # RE-LLM's emotion nuance module (dashed outline)
    ax.add_patch(FancyBboxPatch((0.1, 0.15), 8.3, 2.75, boxstyle="round,pad=0.02,rounding_size=0.1",
                                facecolor="none", edgecolor=NUANCE, linewidth=1.4, linestyle=(0, (5, 3))))
    ax.text(0.3, 2.62, "emotion nuance module: RE-LLM only (BLSP-Emo has none of this)", fontsize=8.5,
            color=NUANCE, weight="bold", ha="left")
    emotion = box(ax, 2.2, 1.1, 2.1, 0.95, "dimensional emotion\nencoder (wav2vec 2.0,\naudeering; frozen)", FROZEN,
                  size=8.5)
    fusion = box(ax, 4.9, 1.55, 2.2, 0.75, "fusion: the embedding joined\nto every Whisper frame", "white", size=8)
    avd = box(ax, 7.25, 0.35, 1.0, 0.85, "A/V/D head\n(MSE)", TRAINED, size=8)
    arrow(ax, bottom(wav), left(emotion), rad=0.3)
    arrow(ax, right(emotion), left(fusion), "[1024]", text_offset=(0, 0.2))
    arrow(ax, top(fusion), (6.0, 3.3), "[T, 1280 + 1024]:\na wider adapter input", text_offset=(0.85, 0.05))
    arrow(ax, (7.75, 3.3), top(avd), colour="#8a5a00")

    # legend
    for x, colour, label in ((8.9, FROZEN, "frozen"), (10.0, TRAINED, "trained (stage 4)"), (11.8, DATA, "data")):
        box(ax, x, 0.35, 0.3, 0.3, "", colour)
        ax.text(x + 0.38, 0.5, label, fontsize=8, va="center")
    ax.set_title("The speech-LLM: BLSP-Emo, and RE-LLM = BLSP-Emo + the emotion nuance module "
                 "(sizes of the paper recipes)", fontsize=11)
    save(fig, path)


STAGES = (  # (name, what, folders written, what it reads)
    ("stage 1", "data preparation", "data/<split>/<set>.json\nprepare_report.json",
     "the corpus (db.sh; mini:\nsynthesised here)"),
    ("stage 2a", "emotion encoder training\n(train_emotion_encoder=true)", "exp/emotion_encoder/<split>/",
     "data/"),
    ("stage 2", "frozen Whisper + emotion\nencoder features", "dump/<split>/<set>/",
     "data/ (manifests, audio),\nexp/emotion_encoder/"),
    ("stage 3", "teacher: expected responses\n(text LLM)", ("exp/responses/<split>/<set>/\nexpected.jsonl, "
     "continuation.jsonl"), "data/"),
    ("stage 4", "two-step alignment training\n(BLSP-Emo, RE-LLM)", ("exp/<model>/<split>/seed<seed>/\nfinal/, save/, "
     "training_curves.png"), "data/, dump/, exp/responses/\n(RE-LLM: BLSP-Emo's final/)"),
    ("stage 5", "inference: responses\nand SER answers", "exp/<system>/<split>/seed<seed>/\ninfer/<test set>/",
     "data/, dump/, exp/<model>/.../final/"),
    ("stage 6", "scoring (EPITOME, SER UA,\nresponse emotion) and tables", ("exp/scores/<split>/seed<seed>/\n"
     "RESULTS.md, results_figures/"), "infer/, exp/responses/ (train:\nclassifier; test: ceiling), data/"),
)


def draw_stages(path):
    rows = len(STAGES)
    height = 1.05 * rows + 0.9
    fig, ax = plt.subplots(figsize=(12.5, height))
    ax.set_xlim(0, 12.5)
    ax.set_ylim(0, height)
    ax.axis("off")
    ax.text(1.7, height - 0.35, "reads", fontsize=9, weight="bold", ha="center")
    ax.text(5.7, height - 0.35, "stage (python -m rellm.bin.<stage>)", fontsize=9, weight="bold", ha="center")
    ax.text(10.3, height - 0.35, "writes (under the recipe folder)", fontsize=9, weight="bold", ha="center")
    previous = None
    for k, (name, what, folders, reads) in enumerate(STAGES):
        y = height - 1.25 - k * 1.05
        reads_box = box(ax, 0.2, y, 3.0, 0.8, reads, "white", size=8, edge="#999999", linestyle=(0, (3, 2)))
        stage = box(ax, 4.0, y, 3.4, 0.8, f"{name}: {what}", FROZEN, size=8.5)
        folder = box(ax, 8.3, y, 4.0, 0.8, folders, DATA, size=8.5, style="square,pad=0.02")
        arrow(ax, right(reads_box), left(stage), "reads", dashed=True, colour="#777777", size=7)
        arrow(ax, right(stage), left(folder), "writes", size=7)
        if previous is not None:
            arrow(ax, bottom(previous), top(stage), colour="#999999")
        previous = stage
    ax.text(0.2, 0.2, "Each stage skips finished work (a done marker beside its outputs) and records its command "
            "(command.txt); ./run.sh --stage N --stop_stage M runs a range of stages.", fontsize=8, color="#444444")
    ax.set_title("Stages and folders of a recipe (egs/<recipe>/run.sh -> egs/TEMPLATE/stages.sh)", fontsize=11)
    save(fig, path)


def save(fig, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    # no date or software version in the file, so that an unchanged figure redraws byte-identical
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures", help="folder of the PNGs")
    args = parser.parse_args(argv)
    draw_model(args.out / "model.png")
    draw_stages(args.out / "stages.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
