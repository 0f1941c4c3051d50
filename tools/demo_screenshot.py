#!/usr/bin/env python3
"""Screenshot of the web demo (docs/figures/demo.png) after two spoken turns, taken in headless Chromium.

    tools/venv/bin/python tools/demo_screenshot.py [--model EXP] [--out docs/figures/demo.png]

Starts ``rellm-demo`` on the trained mini model (egs/mini/exp/rellm/official/seed1, from ``make demo``, else
egs/mini/exp_fast/rellm/official/seed1 from the fast configuration) with ``--compare blsp_emo,text_only`` when
there is one, else on toy models with random weights (their replies are random words; the line printed says
which), uploads two sentences spoken by the mini corpus's ``say``, and
saves the page as a palette PNG. Needs chromium and chromium-driver (tools/install_chromium.sh), selenium and
Gradio (make install).
"""
import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the trained mini models: make demo's, else the fast configuration's (python -m rellm.bin.fast_run conf/fast.yaml)
MINI = [REPO / "egs" / "mini" / exp / "rellm" / "official" / "seed1" for exp in ("exp", "exp_fast")]
TURNS = (("I lost my keys again today.", "sad"), ("Oh wait, they were in my coat all along!", "happy"))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="experiment folder (default: the trained mini model, else toy "
                   "models)")
    p.add_argument("--compare", default=None, help="rellm-demo's --compare (default: blsp_emo,text_only when the "
                   "sibling BLSP-Emo experiment exists, else text_only)")
    p.add_argument("--out", default=str(REPO / "docs" / "figures" / "demo.png"))
    p.add_argument("--colors", type=int, default=64, help="palette size of the PNG (smaller file)")
    p.add_argument("--width", type=int, default=1280)
    return p.parse_args(argv)


def save_palette_png(png_bytes, out, colors):
    from PIL import Image

    image = Image.open(io.BytesIO(png_bytes)).convert("RGB")
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from rellm.demo.browser import DemoPage, headless_chromium, running_demo
    from rellm.demo.systems import has_model, sibling_experiment

    with tempfile.TemporaryDirectory(prefix="rellm-demo-shot-") as tmp:
        tmp = Path(tmp)
        model = Path(args.model).resolve() if args.model else next((m for m in MINI if has_model(m)), None)
        if model is None:
            from rellm.testing.toy_demo import write_toy_experiments

            model = write_toy_experiments(tmp / "toy")["rellm"]
            what = "toy models with random weights (no trained mini model found)"
            extra = ["--max_new_tokens", "24"]  # random words: a short line is enough to show the layout
        else:
            what, extra = f"the trained model {model}", []
        blsp = sibling_experiment(model, "blsp_emo")
        compare = args.compare or ("blsp_emo,text_only" if blsp is not None and has_model(blsp) else "text_only")
        wavs = []
        for k, (text, style) in enumerate(TURNS):
            wavs.append(tmp / f"turn{k + 1}.wav")
            subprocess.run([sys.executable, "-m", "rellm.data.corpora.mini", "say", text, "--style", style, "--out",
                            str(wavs[-1])], check=True, capture_output=True)
        # run from the recipe folder of exp/<model>/<split>/seed<k>, where the experiment's relative paths point
        cwd = model.parents[3] if len(model.parents) > 3 else tmp
        shown = model.relative_to(cwd)  # the page names the model as the command line gave it
        with running_demo([shown, "--compare", compare, "--device", "cpu", *extra], tmp / "demo.log", cwd=cwd) as url, \
                headless_chromium(width=args.width, height=900) as web:
            page = DemoPage(web, url, timeout=600)
            for wav in wavs:
                page.upload(wav)
                page.send()
            web.execute_script("window.scrollTo(0, 0)")
            height = web.execute_script("return document.documentElement.scrollHeight")
            web.set_window_size(args.width, height)
            save_palette_png(web.get_screenshot_as_png(), args.out, args.colors)
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out} ({size / 1024:.0f} KB): two turns answered by {what}, compared with {compare}")


if __name__ == "__main__":
    main()
