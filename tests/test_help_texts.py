"""The entry scripts' --help texts say what an option does: no issue numbers and no measured
figures (those live in benchmarks/RESULTS.md)."""
from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

ISSUE = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)
# A decimal number (not 1e-4, not a plain integer) followed by a unit of measurement, a signed
# decimal (a change: "+2.2", "-0.8"), a decimal factor ("1.7x faster", "3.1×"), or a decimal in a
# sentence that reports a measurement.
UNIT = re.compile(r"(?<![\w.])\d+\.\d+\s?(J&F|J\b|F\b|points?\b|pts?\b|s/frame|ms/frame|frames/s|fps\b|%|×)")
SIGNED = re.compile(r"(?<![\w.eE])[+\u2212]\d+\.\d+|(?<![\w.eE-])-\d+\.\d+\s?(J|points?|%)")
FACTOR = re.compile(r"(?<![\w.])\d+(\.\d+)?\s?x\s(faster|slower|the cost|cheaper)", re.IGNORECASE)
MEASURE_WORDS = re.compile(r"\b(measured|scored|gained?|gains|lost|loses|held[- ]out|on val|fold \d)\b", re.IGNORECASE)
MEASURED = re.compile(r"\bmeasured\b", re.IGNORECASE)
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*e-?\d)")


def problems(text: str) -> list[str]:
    """The parts of one help text that cite an issue or report a measured figure."""
    found = [m.group(0) for m in ISSUE.finditer(text)]
    found += [m.group(0) for m in MEASURED.finditer(text)]  # a result, even without its figure
    for pattern in (UNIT, SIGNED, FACTOR):
        found += [m.group(0) for m in pattern.finditer(text)]
    for sentence in re.split(r"(?<=[.;:])\s+", text):
        if MEASURE_WORDS.search(sentence) and DECIMAL.search(sentence):
            found.append(sentence.strip())
    return found


def _load(relpath: str):
    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location("help_texts_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPTS = ["unlabeled_train.py", "online_finetuning.py", "test.py", "scripts/segment_video.py"]


def _texts(parser: argparse.ArgumentParser):
    for text in (parser.description, parser.epilog):
        if text:
            yield "(parser)", text
    for action in parser._actions:
        if action.help and action.help is not argparse.SUPPRESS:
            yield "/".join(action.option_strings) or action.dest, action.help


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_texts_hold_no_issue_numbers_or_measured_figures(script):
    parser = _load(script).get_parser()
    bad = {option: found for option, text in _texts(parser) if (found := problems(text))}
    assert not bad, f"{script}: help texts with issue numbers or measured figures: {bad}"


@pytest.mark.parametrize("text", [
    "learning rate (default 1e-4)",
    "hard-label thresholds LO HI (default 0.1 0.9)",
    "blend weight W in [0, 1]; 0.5 mixes both equally",
    "frames per batch, default 4",
    "EMA decay of the teacher (0.99)",
    "share of the teacher's mask, default 0.3",
    "weight in [-1.0, 1.0]",
])
def test_plain_defaults_pass(text):
    assert problems(text) == []


@pytest.mark.parametrize("text", [
    "see issue 27",
    "Issue #12 chose this",
    "0.8 J lower on ten videos",
    "+2.2 over temporal fusion",
    "1.7x faster end to end",
    "24.6 frames/s on 480p",
    "measured 0.95 on fold 1",
    "costs 0.08 s/frame",
    "one concatenated batch (measured much worse)",
])
def test_figures_are_caught(text):
    assert problems(text)
