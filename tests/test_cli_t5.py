"""``tfs train t5`` and ``tfs finetune t5``: the commands run the T5 recipes and print the held-out numbers they
report — the span loss against the unigram baseline, and each task's metric against its baseline."""

from __future__ import annotations

import re

import pytest

from transformer_from_scratch.cli import main


def run(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr()


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("t5") / "run"
    assert main(["train", "t5", "--steps", "30", "--out", str(folder)]) == 0
    return folder


def test_train_t5_writes_a_run_folder(t5_run):
    import json

    assert json.loads((t5_run / "run.json").read_text())["task"] == "t5"
    assert len((t5_run / "history.jsonl").read_text().splitlines()) == 30


def test_train_t5_report_lines(tmp_path, capsys):
    code, out = run(["train", "t5", "--steps", "20", "--out", str(tmp_path / "r")], capsys)
    assert code == 0
    line = next(x for x in out.out.splitlines() if x.startswith("held-out loss on the dropped tokens"))
    ours, unigram = map(float, re.findall(r"(\d+\.\d+) nats/token \(unigram baseline (\d+\.\d+)\)", line)[0])
    assert ours > 0 and unigram > 0
    assert "20 steps" in out.out


@pytest.mark.parametrize("task", ["translate", "summarize", "qa"])
def test_finetune_t5_prints_the_metric_and_the_baseline(task, t5_run, capsys):
    code, out = run(["finetune", "t5", "--task", task, "--steps", "10", "--from", str(t5_run)], capsys)
    assert code == 0
    metric = {"translate": "bleu", "summarize": "rougeL", "qa": "exact_match"}[task]
    assert re.search(rf"^{task}: {metric} \d+\.\d on 200 held-out pairs against \d+\.\d for the ", out.out, re.M)


def test_finetune_t5_errors_are_one_line(capsys, tmp_path):
    code, out = run(["finetune", "t5", "--task", "qa", "--from", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "no run folder" in out.err
    with pytest.raises(SystemExit) as e:
        main(["finetune", "t5", "--task", "poem"])
    assert e.value.code == 2
