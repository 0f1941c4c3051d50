"""EPITOME data: rationale token labels, the fixed grouped stratified split, checksummed fetch."""
import hashlib
import io

import numpy as np
import pytest

from rellm.scoring.epitome import data as D


def test_rationale_labels_mark_the_span_tokens(tiny_text_encoder):
    _, tok = tiny_text_encoder
    response = "that sounds hard . how long have you been feeling this way ?"
    ids, labels, report = D.encode_responses_with_rationales(tok, [response], [["how long have you"]], max_len=32)
    tokens = tok.convert_ids_to_tokens(ids[0])
    marked = [t for t, lab in zip(tokens, labels[0]) if lab]
    assert marked == ["how", "long", "have", "you"]
    assert labels[0][0] == 0 and labels[0][-1] == 0  # [CLS], [SEP]
    assert report["spans"] == 1 and report["spans_not_found"] == 0


def test_rationale_matching_tolerates_collapsed_whitespace_and_case():
    response = "Same!  I have lots of homework.  Really"
    marks, not_found = D.rationale_char_mask(response, ["same! i have lots"])
    assert not_found == []
    assert response[np.flatnonzero(marks)[0]:np.flatnonzero(marks)[-1] + 1] == "Same!  I have lots"


def test_two_spans_and_a_span_not_found_are_reported(tiny_text_encoder):
    _, tok = tiny_text_encoder
    response = "i am so sorry . hope it gets better"
    _, labels, report = D.encode_responses_with_rationales(
        tok, [response], [["so sorry", "gets better", "never said this"]], max_len=32)
    tokens = tok.convert_ids_to_tokens(tok(response)["input_ids"])
    assert [t for t, lab in zip(tokens, labels[0]) if lab] == ["so", "sorry", "gets", "better"]
    assert report["spans_not_found"] == 1
    assert report["examples_not_found"][0]["span"] == "never said this"


def test_no_rationale_marks_every_response_token(tiny_text_encoder):
    """Upstream convention (docs/evaluation.md#epitome-classifiers): without a rationale the whole response is
    labelled 1."""
    _, tok = tiny_text_encoder
    _, labels, _ = D.encode_responses_with_rationales(tok, ["thanks for sharing"], [[]], max_len=32)
    assert labels[0] == [0, 1, 1, 1, 0]


def test_truncation_cuts_rationales_and_is_counted(tiny_text_encoder):
    _, tok = tiny_text_encoder
    response = "i am so sorry to hear that you feel sad alone today"
    _, labels, report = D.encode_responses_with_rationales(tok, [response], [["alone today"]], max_len=6)
    assert len(labels[0]) == 6 and sum(labels[0]) == 0
    assert report["responses_truncated"] == 1 and report["rationales_cut_by_truncation"] == 1


def test_load_pairs_reads_levels_and_rationales(epitome_csv_dir):
    pairs = D.load_pairs("EX", epitome_csv_dir)
    assert len(pairs) == 120
    assert pairs.ids[0] == "r00000-s0-r0"
    assert set(pairs.level.tolist()) == {0, 1, 2}
    k = pairs.response.index("what happened ? are you okay ?")
    assert pairs.rationales[k] == ["are you okay ?"] and pairs.level[k] == 2


def test_split_is_stratified_grouped_and_fixed(epitome_csv_dir):
    pairs = D.load_pairs("ER", epitome_csv_dir)
    # duplicate one pair with another level, as the upstream CSVs do 61 times
    pairs.groups[5] = pairs.groups[4]
    split = D.stratified_split(pairs, (0.75, 0.05, 0.20), seed=12)
    all_ids = split["train"] + split["dev"] + split["test"]
    assert sorted(all_ids) == sorted(pairs.ids)  # a partition: nothing dropped, nothing twice
    part_of = {i: name for name, ids in split.items() for i in ids}
    assert part_of[pairs.ids[4]] == part_of[pairs.ids[5]]  # grouped
    assert abs(len(split["test"]) / len(pairs) - 0.20) < 0.03
    for level in (0, 1, 2):  # stratified: each level keeps its share in test
        n_level = int(np.sum(pairs.level == level))
        n_test = sum(1 for i in split["test"] if pairs.level[pairs.ids.index(i)] == level)
        assert abs(n_test - 0.2 * n_level) <= 1.5
    assert D.stratified_split(pairs, seed=12) == split
    assert D.stratified_split(pairs, seed=13) != split


def test_fetch_verifies_checksums(tmp_path, monkeypatch):
    payloads = {name: f"sp_id,rp_id\n{name}\n".encode() for name in D.CSV_SHA256}
    monkeypatch.setattr(D, "CSV_SHA256", {n: hashlib.sha256(p).hexdigest() for n, p in payloads.items()})
    requested = []

    def fake_urlopen(url):
        requested.append(url)
        return io.BytesIO(payloads[url.rsplit("/", 1)[1]])

    dest = D.fetch_csvs(tmp_path / "csvs", urlopen=fake_urlopen)
    assert sorted(p.name for p in dest.iterdir()) == sorted(payloads)
    assert all(D.UPSTREAM_COMMIT in url for url in requested)
    D.verify_csvs(dest)
    # a second fetch keeps the verified files and downloads nothing
    requested.clear()
    D.fetch_csvs(tmp_path / "csvs", urlopen=fake_urlopen)
    assert requested == []
    # a corrupted download is refused and never written
    name = next(iter(payloads))
    (tmp_path / "csvs" / name).unlink()
    with pytest.raises(ValueError, match="sha256"):
        D.fetch_csvs(tmp_path / "csvs", urlopen=lambda url: io.BytesIO(b"tampered"))
    assert not (tmp_path / "csvs" / name).exists()


def test_find_data_dir_prefers_the_environment(tmp_path, monkeypatch, epitome_csv_dir):
    monkeypatch.setenv("RELLM_EPITOME_DIR", str(epitome_csv_dir))
    assert D.find_data_dir() == epitome_csv_dir
    with pytest.raises(FileNotFoundError, match="fetch"):
        D.find_data_dir(tmp_path / "nothing-here")


@pytest.mark.skipif(D.find_data_dir() is None, reason="the EPITOME CSVs are not on this machine")
def test_shared_csvs_match_the_published_counts():
    folder = D.find_data_dir()
    D.verify_csvs(folder)
    counts = {m: D.level_counts(D.load_pairs(m, folder).level) for m in D.MECHANISMS}
    assert counts == {"ER": [2037, 895, 152], "IP": [1626, 114, 1344], "EX": [2604, 104, 376]}
