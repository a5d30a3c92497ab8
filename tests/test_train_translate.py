"""The translation task and trainer: number generator, vocabulary, length batches and `python -m train.translate`."""
import json

import numpy as np
import pytest

import tinytensor.io as tio
from train import translate
from train.translation_data import (LengthBatches, WordVocabulary, number_pairs, number_to_digits, number_to_words,
                                    read_tsv, split_pairs, words_to_number)

TINY = ["--d-model", "8", "--n-heads", "2", "--d-ff", "16", "--n-encoder-layers", "1", "--n-decoder-layers", "1",
        "--eval-iters", "1", "--max-tokens", "120", "--num-train", "300", "--num-held-out", "8", "--beam-size", "2",
        "--no-progress"]


@pytest.mark.parametrize("number, words, digits", [
    (0, "zero", "0"),
    (15, "fifteen", "1 5"),
    (40, "forty", "4 0"),
    (105, "one hundred five", "1 0 5"),
    (1000, "one thousand", "1 , 0 0 0"),
    (100_005, "one hundred thousand five", "1 0 0 , 0 0 5"),
    (342_019, "three hundred forty two thousand nineteen", "3 4 2 , 0 1 9"),
    (999_999, "nine hundred ninety nine thousand nine hundred ninety nine", "9 9 9 , 9 9 9"),
])
def test_numbers_are_written_as_words_and_digits(number, words, digits):
    assert number_to_words(number) == words
    assert number_to_digits(number) == digits


def test_words_read_back_to_the_same_number():
    for number in [*range(0, 2000), *np.random.default_rng(0).integers(0, 1_000_000, 3000).tolist()]:
        assert words_to_number(number_to_words(number)) == number


def test_generated_pairs_are_deterministic_and_held_out_never_seen_in_training():
    train, held_out = number_pairs(2000, 300, seed=5)
    assert (train, held_out) == number_pairs(2000, 300, seed=5)
    assert number_pairs(2000, 300, seed=6)[0] != train
    assert len(train) == 2000 and len(held_out) == 300
    assert not {source for source, _ in train} & {source for source, _ in held_out}
    assert len({source for source, _ in train}) == 2000
    for words, digits in train + held_out:
        assert number_to_digits(words_to_number(words)) == digits


def test_vocabulary_round_trips_through_json(tmp_path):
    vocab = WordVocabulary.from_pairs([("one thousand", "1 , 0 0 0"), ("two", "2")])
    assert vocab.words[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert vocab.decode(vocab.encode("two thousand")) == "two thousand"
    assert vocab.encode("zebra") == [vocab.unk_id]
    vocab.save(tmp_path / "vocab.json")
    assert WordVocabulary.load(tmp_path / "vocab.json").words == vocab.words


def test_length_batches_group_similar_lengths_within_the_token_budget():
    train, _ = number_pairs(500, 0, seed=1)
    vocab = WordVocabulary.from_pairs(train)
    batches = LengthBatches([(vocab.encode(s), vocab.encode(t)) for s, t in train], 100, vocab)
    assert sorted(i for batch in batches.batches for i in batch) == list(range(500))
    for index in range(len(batches)):
        src, tgt_in, tgt_out = batches.batch(index)
        assert max(src.shape[1], tgt_in.shape[1]) * src.shape[0] <= 100
        assert (tgt_in[:, 0] == vocab.bos_id).all() and (tgt_in[:, 1:] != vocab.bos_id).all()
        assert ((tgt_out == vocab.eos_id).sum(axis=1) == 1).all()
        assert (src != vocab.pad_id).sum(axis=1).min() >= src.shape[1] - 1  # sorted: at most one pad per row
        np.testing.assert_array_equal(tgt_in[:, 1:][tgt_out[:, :-1] != vocab.eos_id],
                                      tgt_out[:, :-1][tgt_out[:, :-1] != vocab.eos_id])


def test_tsv_pairs_are_read_and_split(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"s{i} a\tt{i} b\n" for i in range(20)) + "\n", encoding="utf-8")
    pairs = read_tsv(path)
    assert pairs[3] == ("s3 a", "t3 b") and len(pairs) == 20
    train, held_out = split_pairs(pairs, 0.25, seed=0)
    assert len(held_out) == 5 and sorted(train + held_out) == sorted(pairs)
    path.write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        read_tsv(path)


def test_a_short_run_trains_scores_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert translate.main([*TINY, "--out", str(out), "--max-iters", "3", "--eval-interval", "3"]) == 0
    printed = capsys.readouterr().out
    assert "greedy: BLEU" in printed and "beam 2: BLEU" in printed and "exact match" in printed
    assert "reference:" in printed
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) == {"greedy", "beam 2", "iterations"}
    assert 0 <= scores["greedy"]["exact_match"] <= 1 and 0 <= scores["beam 2"]["bleu"] <= 100
    assert tio.load_checkpoint(out / "checkpoint").step == 3

    assert translate.main(["--out", str(out), "--resume", "--max-iters", "5", "--no-progress"]) == 0
    assert tio.load_checkpoint(out / "checkpoint").step == 5
    losses = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in losses if "loss" in r] == [1, 2, 3, 4, 5]


def test_training_on_a_tsv_lowers_the_loss(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{number_to_digits(n)}\t{number_to_words(n)}\n" for n in range(200)), encoding="utf-8")
    out = tmp_path / "run"
    assert translate.main([*TINY, "--data", str(path), "--out", str(out), "--max-iters", "40",
                           "--eval-interval", "40", "--warmup", "10", "--num-examples", "1"]) == 0
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5


def test_resume_without_a_checkpoint_says_so(tmp_path, capsys):
    assert translate.main(["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "checkpoint" in capsys.readouterr().err
