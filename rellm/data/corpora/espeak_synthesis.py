"""eSpeak NG speech for the synthetic corpora (mini, mini_asr) and ``mini say``: 16 kHz PCM-16 WAVs.

eSpeak NG comes from the ``espeakng-loader`` wheel and is driven through ctypes. It keeps state
inside the library from one utterance to the next, so a whole corpus is synthesised in plan order
by a freshly started process (``python -m rellm.data.corpora.espeak_synthesis JOBS.json RESULT.json``):
the audio is then a function of the plan alone.
"""
import ctypes
import json
import logging
import math
from pathlib import Path
from types import MappingProxyType

import numpy as np

from rellm.utils.io import atomic_path, atomic_write_json
from rellm.utils.stage import DoneMarker

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000


class EspeakSynthesizer:
    """eSpeak NG through ctypes (the legacy synchronous ``speak_lib.h`` API).

    eSpeak keeps global state in the library, so there is one instance per
    process (:func:`get_synthesizer`). The ctypes callback object is kept on the
    instance: if Python collected it, eSpeak would call freed memory.
    """

    AUDIO_OUTPUT_SYNCHRONOUS = 2
    POS_CHARACTER = 1
    CHARS_UTF8 = 1
    PARAM = MappingProxyType({"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7})

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as err:
            raise ImportError(
                "the mini corpus needs eSpeak NG from PyPI: tools/venv/bin/pip install espeakng-loader"
            ) from err
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = lib.espeak_Initialize(self.AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                                 espeakng_loader.get_data_path().encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate}); is the espeakng-loader wheel complete?")
        self.version = lib.espeak_Info(None).decode()
        self._lib = lib
        self._chunks = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
        self._callback = callback_type(self._collect)  # keep the reference (see class docstring)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, num_samples, _events):
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = continue synthesis

    def synthesize(self, text, voice, params, seed=0):
        """int16 samples at ``self.sample_rate`` for ``text`` in ``voice`` with eSpeak ``params``.

        ``seed`` seeds eSpeak's noise generator (breathy voice variants such as
        +f3 mix in random noise, seeded from the clock unless set).
        """
        self._lib.espeak_ng_SetRandSeed(int(seed))
        err = self._lib.espeak_SetVoiceByName(voice.encode())
        if err != 0:
            raise ValueError(f"eSpeak has no voice {voice!r} (error {err}); use e.g. en-us, en-us+f3, en-us+m3")
        for name, value in params.items():
            self._lib.espeak_SetParameter(self.PARAM[name], int(value), 0)
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        err = self._lib.espeak_Synth(data, len(data), 0, self.POS_CHARACTER, 0, self.CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with error {err} for {text!r}")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)


_SYNTHESIZER = None


def get_synthesizer():
    global _SYNTHESIZER
    if _SYNTHESIZER is None:
        _SYNTHESIZER = EspeakSynthesizer()
    return _SYNTHESIZER


def to_16k_float(samples_int16, sample_rate):
    """int16 at eSpeak's 22.05 kHz -> float32 in [-1, 1] at 16 kHz (polyphase, exact ratio 320/441)."""
    from scipy.signal import resample_poly

    x = samples_int16.astype(np.float32) / 32768.0
    if sample_rate != SAMPLE_RATE:
        g = math.gcd(SAMPLE_RATE, sample_rate)
        x = resample_poly(x, SAMPLE_RATE // g, sample_rate // g).astype(np.float32)
    return x


def write_wav(path, audio):
    """16-bit PCM WAV, atomically; returns the number of samples that had to be clipped."""
    import soundfile as sf

    clipped = int(np.count_nonzero(np.abs(audio) > 32767 / 32768))
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return clipped


def synthesise_all(jobs, data_folder):
    """Synthesise and write ``jobs`` in order; runs in a fresh process (see ``synthesise_corpus``).

    A job is ``(utt_id, relpath under data_folder, text, voice, eSpeak params, noise seed)``.
    """
    from tqdm import tqdm

    synth = get_synthesizer()
    info = {}
    for utt_id, relpath, text, voice, params, seed in tqdm(jobs, desc="eSpeak NG mini corpus", unit="utt"):
        audio = to_16k_float(synth.synthesize(text, voice, params, seed=seed), synth.sample_rate)
        if audio.size == 0:
            info[utt_id] = (0, 0)  # counted as dropped by the caller
            continue
        info[utt_id] = (audio.size, write_wav(Path(data_folder) / relpath, audio))
    return info, synth.version


def synthesise_corpus(plan, data_folder, options, overwrite=False):
    """Write every planned WAV under ``data_folder``; returns {utt_id: (num_samples, clipped) or None}.

    ``plan``: dicts with ``utt_id``, ``relpath`` (under ``data_folder``), ``transcript``, ``voice``,
    ``params`` (eSpeak's) and ``noise_seed``, in the order to synthesise them.

    Done-marked with the options, so the same call twice does nothing and
    changed options stop with a message (or, with ``overwrite``, re-make all).

    eSpeak NG keeps state inside the library from one utterance to the next
    (e.g. the phase of its pitch flutter), so an utterance's samples depend on
    what the process synthesised before it. To make the corpus a function of the
    options alone, the whole plan is synthesised in plan order by a freshly
    started process whose library has never spoken.
    """
    import soundfile as sf

    data_folder = Path(data_folder)
    marker = DoneMarker(data_folder, "synthesise_mini",
                        hint="re-run stage 1 with --overwrite=true, or delete " + str(data_folder))
    if marker.is_done(options, overwrite=overwrite):
        logger.info("mini audio in %s is up to date; not re-synthesising", data_folder)
        info = {}
        for item in plan:
            path = data_folder / item["relpath"]
            # a file deleted since it was made is reported as missing, not re-made silently
            info[item["utt_id"]] = (sf.info(str(path)).frames, 0) if path.is_file() else None
        return info
    marker.clear()
    jobs = [(i["utt_id"], i["relpath"], i["transcript"], i["voice"], i["params"], i["noise_seed"]) for i in plan]
    info, version = run_in_fresh_process(jobs, data_folder)
    marker.mark_done(options, espeak_version=version, utterances=len(plan))
    return info


def run_in_fresh_process(jobs, data_folder):
    """``synthesise_all(jobs, data_folder)`` in a new interpreter (``python -m rellm.data.corpora.espeak_synthesis``).

    A plain subprocess rather than multiprocessing's spawn: spawn re-imports the
    caller's main script, which hangs scripts without a ``__main__`` guard.
    """
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mini_synth_") as tmp:
        request, result = Path(tmp) / "jobs.json", Path(tmp) / "result.json"
        request.write_text(json.dumps({"jobs": jobs, "data_folder": str(data_folder)}), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "rellm.data.corpora.espeak_synthesis", str(request), str(result)],
                              check=False)
        if proc.returncode != 0 or not result.is_file():
            raise RuntimeError(f"the eSpeak NG synthesis process failed (exit {proc.returncode}); "
                               "see its messages above")
        out = json.loads(result.read_text(encoding="utf-8"))
    return {k: tuple(v) for k, v in out["info"].items()}, out["version"]


def _worker_main(argv):
    """``python -m rellm.data.corpora.espeak_synthesis JOBS.json RESULT.json``: the synthesis process."""
    if len(argv) != 2:
        raise SystemExit("usage: python -m rellm.data.corpora.espeak_synthesis JOBS.json RESULT.json   (internal "
                         "synthesis worker; to speak a sentence: python -m rellm.data.corpora.mini say ...)")
    request, result = argv
    spec = json.loads(Path(request).read_text(encoding="utf-8"))
    info, version = synthesise_all([tuple(j) for j in spec["jobs"]], spec["data_folder"])
    atomic_write_json(result, {"info": info, "version": version})


if __name__ == "__main__":
    import sys

    _worker_main(sys.argv[1:])
