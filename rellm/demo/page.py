"""The demo's web page (Gradio): record or upload, see the emotion, the A/V/D values and the replies, keep a chat.

Each browser tab holds its own conversation (a ``gr.State``); the models are loaded once and shared, and one
turn is answered at a time (the event queue's concurrency limit of 1), since a model answers one recording at
a time. The element ids (``demo-*``) name the parts the browser test and the docs refer to.
"""
import json
import logging
from pathlib import Path

from rellm.demo.conversation import (
    Conversation,
    Decoding,
    avd_markdown,
    chat_messages,
    debug_info,
    probabilities,
    status_markdown,
)
from rellm.demo.systems import DISPLAY_NAMES
from rellm.responder import AudioInputError, ResponderError

logger = logging.getLogger(__name__)

INTRO = """# Talk to {name}
Record from the microphone or upload a recording (at most 30 s), then press **Send**. The model recognises the
emotion in your voice, shows its class probabilities and its arousal / valence / dominance, and answers. Each new
turn is answered with the conversation so far as its history; **New conversation** starts again.
Model: `{path}`"""


def build_page(systems, model_path, decoding=None):
    """The ``gr.Blocks`` page for the loaded ``systems`` (``rellm.demo.conversation.Systems``); ``decoding``: the
    initial values of the decoding controls."""
    import gradio as gr

    decoding = decoding or Decoding()

    baseline_names = list(systems.baselines)
    with gr.Blocks(title=f"rellm demo: {systems.main_name}", analytics_enabled=False) as page:
        conversation = gr.State(Conversation)
        gr.Markdown(INTRO.format(name=systems.main_name, path=model_path))
        with gr.Row():
            with gr.Column(scale=2):
                audio = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Your turn",
                                 elem_id="demo-audio")
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="demo-send")
                    new = gr.Button("New conversation", elem_id="demo-new")
                with gr.Accordion("Decoding", open=False):
                    do_sample = gr.Checkbox(decoding.do_sample, label="Sample (off: greedy, as in the evaluation)")
                    temperature = gr.Slider(0.1, 2.0, value=decoding.temperature, step=0.05, label="Temperature")
                    top_p = gr.Slider(0.05, 1.0, value=decoding.top_p, step=0.05, label="Top-p")
                    max_new_tokens = gr.Slider(1, 512, value=decoding.max_new_tokens or 128, step=1,
                                               label="Max new tokens")
                status = gr.Markdown(status_markdown(None), elem_id="demo-status")
            with gr.Column(scale=3):
                emotion = gr.Label(label="Recognised emotion (class probabilities)", num_top_classes=5,
                                   elem_id="demo-emotion")
                avd = gr.Markdown(elem_id="demo-avd")
                with gr.Row():
                    reply = gr.Textbox(label=f"{systems.main_name} reply", lines=3, max_lines=8, interactive=False,
                                       elem_id="demo-reply")
                    others = {name: gr.Textbox(label=f"{DISPLAY_NAMES.get(name, name)} reply", lines=3, max_lines=8,
                                               interactive=False, elem_id=f"demo-reply-{name}")
                              for name in baseline_names}
                transcript = gr.Textbox(label="Transcript (Whisper; what the text-only LLM was given)",
                                        interactive=False, visible=systems.with_text_only,
                                        elem_id="demo-transcript")
        chat = gr.Chatbot(label="Conversation", height=460, elem_id="demo-chat", feedback_options=None)
        with gr.Accordion("What the model was given (last turn)", open=False, elem_id="demo-debug-panel"):
            debug = gr.Textbox(json.dumps(debug_info(Conversation(), None)), show_label=False, lines=6, max_lines=40,
                               interactive=False, elem_id="demo-debug")
            show_prompt = gr.Button("Show the prompt of the last turn", size="sm", elem_id="demo-show-prompt")
            prompt = gr.Textbox(label="The prompt the LLM read (chat template; the speech as <speech: N vectors>)",
                                lines=4, max_lines=40, interactive=False, elem_id="demo-prompt")

        outputs = [conversation, status, emotion, avd, reply, transcript, chat, debug, prompt, audio,
                   *others.values()]

        def show(conv, outcome):
            """The outputs' values after a turn (``outcome``) or for a new conversation (None); the audio input is
            emptied for the next turn and the prompt panel until it is asked for again."""
            last = outcome.reply if outcome is not None else None
            heard = last is not None and not last.no_speech
            values = [conv, status_markdown(outcome), probabilities(last) or None, avd_markdown(last),
                      last.response if heard else "", (last.transcript or "") if heard else "",
                      chat_messages(conv), json.dumps(debug_info(conv, outcome), indent=1, ensure_ascii=False),
                      "", None]
            turn = outcome.turn if outcome is not None else None
            return values + [(turn.baselines.get(name, "") if turn is not None else "") for name in baseline_names]

        def on_send(conv, recording, sample, temp, top, max_tokens):
            if not recording:
                raise gr.Error("Nothing recorded yet: record with the microphone or upload a file, then press Send.")
            try:
                outcome = conv.take_turn(systems, recording, Decoding(sample, temp, top, int(max_tokens)))
            except (AudioInputError, ResponderError) as err:  # the message says what to do
                logger.warning("turn refused: %s", err)
                # the upload's copy in Gradio's cache means nothing to the user: name the file only
                message = str(err).replace(str(recording), Path(recording).name)
                raise gr.Error(f"This recording could not be answered: {message}", print_exception=False) from None
            except Exception as err:  # shown on the page; the traceback goes to the terminal that runs the demo
                logger.exception("turn failed for %s", recording)
                raise gr.Error(f"This recording could not be answered: {type(err).__name__}: {err} (the terminal "
                               "running rellm-demo shows the traceback)", print_exception=False) from None
            return show(conv, outcome)

        def on_new():
            return show(Conversation(), None)

        def on_show_prompt(conv):
            if not len(conv):
                return "No turn yet."
            try:
                return conv.last_prompt(systems)
            except Exception as err:
                logger.exception("prompt preview failed")
                raise gr.Error(f"The prompt could not be shown: {type(err).__name__}: {err}",
                               print_exception=False) from None

        send.click(on_send, [conversation, audio, do_sample, temperature, top_p, max_new_tokens], outputs,
                   concurrency_limit=1)
        new.click(on_new, None, outputs)
        show_prompt.click(on_show_prompt, [conversation], [prompt], concurrency_limit=1)
    return page
