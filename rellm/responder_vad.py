"""Is there speech at all? Silero VAD (PyPI ``silero-vad``, its model inside the wheel: no download).

A speech-LLM answers whatever it is given: the emotion head always picks one of five classes and the
LLM always writes a reply, so silence or noise would get a confident emotion and an empathetic answer.
The responder asks this detector first and answers ``no_speech`` instead.

Silero's speech probability per 32 ms frame is turned into speech segments by its own
``get_speech_timestamps`` (threshold 0.5, segments shorter than 250 ms dropped, 30 ms padding: its
defaults); the input has speech when it has at least ``min_speech_seconds`` of segments.
"""
import threading
import warnings

SAMPLE_RATE = 16000


class SpeechDetector:
    """``detector.speech_seconds(wave)``: seconds of speech in a mono 16 kHz float32 waveform.

    ``threshold``: Silero's speech probability above which a frame is speech; ``min_speech_seconds``: the
    least speech (after Silero's own 250 ms minimum per segment) for :meth:`has_speech`.
    """

    def __init__(self, threshold=0.5, min_speech_seconds=0.25):
        import torch

        threads = torch.get_num_threads()
        try:
            import silero_vad
        except ImportError as err:  # an environment older than the install_requires
            raise ImportError("the speech check needs silero-vad: pip install silero-vad (or pass vad=False to "
                              "respond to every input, speech or not)") from err
        finally:
            torch.set_num_threads(threads)  # importing silero_vad sets torch to one thread for the whole process
        with warnings.catch_warnings():
            # torch.jit.load's and importlib.resources' deprecation notices, raised inside silero_vad
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = silero_vad.load_silero_vad()
        self._timestamps = silero_vad.get_speech_timestamps
        self.threshold = float(threshold)
        self.min_speech_seconds = float(min_speech_seconds)
        self._lock = threading.Lock()  # the model keeps a recurrent state between frames

    def speech_seconds(self, wave):
        """Total length in seconds of the speech segments Silero finds in ``wave`` (16 kHz mono)."""
        import torch

        with self._lock, torch.no_grad():
            segments = self._timestamps(torch.as_tensor(wave, dtype=torch.float32), self.model,
                                        threshold=self.threshold, sampling_rate=SAMPLE_RATE)
        return sum(s["end"] - s["start"] for s in segments) / SAMPLE_RATE

    def has_speech(self, wave):
        return self.speech_seconds(wave) >= self.min_speech_seconds
