"""``rellm-demo``: a web page to talk to a trained model (``python -m rellm.demo`` does the same)."""
import argparse
import importlib.util
import logging
import os
import socket
import sys

from rellm.demo.systems import BASELINES, DemoError, parse_compare

DESCRIPTION = """\
Start a web page where you talk to a trained model: record from the microphone or upload a file, and see the
recognised emotion (class probabilities), its arousal / valence / dominance and the model's reply, in a
conversation whose earlier turns the model is given as history. Open the address it prints in a browser.

EXP_OR_EXPORT is an experiment folder exp/<model>/<split>/seed<k> (with final/ from stage 4) or an exported model.
Run it from the recipe folder (egs/<recipe>), where the experiment's relative paths point."""

EPILOG = """\
--compare shows the baselines' replies beside the model's, for the same conversation:
  text_only       the same LLM given the Whisper transcript instead of the speech
  blsp_emo        the BLSP-Emo experiment beside this one: exp/blsp_emo/<split>/seed<k> for
                  exp/rellm/<split>/seed<k>
  blsp_emo=PATH   a BLSP-Emo model in any other folder (an experiment or an exported model)
e.g.  rellm-demo exp/rellm/official/seed1 --compare blsp_emo,text_only
      rellm-demo exp/rellm/official/seed1 --compare blsp_emo=/models/blsp_emo_export,text_only

On a remote machine: start it with --host 0.0.0.0 (reachable by anyone who can reach that port), or keep the
default 127.0.0.1 and tunnel: ssh -L 7860:localhost:7860 USER@HOST, then open http://localhost:7860."""

GRADIO_MISSING = "the demo needs Gradio, an optional extra: pip install 'rellm[demo]' (make install includes it)"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="rellm-demo", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="EXP_OR_EXPORT", help="experiment folder (exp/<model>/<split>/seed<k>) or "
                   "exported model to talk to")
    p.add_argument("--compare", default="", metavar="LIST",
                   help=f"comma-separated baselines to show beside the model's reply: {', '.join(BASELINES)}; "
                   "blsp_emo is the sibling experiment exp/blsp_emo/<split>/seed<k>, or blsp_emo=PATH "
                   "for any folder (details below)")
    p.add_argument("--port", type=int, default=7860, help="port to serve the page on (default: 7860)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every interface)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: auto)")
    p.add_argument("--max_new_tokens", type=int, default=128,
                   help="the page's initial limit on a reply's length, in tokens (default: 128)")
    return p.parse_args(argv)


def check_port(host, port):
    """Fail before the models load when the page could not be served."""
    if not 0 < port < 65536:
        raise DemoError(f"--port {port} is not a port number (1-65535)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as err:
            raise DemoError(f"cannot listen on {host}:{port} ({err.strerror}); pick another --port "
                            "(or --host)") from err


def load_systems(args, baselines):
    """The Responders, each loaded once: the main model and a BLSP-Emo baseline when asked."""
    from rellm.demo.conversation import Systems
    from rellm.responder import Responder, ResponderError

    def load(path, what):
        print(f"Loading {what} from {path} ...", flush=True)
        try:
            return Responder.from_pretrained(path, device=args.device)
        except ResponderError as err:
            raise DemoError(str(err)) from None

    main = load(args.model, "the model")
    loaded = {b.name: None if b.path is None else load(b.path, f"the {b.name} baseline") for b in baselines}
    return Systems(main=main, baselines=loaded)


def main(argv=None):
    args = parse_args(argv)
    if importlib.util.find_spec("gradio") is None:
        raise DemoError(GRADIO_MISSING)
    if not os.path.exists(args.model):
        raise DemoError(f"{args.model}: no such folder; give an experiment folder exp/<model>/<split>/seed<k> "
                        "or an exported model")
    baselines = parse_compare(args.compare, args.model)
    check_port(args.host, args.port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own requests to itself, one line each
    systems = load_systems(args, baselines)

    # no usage statistics are sent anywhere (and a closed network would only slow the start)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from rellm.demo.conversation import Decoding
    from rellm.demo.page import build_page

    page = build_page(systems, args.model, Decoding(max_new_tokens=args.max_new_tokens))
    page.queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port, share=False,
                                                   inbrowser=False, show_error=True, ssr_mode=False, quiet=True,
                                                   max_file_size="50mb", footer_links=[], prevent_thread_lock=True)
    if args.host in ("127.0.0.1", "localhost"):
        print(f"Open http://localhost:{args.port} in a browser (Ctrl-C stops the demo). From another machine: "
              f"ssh -N -L {args.port}:localhost:{args.port} USER@{socket.gethostname()}, then the same address.",
              flush=True)
    else:
        print(f"Open http://{socket.gethostname()}:{args.port} in a browser (Ctrl-C stops the demo); anyone who can "
              f"reach this port can use the model.", flush=True)
    page.block_thread()


def cli(argv=None):
    try:
        main(argv)
    except (DemoError, FileNotFoundError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli()
