"""The per-utterance feature cache written by stage 2 and read by training and inference.

Layout of ``dump/<split>/<set>/`` (scales to ~150k utterances: two binary
files per shard, one JSONL index; nothing per utterance on disk)::

    shards/whisper.<j>of<N>.f16    Whisper states of shard j, fp16, utterances back to back
    shards/emotion.<j>of<N>.npy    [n_j, E] float32 pooled emotion embeddings (row = index "emotion_embedding_row")
    shards/index.<j>of<N>.jsonl    one record per utterance (below)
    index.jsonl                    the merged index, sorted by utt_id (what FeatureCache reads)
    features.json                  what made the cache: models, dims, format version
    report.json                    cached ("kept") and skipped ("dropped") by reason (rellm.utils.drop_report),
                                   notes (truncations), A/V/D annotations by kind

An index record::

    {"utt_id", "whisper_file", "whisper_offset" (bytes), "frames", "dim",
     "emotion_embedding_file", "emotion_embedding_row",
     "avd_annotation" [a, v, d] or null, "avd_prediction" [a, v, d], "duration", "whisper_truncated"}

The A/V/D annotation (the manifest's, when it has all three values) and the
emotion encoder's raw A/V/D prediction are stored side by side; which one a
model trains on is decided by stage 4 (``rellm.data.pipelines.choose_avd_target``).

torch is imported where tensors are made, not at import: stage 2 checks its done markers (``FORMAT_VERSION``)
without it.
"""
import json
from pathlib import Path

import numpy as np

from rellm.utils.io import atomic_path, read_jsonl, write_jsonl
from rellm.utils.sharding import shard_path

FORMAT_VERSION = 2  # 2: annotation and prediction stored separately (1 stored a pre-chosen mix)
INDEX_NAME = "index"


def whisper_blob_path(output_dir, shard, num_shards):
    return shard_path(output_dir, "whisper", shard, num_shards, suffix=".f16")


def emotion_matrix_path(output_dir, shard, num_shards):
    return shard_path(output_dir, "emotion", shard, num_shards, suffix=".npy")


class ShardWriter:
    """Writes one shard's blob, embedding matrix and index, each atomically on :meth:`close`.

    Use as a context manager; on an exception nothing is left under the final names.
    """

    def __init__(self, output_dir, shard, num_shards):
        self.output_dir = Path(output_dir)
        self.blob_path = whisper_blob_path(output_dir, shard, num_shards)
        self.emotion_path = emotion_matrix_path(output_dir, shard, num_shards)
        self.index_path = shard_path(output_dir, INDEX_NAME, shard, num_shards)
        self.records, self.embeddings = [], []
        self._offset = 0

    def __enter__(self):
        self._blob_ctx = atomic_path(self.blob_path)
        self._blob_tmp = self._blob_ctx.__enter__()
        self._blob = open(self._blob_tmp, "wb")
        return self

    def add(self, utt_id, whisper_states, emotion_embedding, avd_annotation, avd_prediction, duration,
            whisper_truncated=False):
        """``whisper_states`` [T, D] (stored fp16), ``emotion_embedding`` [E], ``avd_prediction`` length 3,
        ``avd_annotation`` length 3 or None."""
        import torch

        states = whisper_states.detach().to("cpu", torch.float16).contiguous().numpy()
        self._blob.write(states.tobytes(order="C"))
        self.records.append({
            "utt_id": utt_id,
            "whisper_file": self.blob_path.relative_to(self.output_dir).as_posix(),
            "whisper_offset": self._offset, "frames": int(states.shape[0]), "dim": int(states.shape[1]),
            "emotion_embedding_file": self.emotion_path.relative_to(self.output_dir).as_posix(),
            "emotion_embedding_row": len(self.embeddings),
            "avd_annotation": None if avd_annotation is None else [round(float(x), 6) for x in avd_annotation],
            "avd_prediction": [round(float(x), 6) for x in avd_prediction],
            "duration": round(float(duration), 4), "whisper_truncated": bool(whisper_truncated),
        })
        self._offset += states.nbytes
        self.embeddings.append(np.asarray(emotion_embedding, dtype=np.float32).reshape(-1))

    def __exit__(self, exc_type, exc, tb):
        self._blob.close()
        if exc_type is not None:
            self._blob_ctx.__exit__(exc_type, exc, tb)
            return False
        self._blob_ctx.__exit__(None, None, None)
        dim = self.embeddings[0].shape[0] if self.embeddings else 0
        matrix = np.stack(self.embeddings) if self.embeddings else np.zeros((0, dim), dtype=np.float32)
        with atomic_path(self.emotion_path) as tmp, open(tmp, "wb") as f:
            np.save(f, matrix)
        write_jsonl(self.index_path, self.records)  # last: an index implies its blob and matrix are complete
        return False


def read_feature_meta(folder):
    """A cache's ``features.json`` (what made it: encoders, dims, Whisper window), ``{}`` when absent."""
    path = Path(folder) / "features.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


