"""utils.config.parse_with_config: the one reader of --preset, --config and the command line,
used by test.py, unlabeled_train.py and online_finetuning.py (precedence and errors)."""
from __future__ import annotations

import pytest
import yaml

import online_finetuning
import test as test_script
import unlabeled_train
from utils.config import parse_with_config

# script -> (required options, an option the authors' preset changes or None, its values:
# parser default, preset, config file, command line)
SCRIPTS = {
    "test.py": (test_script, ["--weights", "w.pth"], "batch_size", (4, None, 8, 16)),
    "online_finetuning.py": (online_finetuning, ["--weights", "w.pth"], "ema", (0.99, 0.9996, 0.9, 0.8)),
    "unlabeled_train.py": (unlabeled_train, [], "d_loss_weight", (1.0, 1e-4, 0.5, 0.25)),
}


def _parse(script: str, argv: list[str]):
    module, required, _, _ = SCRIPTS[script]
    return parse_with_config(module.get_parser(), [*required, *argv])


def _yaml(path, data) -> str:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("script", SCRIPTS)
def test_precedence_default_preset_config_command_line(script, tmp_path):
    _, _, dest, (default, preset, from_file, from_cli) = SCRIPTS[script]
    flag = f"--{dest}"
    cfg = _yaml(tmp_path / "c.yaml", {dest: from_file})
    assert getattr(_parse(script, []), dest) == default
    assert getattr(_parse(script, ["--config", cfg]), dest) == from_file
    assert getattr(_parse(script, ["--config", cfg, flag, str(from_cli)]), dest) == from_cli
    assert getattr(_parse(script, [flag, str(from_cli), "--config", cfg]), dest) == from_cli  # order is irrelevant
    if preset is None:
        return
    assert getattr(_parse(script, ["--preset", "authors"]), dest) == preset
    assert getattr(_parse(script, ["--preset", "authors", "--config", cfg]), dest) == from_file
    a = _parse(script, ["--preset", "authors", "--config", cfg, flag, str(from_cli)])
    assert (a.preset, getattr(a, dest)) == ("authors", from_cli)
    # The file may name the preset; its own values still beat the preset's.
    named = _yaml(tmp_path / "named.yaml", {"preset": "authors", dest: from_file})
    assert (lambda a: (a.preset, getattr(a, dest)))(_parse(script, ["--config", named])) == ("authors", from_file)
    only_name = _yaml(tmp_path / "only_name.yaml", {"preset": "authors"})
    assert getattr(_parse(script, ["--config", only_name]), dest) == preset
    # The command line's preset beats the file's, and the file's values beat either preset.
    a = _parse(script, ["--config", _yaml(tmp_path / "ours.yaml", {"preset": "ours"}), "--preset", "authors"])
    assert (a.preset, getattr(a, dest)) == ("authors", preset)
    a = _parse(script, ["--config", named, "--preset", "ours"])
    assert (a.preset, getattr(a, dest)) == ("ours", from_file)


def test_online_preset_from_file_sets_the_other_preset_values(tmp_path):
    a = _parse("online_finetuning.py", ["--config", _yaml(tmp_path / "c.yaml", {"preset": "authors", "epochs": 3})])
    assert (a.mode, a.epochs, a.tta_average) == ("transductive", 3, "logits")


