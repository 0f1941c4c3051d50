"""The optional CTC warm-up of the adapter (step1_ctc_epochs): it learns to point at the words it hears, in
sentences it never heard, and stage 4 runs it once (resumable, skipped once step 1 has a checkpoint)."""
import torch

from rellm.testing.toy_models import toy_speech_llm
from rellm.training.ctc_warmup import ctc_items, greedy_ctc_tokens, run_ctc_warmup, train_ctc_warmup
from rellm.utils.experiment_dir import ExperimentDir

FRAMES_PER_TOKEN = 16  # two adapter frames (8x down-sampling) per word


class _Cache(dict):
    """The reads of a feature cache that the warm-up makes; emotion embeddings only when given."""

    def __init__(self, *args, emotion=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.emotion = emotion
        self.emotion_reads = 0

    def whisper(self, utt_id):
        return self[utt_id]

    def record(self, utt_id):
        return {"frames": self[utt_id].shape[0]}

    def emotion_embedding(self, utt_id):
        if self.emotion is None:
            raise AssertionError("a speech-only model reads no emotion embedding")
        self.emotion_reads += 1
        return self.emotion[utt_id]


def _words(seed, vocab, count=48):
    """``(items, cache)``: utterances of 3-6 'words' (token ids); each word always sounds the same (a fixed
    vector, plus noise)."""
    g = torch.Generator().manual_seed(seed)
    sounds = {t: torch.randn(24, generator=torch.Generator().manual_seed(t)) for t in vocab}
    items, cache = [], _Cache()
    for k in range(count):
        ids = [vocab[i] for i in torch.randint(len(vocab), (int(torch.randint(3, 7, (1,), generator=g)),),
                                               generator=g).tolist()]
        states = torch.cat([sounds[t].expand(FRAMES_PER_TOKEN, -1) for t in ids] + [torch.zeros(8, 24)])
        cache[f"u{seed}_{k}"] = states + 0.1 * torch.randn(states.shape, generator=g)
        items.append((f"u{seed}_{k}", ids))
    return items, cache


def test_ctc_falls_and_the_adapter_transcribes_unheard_word_sequences(tokenizer):
    model = toy_speech_llm(tokenizer, emotion_dim=0, seed=1)
    vocab = list(range(40, 52))
    history, blank = train_ctc_warmup(model, *_words(0, vocab), epochs=30, lr=3e-3, batch_size=8, seed=0)
    assert history[-1] < 0.3 * history[0], history[::5]
    held_out, cache = _words(1, vocab, count=12)  # other word sequences: the adapter must map words, not memorise
    right = sum(greedy_ctc_tokens(model, cache.whisper(utt_id), blank) == ids for utt_id, ids in held_out)
    assert right >= 9, right
    # only the adapter trained: the LLM's embeddings are the ones it was built with
    fresh = toy_speech_llm(tokenizer, emotion_dim=0, seed=1)
    assert torch.equal(model.base_llm.get_input_embeddings().weight, fresh.base_llm.get_input_embeddings().weight)
    assert not model.base_llm.get_input_embeddings().weight.requires_grad


def test_items_skip_and_count_what_ctc_cannot_align(tokenizer):
    model = toy_speech_llm(tokenizer, emotion_dim=0)
    cache = _Cache(a=torch.randn(160, 24), b=torch.randn(16, 24), c=torch.randn(160, 24))
    manifest = {"a": {"transcript": "hello there"}, "b": {"transcript": "a sentence far too long for two frames"},
                "c": {"transcript": " "}, "d": {"transcript": "no features"}}
    items, skipped = ctc_items(manifest, cache, tokenizer, model.adapter.output_lengths)
    assert items == [("a", tokenizer(" hello there", add_special_tokens=False)["input_ids"])]
    assert skipped == {"more_tokens_than_frames": 1, "no_transcript": 1, "no_features": 1}


def test_stage_4_warm_up_runs_once_and_resumes(tokenizer, tmp_path):
    hp = {"step1_ctc_epochs": 2, "step1_ctc_lr": 3e-3, "step1_ctc_batch_size": 4, "seed": 1}
    texts = ["hello there", "good morning", "see you soon", "thank you"]
    manifest = {f"u{k}": {"transcript": t} for k, t in enumerate(texts)}
    cache = _Cache({f"u{k}": torch.randn(200, 24, generator=torch.Generator().manual_seed(k)) for k in range(4)})
    exp = ExperimentDir(tmp_path / "exp")
    model = toy_speech_llm(tokenizer, emotion_dim=0, seed=2)
    before = {k: v.clone() for k, v in model.adapter.state_dict().items()}
    assert len(run_ctc_warmup(model, hp, exp, manifest, cache)) == 2
    trained = {k: v.clone() for k, v in model.adapter.state_dict().items()}
    assert any(not torch.equal(before[k], trained[k]) for k in before)
    # a rerun (e.g. after a crash in step 1 before its first checkpoint) loads the saved adapter, no training
    again = toy_speech_llm(tokenizer, emotion_dim=0, seed=2)
    assert run_ctc_warmup(again, hp, exp, manifest, cache) == []
    assert all(torch.equal(v, trained[k]) for k, v in again.adapter.state_dict().items())
    # other options: trained again
    assert len(run_ctc_warmup(toy_speech_llm(tokenizer, emotion_dim=0, seed=2), {**hp, "step1_ctc_epochs": 1},
                              exp, manifest, cache)) == 1
    # once step 1 has a checkpoint the adapter comes from it: the warm-up is not looked at
    (exp.checkpoints("step1_semantic") / "CKPT+2026-01-01+00-00-00+00").mkdir(parents=True)
    untouched = toy_speech_llm(tokenizer, emotion_dim=0, seed=2)
    assert run_ctc_warmup(untouched, hp, exp, manifest, cache) == []
    assert all(torch.equal(v, before[k]) for k, v in untouched.adapter.state_dict().items())


def test_a_fusion_adapter_warms_up_on_the_emotion_embedding_too(tokenizer):
    """RE-LLM trained from scratch (init_from=null) warms up its fusion adapter, which reads the embedding."""
    model = toy_speech_llm(tokenizer, emotion_dim=8, seed=3)
    items, cache = _words(2, list(range(40, 46)), count=8)
    cache.emotion = {utt_id: torch.randn(8, generator=torch.Generator().manual_seed(k))
                     for k, (utt_id, _) in enumerate(items)}
    history, _ = train_ctc_warmup(model, items, cache, epochs=2, lr=3e-3, batch_size=4, seed=0)
    assert len(history) == 2 and all(0 < h < float("inf") for h in history)
    assert cache.emotion_reads == 2 * len(items)
