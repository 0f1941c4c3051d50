"""The chat-template layout of a speech-LLM prompt, derived from the tokenizer (docs/method.md#sequence-layout).

Training sequence, segment by segment (each tokenised separately, as BLSP-Emo does):

    prefix      system turn + user-turn header            e.g. <|im_start|>system\\n{SYS}<|im_end|>\\n<|im_start|>user\\n
    instruction the user-turn text before the speech       (may be empty)
    speech      N adapter vectors                          (or the transcript tokens on the text branch)
    header      end of user turn + assistant header       e.g. <|im_end|>\\n<|im_start|>assistant\\n
    target      the response                              (labels)
    end         end of the assistant turn                 e.g. <|im_end|> (labels; omitted when early_stop)

Nothing here is ChatML-specific: ``ChatLayout`` renders the tokenizer's own chat template
with a placeholder as the user content (and as the assistant content) and splits the
text around it, so Qwen2.5, SmolLM2 and any other template-carrying tokenizer work.

A conversation (``rellm.responder``) puts earlier turns between the system turn and the current
user turn: ``prefix`` then becomes system turn + (user text, assistant reply) turns + user-turn
header, rendered by the same template (docs/using_a_model.md#conversation-history).
"""
import re

PLACEHOLDER = "\u2063RELLM_SLOT\u2063"
# numbered slots for the contents of earlier turns (a conversation's history)
SLOT = "\u2063RELLM_SLOT_{}\u2063"


class ChatLayout:
    """Token ids of the fixed prompt segments for one tokenizer.

    Arguments
    ---------
    tokenizer : transformers tokenizer with a ``chat_template``.
    """

    def __init__(self, tokenizer):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no chat template; "
                "use an instruction-tuned LLM (e.g. smollm2-135m-instruct, Qwen2.5-7B-Instruct)"
            )
        self.tokenizer = tokenizer
        header_check = self._split("You are a helpful assistant.")
        self.header_text = header_check[1]
        self.end_text = self._end_text("You are a helpful assistant.")
        self.header_ids = self._encode_template(self.header_text)
        self.end_ids = self._encode_template(self.end_text)
        self._prefix_cache = {}

    def _render(self, messages, add_generation_prompt):
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _split(self, system_prompt):
        text = self._render(
            [{"role": "system", "content": system_prompt}, {"role": "user", "content": PLACEHOLDER}], True
        )
        if text.count(PLACEHOLDER) != 1:
            raise ValueError("the chat template does not place the user content exactly once; cannot derive the layout")
        prefix, header = text.split(PLACEHOLDER)
        if system_prompt and system_prompt not in prefix:
            raise ValueError("the chat template drops the system prompt; this LLM cannot be used with a system turn")
        return prefix, header

    def _end_text(self, system_prompt):
        prefix, header = self._split(system_prompt)
        text = self._render(
            [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": PLACEHOLDER},
                {"role": "assistant", "content": PLACEHOLDER + "A"},
            ],
            False,
        )
        head = prefix + PLACEHOLDER + header + PLACEHOLDER + "A"
        if not text.startswith(head):
            raise ValueError(
                "the chat template renders the assistant turn differently from its generation prompt; "
                "cannot derive the end-of-turn tokens"
            )
        # The end-of-turn marker (e.g. "<|im_end|>"); trailing newlines belong to the next turn.
        return text[len(head):].rstrip()

    def _encode_template(self, text):
        """Template text: special-token strings ARE special tokens here."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_content(self, text):
        """User or model text: special-token strings in data are split into plain text tokens."""
        if not text:
            return []
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def prefix_ids(self, system_prompt):
        """Token ids of the system turn and the user-turn header (tokenised once per system prompt)."""
        if system_prompt not in self._prefix_cache:
            self._prefix_cache[system_prompt] = tuple(self._encode_template(self._split(system_prompt)[0]))
        return self._prefix_cache[system_prompt]

    def history_ids(self, system_prompt, history):
        """Token ids of the system turn, the earlier turns and the current user-turn header.

        ``history``: ``[(user_text, assistant_text), ...]``, oldest first. The template's own text is
        tokenised as template (special tokens), the turns' contents as content, each segment separately
        as in :meth:`prefix_ids`, which this equals for an empty history.
        """
        if not history:
            return list(self.prefix_ids(system_prompt))
        messages = [{"role": "system", "content": system_prompt}]
        for i, _ in enumerate(history):
            messages += [{"role": "user", "content": SLOT.format(2 * i)},
                         {"role": "assistant", "content": SLOT.format(2 * i + 1)}]
        messages.append({"role": "user", "content": PLACEHOLDER})
        text = self._render(messages, True)
        pieces = re.split("\u2063RELLM_SLOT_(\\d+)\u2063", text.split(PLACEHOLDER)[0])
        order = [int(k) for k in pieces[1::2]]
        if order != list(range(2 * len(history))) or text.count(PLACEHOLDER) != 1:
            raise ValueError("the chat template does not render earlier turns in order; this LLM cannot take a history")
        contents = [str(text) for turn in history for text in turn]
        ids = []
        for i, template in enumerate(pieces[0::2]):
            ids += self._encode_template(template)
            if i < len(contents):
                ids += self.encode_content(contents[i].strip())
        return ids

    def prompt_ids(self, system_prompt, instruction, history=None):
        """``prefix + instruction``: everything before the speech (or the transcript); ``history``: earlier turns
        (:meth:`history_ids`)."""
        return self.history_ids(system_prompt, history) + self.encode_content(instruction)

    def response_ids(self, target, early_stop=False):
        """``(ids, num_unlabelled)``: header + target + end (no end when ``early_stop``).

        The first ``num_unlabelled`` ids (the header) carry no loss.
        """
        ids = list(self.header_ids) + self.encode_content(target) + ([] if early_stop else list(self.end_ids))
        return ids, len(self.header_ids)

    @property
    def stop_token_ids(self):
        """Ids that end a generated assistant turn (the end marker, plus the tokenizer's eos)."""
        ids = {self.end_ids[0]} if self.end_ids else set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return sorted(ids)