class FeatureCache:
    """Read-only access to a stage-2 feature folder.

    ``keys()``, ``whisper(utt_id) -> Tensor[T, D] fp16``, ``emotion_embedding(utt_id) -> Tensor[E] fp32``
    (the adapter's input), ``avd_annotation(utt_id) -> Tensor[3] or None`` (the corpus's annotation)
    and ``avd_prediction(utt_id) -> Tensor[3]`` (the emotion encoder's raw output), A/V/D always
    in [arousal, valence, dominance] order.

    Files are memory-mapped on first use, so opening is cheap and the object can be
    handed to DataLoader workers (the maps are re-opened in each process).
    """

    def __init__(self, folder, check_version=True):
        self.folder = Path(folder)
        index = self.folder / f"{INDEX_NAME}.jsonl"
        if not index.is_file():
            raise FileNotFoundError(
                f"{index} does not exist: run stage 2 (rellm.bin.extract) for this set, including the "
                "--merge true step, before reading its features"
            )
        self._records = {r["utt_id"]: r for r in read_jsonl(index)}
        self.meta = read_feature_meta(self.folder)
        version = self.meta.get("format_version")
        first = next(iter(self._records.values()), {})
        if check_version and (version != FORMAT_VERSION or (first and "avd_prediction" not in first)):
            raise ValueError(
                f"{self.folder} was written by an older stage 2 (feature cache format {version}, this version reads "
                f"{FORMAT_VERSION}); re-run stage 2 for this set with --overwrite=true"
            )
        self._maps = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def __len__(self):
        return len(self._records)

    def __contains__(self, utt_id):
        return utt_id in self._records

    def __iter__(self):
        return iter(self._records)

    def keys(self):
        return list(self._records)

    def record(self, utt_id):
        try:
            return self._records[utt_id]
        except KeyError:
            raise KeyError(f"utterance {utt_id!r} is not in the feature cache {self.folder} "
                           f"(see its report.json for skipped utterances)") from None

    @property
    def whisper_dim(self):
        return next(iter(self._records.values()))["dim"] if self._records else self.meta.get("whisper_dim")

    @property
    def emotion_dim(self):
        if not self._records:
            return self.meta.get("emotion_dim")
        return int(self._map(next(iter(self._records.values()))["emotion_embedding_file"], npy=True).shape[1])

    def _map(self, relpath, npy=False):
        m = self._maps.get(relpath)
        if m is None:
            path = self.folder / relpath
            try:
                m = np.load(path, mmap_mode="r") if npy else np.memmap(path, dtype=np.float16, mode="r")
            except (OSError, ValueError) as err:
                raise self._damaged(path, err) from err
            self._maps[relpath] = m
        return m

    def _damaged(self, path, why):
        from rellm.utils.stage import UserError

        return UserError(f"the feature cache file {path} is damaged ({why}); rebuild this set's features: "
                         f"python -m rellm.bin.extract conf/extract.yaml --output_dir {self.folder} ... "
                         "--overwrite=true (or ./run.sh --stage 2 --stop_stage 2 --overwrite true)")

    def whisper(self, utt_id):
        import torch

        r = self.record(utt_id)
        start = r["whisper_offset"] // 2  # bytes -> fp16 elements
        flat = self._map(r["whisper_file"])[start: start + r["frames"] * r["dim"]]
        if flat.size != r["frames"] * r["dim"]:
            raise self._damaged(self.folder / r["whisper_file"], f"{utt_id} needs {r['frames'] * r['dim']} values "
                                f"from offset {r['whisper_offset']}, the file holds {flat.size}")
        return torch.from_numpy(np.array(flat).reshape(r["frames"], r["dim"]))

    def emotion_embedding(self, utt_id):
        """The pooled emotion-encoder embedding ``[E]`` fp32: what the fusion adapter reads."""
        import torch

        r = self.record(utt_id)
        matrix = self._map(r["emotion_embedding_file"], npy=True)
        if r["emotion_embedding_row"] >= matrix.shape[0]:
            raise self._damaged(self.folder / r["emotion_embedding_file"], f"{utt_id} is row "
                                f"{r['emotion_embedding_row']}, the file holds {matrix.shape[0]} rows")
        return torch.from_numpy(np.array(matrix[r["emotion_embedding_row"]]))

    def avd_annotation(self, utt_id):
        """The corpus's A/V/D annotation ``[3]`` (0..1), or None when the utterance has none."""
        import torch

        value = self.record(utt_id)["avd_annotation"]
        return None if value is None else torch.tensor(value, dtype=torch.float32)

    def avd_prediction(self, utt_id):
        """The frozen emotion encoder's raw A/V/D prediction ``[3]`` (not clipped)."""
        import torch

        return torch.tensor(self.record(utt_id)["avd_prediction"], dtype=torch.float32)


def open_feature_cache(folder):
    """The stage 2 feature cache of one set, or a message saying which stage to run."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"feature folder {folder} does not exist; run stage 2 (rellm.bin.extract) first")
    return FeatureCache(folder)


def feature_cache_pipeline(cache):
    """SpeechBrain dynamic item: ``id`` -> ``whisper_states`` [T, D] fp16, ``emotion_embedding`` [E],
    ``avd_annotation`` [3] or None and ``avd_prediction`` [3] (arousal, valence, dominance).

    Usage: ``dataset.add_dynamic_item(feature_cache_pipeline(FeatureCache(dir)))``.
    """
    from speechbrain.utils.data_pipeline import provides, takes

    @takes("id")
    @provides("whisper_states", "emotion_embedding", "avd_annotation", "avd_prediction")
    def features(utt_id):
        yield cache.whisper(utt_id)
        yield cache.emotion_embedding(utt_id)
        yield cache.avd_annotation(utt_id)
        yield cache.avd_prediction(utt_id)

    return features