def _error(capsys, script: str, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as e:
        _parse(script, argv)
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("script", SCRIPTS)
def test_missing_and_unreadable_files_are_named(script, tmp_path, capsys):
    missing = tmp_path / "nowhere.yaml"
    err = _error(capsys, script, ["--config", str(missing)])
    assert f"--config {missing}: file not found" in err
    err = _error(capsys, script, ["--config", _yaml(tmp_path / "broken.yaml", "epochs: [1\nlr: 2\n")])
    assert "broken.yaml: not valid YAML" in err and "line" in err
    err = _error(capsys, script, ["--config", str(tmp_path)])  # a folder
    assert f"--config {tmp_path}: cannot read it" in err
    err = _error(capsys, script, ["--config", _yaml(tmp_path / "list.yaml", "- epochs: 1\n- lr: 2\n")])
    assert "list.yaml: expected a mapping of option names to values, got list" in err
    err = _error(capsys, script, ["--config", _yaml(tmp_path / "scalar.yaml", "epochs\n")])
    assert "scalar.yaml: expected a mapping" in err and "got str" in err


def test_empty_file_changes_nothing(tmp_path):
    empty = _yaml(tmp_path / "empty.yaml", "")
    a, b = _parse("test.py", ["--config", empty]), _parse("test.py", [])
    assert vars(a) == {**vars(b), "config": empty}


@pytest.mark.parametrize("script", SCRIPTS)
def test_unknown_options_are_all_named(script, tmp_path, capsys):
    err = _error(capsys, script, ["--config", _yaml(tmp_path / "typo.yaml", {"batch_sise": 2, "sizee": [1, 2]})])
    assert "typo.yaml: unknown options ['batch_sise', 'sizee']" in err


def test_preset_key_is_unknown_to_test_py(tmp_path, capsys):
    err = _error(capsys, "test.py", ["--config", _yaml(tmp_path / "p.yaml", {"preset": "authors"})])
    assert "p.yaml: unknown options ['preset']" in err


@pytest.mark.parametrize("values, expected", [
    ({"batch_size": "four"}, "batch_size: invalid int value 'four'"),
    ({"batch_size": 2.5}, "batch_size: invalid int value 2.5"),
    ({"batch_size": True}, "batch_size: invalid int value True"),
    ({"batch_size": [2]}, "batch_size: expects one value, got [2]"),
    ({"size": 64}, "size: expects a list, got 64"),
    ({"size": [64, 96, 128]}, "size: expects 2 values, got 3"),
    ({"size": [64, "wide"]}, "size: invalid int value 'wide'"),
    ({"scales": []}, "scales: expects at least one value"),
    ({"test_datasets": "DAVIS-2016"}, "test_datasets: expects a list, got 'DAVIS-2016'"),
    ({"flip": "yes"}, "flip: expects true or false, got 'yes'"),
    ({"amp_dtype": "fp8"}, "amp_dtype: 'fp8' is not one of ['bf16', 'fp16']"),
])
def test_values_the_command_line_would_refuse(values, expected, tmp_path, capsys):
    err = _error(capsys, "test.py", ["--config", _yaml(tmp_path / "bad.yaml", values)])
    assert f"--config {tmp_path / 'bad.yaml'}: " in err and expected in err


def test_every_bad_value_in_one_message_even_if_the_command_line_overrides_it(tmp_path, capsys):
    bad = _yaml(tmp_path / "bad.yaml", {"epochs": "two", "mode": "online", "tta": ["identity", "rotate"]})
    err = _error(capsys, "online_finetuning.py", ["--config", bad, "--epochs", "2"])
    assert "epochs: invalid int value 'two'" in err and "mode: 'online' is not one of" in err
    assert "tta: 'rotate' is not one of" in err
    err = _error(capsys, "online_finetuning.py", ["--config", _yaml(tmp_path / "p.yaml", {"preset": "authers"})])
    assert "p.yaml: preset: 'authers' is not one of ['authors', 'ours']" in err


def test_values_are_taken_as_the_command_line_takes_them(tmp_path):
    # YAML reads 1e-3 (no dot) as a string, and list items are left alone by argparse's defaults.
    cfg = _yaml(tmp_path / "c.yaml", "lr: 1e-3\nscales: ['1.5', 1]\nprob_dir: null\ntta_scale: [1e-1, 2]\n")
    a = _parse("online_finetuning.py", ["--config", cfg])
    assert a.lr == 1e-3 and a.scales == [1.5, 1] and a.prob_dir is None and a.tta_scale == [0.1, 2.0]
    assert isinstance(a.lr, float) and isinstance(a.scales[0], float)


def test_entry_script_stops_before_writing(tmp_path, capsys):
    with pytest.raises(SystemExit):
        test_script.main(["--weights", "w.pth", "--save_dir", str(tmp_path / "m"),
                          "--config", str(tmp_path / "nowhere.yaml")])
    assert "nowhere.yaml: file not found" in capsys.readouterr().err and not (tmp_path / "m").exists()
