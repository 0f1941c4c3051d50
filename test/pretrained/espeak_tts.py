"""Minimal eSpeak NG synthesiser (espeakng-loader + ctypes) for the Whisper correctness tests.

Only what the tests need: a few English sentences at 16 kHz. The recipe's
emotional mini-corpus synthesiser lives in rellm.data.corpora.mini.
"""
import ctypes

import numpy as np
import torch
import torchaudio

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_RATE, _PITCH = 1, 3

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakSynth:
    """Synchronous eSpeak NG, collecting the int16 chunks its callback hands over."""

    def __init__(self, voice=b"en-us"):
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self._chunks = []
        # Keep a reference: a collected CFUNCTYPE crashes the process on the next callback.
        self._callback = _SYNTH_CALLBACK(self._collect)
        self.lib.espeak_SetSynthCallback(self._callback)
        if self.lib.espeak_SetVoiceByName(voice) != 0:
            raise RuntimeError(f"eSpeak voice {voice!r} not available")

    def _collect(self, wav, n, _events):
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def __call__(self, text, rate=165, pitch=50, sample_rate=16000):
        """float32 waveform of ``text`` at ``sample_rate``."""
        self.lib.espeak_SetParameter(_RATE, rate, 0)
        self.lib.espeak_SetParameter(_PITCH, pitch, 0)
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with {err}")
        self.lib.espeak_Synchronize()
        wav = torch.from_numpy(np.concatenate(self._chunks).astype(np.float32) / 32768.0)
        return torchaudio.functional.resample(wav, self.sample_rate, sample_rate).numpy()
