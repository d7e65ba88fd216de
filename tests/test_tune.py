"""``elman tune`` and :func:`elman.tune`: tiny real studies (airline, tiny networks, two
batches per epoch), real files, real processes for the CLI, ``kill -9`` and ``--jobs``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import REPO, run_cli

import elman
from elman.cli import main
from elman.config import Config
from elman.errors import ConfigError, DataError
from elman.evaluation.ensemble import NETWORK, EnsemblePredictor, member_at_cutoffs
from elman.evaluation.folds import validation_folds
from elman.evaluation.scores import MODEL
from elman.files import TUNE_BEST, TUNE_JOURNAL, TUNE_TRIALS
from elman.forecaster import Forecaster
from elman.forecasting.predictor import targets_at
from elman.models.registry import window_models
from elman.runs.workflows import train_run
from elman.tuning.result import Candidate
from elman.tuning.run import _pick
from elman.tuning.space import Param, SearchSpace, load_space
from elman.tuning.study import FAIL_REASON, RETRY_OF, hidden, open_storage
from elman.tuning.validation import fit_trial, make_split, window_scores

TINY = {"horizon": 12, "epochs": 3, "max_batches": 2, "hidden_size": 4, "threads": 1}
TINY_FLAGS = ["--horizon", "12", "--epochs", "3", "--max-batches", "2", "--hidden-size", "4"]
SPACE = "[hidden_size]\nlow = 4\nhigh = 8\n"  # the rest of the default space stays


@pytest.fixture(scope="module")
def space_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("space") / "space.toml"
    path.write_text(SPACE)
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, space_file: Path):
    """One small search shared by the tests that only read its outcome."""
    out = tmp_path_factory.mktemp("tune") / "study"
    return elman.tune(
        "builtin:airline", out=out, trials=5, seeds=2, top=2, space=space_file,
        train_best=False, **TINY,
    )  # fmt: skip


def airline() -> pd.DataFrame:
    from elman.data.datasets import load_dataset

    return load_dataset("airline")


def studies_trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(out, None)
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()


# ------------------------------------------------------------------ the validation scheme
def test_validation_folds_follow_the_count_and_length():
    assert validation_folds(1, 132, 12) == 5  # one series: as many as half its length holds
    assert validation_folds(1, 2000, 12) == 10  # never more than MAX_FOLDS
    assert validation_folds(3, 400, 5) == 10
    assert validation_folds(30, 200, 13) == 1  # 30 series: one window each is 30 pairs
    assert validation_folds(7, 200, 13) == 5  # ceil(30 / 7)
    with pytest.raises(DataError, match="no room for a validation window of 12 points"):
        validation_folds(1, 20, 12)


def test_split_keeps_the_final_window_out_of_what_trials_see():
    series = elman.read_series("builtin:airline")
    split = make_split(series, 12, 12)
    assert len(split.seen[0]) == 144 - 12
    assert split.cutoffs.tolist() == [[72, 84, 96, 108, 120]]
    assert split.cutoffs[0, -1] + 12 == len(split.seen[0])
    assert len(split.training()[0]) == 72


def test_the_untouched_window_is_never_used_by_a_trial(tmp_path: Path, space_file: Path):
    frame = airline()
    changed = frame.copy()
    changed["passengers"] = changed["passengers"].astype(float)
    changed.loc[132:, "passengers"] *= 3.0  # only the final window differs
    runs = [
        elman.tune(
            data,
            out=tmp_path / name,
            trials=3,
            seeds=1,
            top=1,
            space=space_file,
            train_best=False,
            **TINY,
        )  # fmt: skip
        for name, data in (("same", frame), ("changed", changed))
    ]
    values = [[(t.params, t.value) for t in r.trials] for r in runs]
    assert values[0] == values[1]  # every trial scored the same on both
    assert runs[0].untouched["tuned"] != runs[1].untouched["tuned"]  # the window does count


def test_a_trial_scores_the_ensemble_that_elman_train_would_deploy():
    split = make_split(elman.read_series("builtin:airline"), 12, 12)
    cfg = Config().replace(**TINY)  # --ensemble auto, the default
    trial = fit_trial(cfg, split)
    deployed = Forecaster(config=cfg).fit(split.training())
    assert isinstance(trial, EnsemblePredictor)
    assert deployed.ensemble is not None and trial.weights == deployed.ensemble.weights
    # the oracle: each member at each window, fitted on the history before it
    cut, seen = split.cutoffs, split.seen
    parts = {NETWORK: trial.network.forecast_at_cutoffs(seen, cut, 12)}
    for name in trial.weights:
        if name != NETWORK:
            parts[name] = member_at_cutoffs(name, seen, cut, 12, 12, form_at=cut[:, 0])
    mixed = sum(w * parts[n] for n, w in trial.weights.items())
    err = np.abs(targets_at(seen, cut, 12) - mixed) / split.scales[:, None, None, :]
    np.testing.assert_allclose(window_scores(trial, split), err.mean(axis=(0, 2, 3)), rtol=1e-9)
    alone = fit_trial(cfg.replace(ensemble="none"), split)  # the network alone
    assert not isinstance(alone, EnsemblePredictor)
    np.testing.assert_allclose(
        window_scores(alone, split),
        np.abs(targets_at(seen, cut, 12) - parts[NETWORK]).mean(axis=(0, 2, 3))
        / split.scales[0, 0],
        rtol=1e-9,
    )


def test_a_search_whose_networks_the_ensemble_ignores_says_so(tmp_path: Path):
    space = write(tmp_path, 'ensemble = "auto"\n')  # the network alone is not searched
    r = elman.tune(
        "builtin:nile", out=tmp_path / "nile", trials=4, seeds=1, top=2, space=space,
        train_best=False, **{**TINY, "horizon": 10},
    )  # fmt: skip
    values = [t.value for t in r.trials]
    assert len({tuple(sorted(t.params.items())) for t in r.trials}) == 4  # four networks
    assert len(set(values)) == 1  # ETS has all the weight: each trial scores the same
    assert r.chosen.params == r.default_params
    assert [c.params for c in r.candidates] == [r.default_params]  # the others not re-scored
    assert r.note.startswith(f"every complete trial with the ensemble scored {values[0]:.4f}")
    assert r.note.endswith("--ensemble none tunes the network alone")
    assert not (tmp_path / "nile" / "tune_importance.png").exists()  # nothing to explain
    assert (tmp_path / "nile" / "tune_history.png").is_file()


def test_the_network_alone_competes_when_the_ensemble_ignores_it(tmp_path: Path):
    r = elman.tune(  # the default space: trial 1 is the network alone, trial 2 lr x 3
        "builtin:nile", out=tmp_path / "nile", trials=6, seeds=1, top=2, train_best=False,
        **{**TINY, "horizon": 10},
    )  # fmt: skip
    assert r.trials[1].params == {**r.default_params, "ensemble": "none"}
    ensembled = [t.value for t in r.trials if t.params["ensemble"] == "auto"]
    alone = [t for t in r.trials if t.params["ensemble"] == "none"]
    assert len(ensembled) >= 2 and len(set(ensembled)) == 1  # ETS has all the weight
    assert all(t.value != ensembled[0] for t in alone)  # the network alone scores itself
    rescored = [c.params for c in r.candidates if c.params != r.default_params]
    assert rescored and all(p["ensemble"] == "none" for p in rescored)
    assert r.note.startswith(f"every complete trial with the ensemble scored {ensembled[0]:.4f}")
    assert "--ensemble none tunes" not in r.note


# ------------------------------------------------------------------ the search
def test_trial_zero_is_the_configuration_given(study):
    first = study.trials[0]
    assert first.user_attrs["default"] is True
    assert first.params == study.default_params
    assert first.params["hidden_size"] == 4 and first.params["lr"] == 3e-3
    assert first.params["lookback"] == 32  # the automatic lookback of the training part
    assert study.default.model.hidden_size == 4


def test_the_seed_is_not_searched_and_the_best_are_rescored_over_seeds(study):
    assert all("seed" not in t.params for t in study.trials)
    assert all(c.seeds == [0, 1] and len(c.scores) == 2 for c in study.candidates)
    assert any(c.params == study.default_params for c in study.candidates)
    default = next(c for c in study.candidates if c.params == study.default_params)
    assert study.chosen.mean <= default.mean  # never worse than the defaults on validation
    done = {t.number: t.value for t in study.trials if t.value is not None}
    for c in study.candidates:  # the first seed's score is the trial's own
        assert c.scores[0] == done[c.trial]


def test_a_lead_within_the_seed_spread_keeps_the_defaults():
    defaults = {"lr": 3e-3}
    default = Candidate(0, defaults, [0, 1, 2], [1.0, 1.1, 1.2])  # spread 0.2
    close = Candidate(4, {"lr": 1e-2}, [0, 1, 2], [0.9, 0.95, 1.0])  # lead 0.15
    far = Candidate(7, {"lr": 2e-2}, [0, 1, 2], [0.7, 0.75, 0.8])  # lead 0.35
    assert _pick([close, default], defaults)[0] is default
    chosen, note = _pick([far, close, default], defaults)
    assert chosen is far and note.startswith("trial 7 led the defaults")
    assert _pick([default], defaults)[0] is default
    # the best mean, but a spread (0.6) larger than its lead (0.5): the next one is clear
    wild = Candidate(9, {"lr": 3e-2}, [0, 1, 2], [0.3, 0.6, 0.9])
    chosen, note = _pick([wild, far, default], defaults)
    assert chosen is far and "more than the seed spread (0.2000)" in note
    assert _pick([wild, close, default], defaults)[0] is default


def test_the_verdict_names_the_seed_spread_only_when_one_was_measured():
    from elman.tuning.report import _verdict

    assert _verdict([0.5, 0.6], [0.7, 0.72]) == (
        "Tuned is 22.5% better than default on the untouched window (0.5500 against 0.7100), "
        "beyond the seed spread (0.1000)."
    )
    assert _verdict([0.8], [0.7]).endswith(  # one seed: no spread, neither within nor beyond
        "(0.8000 against 0.7000); with one seed no seed spread was measured (--seeds 3 "
        "measures it)."
    )


def test_outputs_are_written_without_pickle(study):
    out = study.out
    for name in (TUNE_BEST, TUNE_TRIALS, "report.md", "tune_history.png", TUNE_JOURNAL):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / TUNE_TRIALS)
    assert table["trial"].tolist() == list(range(5))
    assert set(table["state"]) <= {"complete", "pruned", "fail"}
    report = (out / "report.md").read_text()
    assert "Tuned against default on the untouched window" in report
    assert "| tuned (best.toml) | 0, 1 |" in report
    for line in (out / TUNE_JOURNAL).read_text().splitlines():
        json.loads(line)  # the study is JSON lines, nothing else
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.pickle"))


def test_best_toml_reproduces_the_untouched_score(tmp_path: Path, study):
    cfg = Config.from_toml(study.out / TUNE_BEST)
    assert cfg == study.best
    run = train_run(tmp_path / "again", cfg.replace(threads=1, progress=False))
    assert run.holdout is not None
    assert run.holdout.metrics[MODEL]["mase"] == study.untouched["tuned"][0]


def test_failed_trials_are_recorded_and_the_study_goes_on(tmp_path: Path):
    space = tmp_path / "space.toml"  # lookback 120 leaves the 72 training points no window
    space.write_text("replace = true\nlookback = [32, 120]\n")
    result = elman.tune(
        "builtin:airline", out=tmp_path / "t", trials=5, seeds=1, top=1, space=space,
        train_best=False, **TINY,
    )  # fmt: skip
    failed = [t for t in result.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(result.trials) == 5 and failed
    assert all(t.params["lookback"] == 120 for t in failed)
    assert all("lookback" in t.user_attrs[FAIL_REASON] for t in failed)
    table = pd.read_csv(tmp_path / "t" / TUNE_TRIALS)
    assert table.loc[table["state"] == "fail", "reason"].str.contains("lookback").all()
    assert result.chosen.params["lookback"] == 32


def test_resume_continues_the_study_to_the_new_trial_count(tmp_path: Path, space_file: Path):
    options = dict(out=tmp_path / "r", seeds=1, top=1, space=space_file, train_best=False, **TINY)
    first = elman.tune("builtin:airline", trials=2, **options)
    with pytest.warns(UserWarning, match=r"--neighbours \(3\) is ignored with --resume"):
        again = elman.tune("builtin:airline", trials=4, resume=True, neighbours=3, **options)
    assert len(again.trials) == 4
    assert [t.value for t in again.trials[:2]] == [t.value for t in first.trials]


# ------------------------------------------------------------------ the search space
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hiden_size = [8]\n", "unknown parameter 'hiden_size'; tunable: batch_size, clip,"),
        ("[lr]\nlow = 0.1\nhigh = 0.01\n", "[lr] low (0.1) is above high (0.01)"),
        ("[lr]\nlow = 0.0\nhigh = 0.01\nlog = true\n", "[lr] low 0.0: --lr (0.0) must be > 0"),
        ("[dropout]\nlow = 0.0\nhigh = 1.5\n", "[dropout] high 1.5: --dropout (1.5) must be in"),
        ('strategy = ["direct", "sideways"]\n', "[strategy] choice 'sideways': --strategy"),
        ("[hidden_size]\nlow = 4.5\nhigh = 8\n", "[hidden_size] low 4.5: --hidden-size (4.5) must"),
        ("[hidden_size]\nlow = 4\n", "[hidden_size] needs both low and high"),
        ("[hidden_size]\nlow = 4\nhigh = 8\nstep = 2\n", "[hidden_size] has unknown key 'step'"),
        ('[strategy]\nlow = "a"\nhigh = "b"\n', "'strategy' is not a number"),
        ("replace = true\n", "'replace = true' with no parameters leaves nothing to search"),
        ("lr = [\n", "is not valid TOML"),
    ],
)
def test_a_bad_space_file_is_one_line_naming_file_and_key(tmp_path: Path, text: str, message: str):
    path = write(tmp_path, text)
    base = SearchSpace((Param("lr", 1e-3, 1e-2, log=True),))
    with pytest.raises(ConfigError) as err:
        load_space(path, base, Config())
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_space_file_narrows_or_replaces(tmp_path: Path):
    base = SearchSpace((Param("lr", 1e-3, 1e-2, log=True), Param("num_layers", 1, 3)))
    narrowed = load_space(write(tmp_path, "num_layers = [1, 2]\ndropout = 0.1\n"), base, Config())
    assert [p.name for p in narrowed.params] == ["lr", "num_layers", "dropout"]
    assert narrowed.params[1].choices == (1, 2) and narrowed.params[2].choices == (0.1,)
    only = load_space(write(tmp_path, "replace = true\nnum_layers = [2]\n"), base, Config())
    assert [p.name for p in only.params] == ["num_layers"]


def test_the_default_space_searches_the_loss_except_for_the_esrnn():
    from elman.tuning.space import default_space

    lstm = default_space(Config(), lookback=24, max_lookback=48)
    names = {p.name: p for p in lstm.params}
    assert names["loss"].choices == ("mse", "mae", "huber")
    assert 1e-3 in names["weight_decay"].choices and 0.0 in names["weight_decay"].choices
    assert lstm.defaults(Config())["loss"] == "mse"  # trial 0 holds the default loss
    esrnn = default_space(Config().replace(model="esrnn"), lookback=24, max_lookback=48)
    assert "loss" not in {p.name for p in esrnn.params}


def test_the_default_space_tries_the_network_alone_only_beside_an_ensemble():
    from elman.tuning.space import default_space

    def ensemble(cfg: Config) -> Param | None:
        found = default_space(cfg, lookback=24, max_lookback=48).params
        return next((p for p in found if p.name == "ensemble"), None)

    assert ensemble(Config()).choices == ("auto", "none")  # type: ignore[union-attr]
    listed = ensemble(Config().replace(ensemble="network,theta"))
    assert listed is not None and listed.choices == ("network,theta", "none")
    assert ensemble(Config().replace(ensemble="none")) is None  # the user chose it alone


def test_a_step_is_a_quarter_of_a_range_or_the_next_choice():
    assert Param("lr", 3e-4, 3e-2, log=True).steps(3e-3) == [0.0095, 0.00095]  # x / 10 ** 0.5
    assert Param("hidden_size", 8, 128, log=True).steps(64) == [128, 32]
    assert Param("hidden_size", 8, 128, log=True).steps(128) == [64]  # kept inside the range
    assert Param("num_layers", 1, 3).steps(1) == [2]  # an integer moves by at least 1
    assert Param("dropout", 0.0, 0.3).steps(0.0) == [0.075]
    assert Param("lookback", choices=(36, 12, 24, 48)).steps(24) == [36, 12]  # by size
    assert Param("weight_decay", choices=(0.0, 1e-5, 1e-4)).steps(1e-4) == [1e-5]
    assert Param("loss", choices=("mse", "mae", "huber")).steps("mae") == ["mse", "huber"]
    assert Param("lr", 1e-3, 1e-3, log=True).steps(1e-3) == []  # a fixed value has none


def test_the_neighbours_change_one_parameter_each_in_rounds():
    space = SearchSpace((
        Param("lookback", choices=(12, 24, 36)), Param("hidden_size", 8, 128, log=True),
        Param("strategy", choices=("direct", "recursive")), Param("lr", 3e-4, 3e-2, log=True),
    ))  # fmt: skip
    defaults = {"lookback": 24, "hidden_size": 64, "strategy": "direct", "lr": 3e-3}
    near = space.neighbours(defaults, limit=20)
    changed = [{k: v for k, v in n.items() if v != defaults[k]} for n in near]
    assert changed == [  # lr first, then lookback and hidden size; then the other way
        {"lr": 0.0095}, {"lookback": 36}, {"hidden_size": 128}, {"strategy": "recursive"},
        {"lr": 0.00095}, {"lookback": 12}, {"hidden_size": 32},
    ]  # fmt: skip
    assert space.neighbours(defaults, limit=2) == near[:2]


def test_a_search_tries_the_neighbours_right_after_the_defaults(study):
    from elman.tuning.run import neighbours_for

    assert neighbours_for(5) == 2 and neighbours_for(12) == 5 and neighbours_for(1) == 0
    table = pd.read_csv(study.out / TUNE_TRIALS, keep_default_na=False)
    assert table["neighbour"].tolist()[:3] == ["", "ensemble", "lr"]
    assert study.trials[1].params == {**study.default_params, "ensemble": "none"}
    assert study.trials[2].params == {**study.default_params, "lr": 0.0095}


def test_a_neighbour_never_repeats_the_defaults_or_leaves_the_range():
    from elman.tuning.space import inert

    assert Param("clip", 0.5, 5.0).steps(None) == []  # an unset option has no step
    # rounded to two digits, then clipped: 0.00077 becomes the bound, not 0.0012 (dropped)
    assert Param("lr", 0.00125, 0.01, log=True).steps(0.0013) == [0.0022, 0.00125]
    assert inert(Config()) == ("dropout", "teacher_forcing")  # one LSTM layer, direct
    assert inert(Config().replace(num_layers=2, strategy="recursive")) == ()
    assert inert(Config().replace(model="tcn")) == ("teacher_forcing",)
    space = SearchSpace((Param("dropout", 0.0, 0.3), Param("lr", 3e-4, 3e-2, log=True)))
    defaults = {"dropout": 0.0, "lr": 3e-3}
    assert [n["dropout"] for n in space.neighbours(defaults, 9, inert(Config()))] == [0.0] * 2


@pytest.mark.parametrize("name", window_models())
def test_one_layer_dropout_is_inert_exactly_for_the_models_tune_skips_it_for(name: str):
    """``space.inert`` skips dropout neighbours for LAYER_DROPOUT_MODELS with one layer: the
    models themselves must agree (training mode, same weights, dropout 0.5 against 0)."""
    import torch

    from elman.config import LAYER_DROPOUT_MODELS
    from elman.models.registry import build_model

    x = torch.randn(4, 7, 2, generator=torch.Generator().manual_seed(1))
    outs = []
    for p in (0.0, 0.5):
        torch.manual_seed(0)
        net = build_model(name, input_size=2, output_size=1, hidden_size=8, dropout=p).train()
        torch.manual_seed(2)  # the same dropout draws, where there are any
        out = net(x)
        outs.append(out[0] if isinstance(out, tuple) else out)
    assert torch.equal(outs[0], outs[1]) == (name in LAYER_DROPOUT_MODELS), name


def test_a_space_file_is_made_to_hold_the_defaults(tmp_path: Path):
    from elman.tuning.space import holding

    path = write(tmp_path, 'dropout = 0.1\nloss = ["mae", "huber"]\n[lr]\nlow = 0.01\nhigh = 0.1\n')
    base = SearchSpace((Param("lr", 1e-3, 1e-2, log=True),))
    with pytest.warns(UserWarning) as said:
        space, cfg = holding(load_space(path, base, Config()), Config(), path)
    found = {p.name: p for p in space.params}
    assert cfg.model.dropout == 0.1 and found["dropout"].choices == (0.1,)  # fixed: trial 0 too
    assert found["loss"].choices == ("mae", "huber", "mse")  # the default's loss joins
    assert (found["lr"].low, found["lr"].high) == (0.01, 0.1)  # a range is left as given...
    assert [str(w.message) for w in said] == [  # ...and said to leave out the default
        f"{path}: [lr] 0.01 .. 0.1 leaves out the default 0.003; trial 0 runs the defaults "
        "with it anyway, the other trials search the range (widen it to search around the "
        "defaults)"
    ]
    assert space.defaults(cfg)["dropout"] == 0.1


def test_a_range_without_the_default_warns_once_and_trial_0_still_runs_it(tmp_path: Path):
    path = write(tmp_path, "replace = true\n[lr]\nlow = 0.01\nhigh = 0.1\n")
    done = run_cli("tune", "--data", "builtin:airline", *TINY_FLAGS, "--trials", "2",
                   "--seeds", "1", "--top", "1", "--no-train-best", "--threads", "1",
                   "--space", str(path), "--out", str(tmp_path / "w"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "warning" in line.lower()]
    assert warned == [f"elman: warning: {path}: [lr] 0.01 .. 0.1 leaves out the default 0.003; "
                      "trial 0 runs the defaults with it anyway, the other trials search the "
                      "range (widen it to search around the defaults)"]  # not Optuna's too
    table = pd.read_csv(tmp_path / "w" / TUNE_TRIALS)
    assert table.loc[0, "lr"] == 0.003 and table.loc[1, "lr"] >= 0.01


def test_a_retry_runs_before_the_queued_neighbours(tmp_path: Path):
    from elman.tuning.study import create, recover_stale, trials_run

    near = [{"lr": 1e-2}, {"lr": 1e-3}]
    study = create(open_storage(tmp_path, None), "s", {"lr": 3e-3}, 0, near)
    first = study.ask()  # trial 0 starts; its worker dies (nothing finishes it)
    assert first.number == 0
    assert recover_stale(study) == 1
    again = study.ask()  # the next trial to run is trial 0 once more, not a neighbour
    assert again.number == 3 and again.user_attrs == {"default": True, RETRY_OF: 0}
    assert again.suggest_float("lr", 1e-4, 1e-1) == 3e-3
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[0] == "FAIL" and {states[1], states[2]} == {"FAIL"}  # 1, 2: moved
    assert [t.number for t in trials_run(study)] == [0, 3]  # the moved records are no trials
    queued = [t for t in study.get_trials() if t.state.name == "WAITING"]
    assert [t.user_attrs["neighbour"] for t in queued] == ["lr", "lr"]
    assert [t.system_attrs["fixed_params"] for t in queued] == near  # the same neighbours


def test_neighbours_0_samples_right_after_the_defaults(tmp_path: Path, space_file: Path):
    r = elman.tune(
        "builtin:airline", out=tmp_path / "n0", trials=3, seeds=1, top=1, space=space_file,
        neighbours=0, train_best=False, **TINY,
    )  # fmt: skip
    assert [bool(t.user_attrs.get("default")) for t in r.trials] == [True, False, False]
    assert not any(t.user_attrs.get("neighbour") for t in r.trials)
    assert r.trials[1].params["lr"] != 3e-3  # sampled, not the neighbour lr = 0.0095


# ------------------------------------------------------------------ the command line
def test_cli_prints_the_space_and_progress_and_refuses_a_changed_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "c"
    args = ["tune", "--data", "builtin:airline", *TINY_FLAGS, "--trials", "2", "--seeds", "1",
            "--top", "1", "--no-train-best", "--threads", "1", "--out", str(out)]  # fmt: skip
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert "search space:" in done.stdout and re.search(r"^  lookback\s+12 \| 24 \| 32$",
                                                         done.stdout, re.M)  # fmt: skip
    assert re.search(r"^tune: 2/2 trials \(.*\), best \d\.\d{4} \(trial \d\), \d+ s$",
                     done.stderr, re.M), done.stderr  # fmt: skip
    assert "untouched final window (12 points)" in done.stdout
    assert re.search(r"^  tuned    mean \d\.\d{4}  spread -  \(\d\.\d{4}\)$", done.stdout, re.M)
    journal = (out / TUNE_JOURNAL).read_bytes()
    cmd = args  # the refusals below come before any training: run them in this process
    assert main(cmd) == 2  # the same command without --resume
    assert "add --resume to continue" in capsys.readouterr().err
    space = write(tmp_path, "num_layers = [1]\n")
    assert main([*cmd, "--resume", "--space", str(space)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1:] == [
        f"elman: error: --resume: the study in '{out}' was made for other settings (--space "
        "changed); resume with the same data, horizon, options and --space, or start a new "
        "search with another --out"
    ]
    assert main([*[a if a != "12" else "6" for a in cmd], "--resume"]) == 2
    assert "(--horizon, --space changed)" in capsys.readouterr().err
    assert (out / TUNE_JOURNAL).read_bytes() == journal  # nothing lost or mixed


@pytest.mark.slow
def test_kill_9_then_resume_keeps_every_finished_trial(tmp_path: Path, space_file: Path):
    out = tmp_path / "k"
    args = [sys.executable, "-m", "elman", "tune", "--data", "builtin:airline", *TINY_FLAGS,
            "--seeds", "1", "--top", "1", "--no-train-best", "--threads", "1",
            "--space", str(space_file), "--out", str(out)]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen([*args, "--trials", "200"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        finished: list[optuna.trial.FrozenTrial] = []
        deadline = time.time() + 120
        while len(finished) < 3 and time.time() < deadline:
            time.sleep(0.5)
            if (out / TUNE_JOURNAL).exists():
                finished = [t for t in studies_trials(out) if t.state.is_finished()]
        assert len(finished) >= 3, "the search did not finish 3 trials in 120 s"
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # a real kill -9, mid-trial or between trials
        proc.wait()
    before = {t.number: (t.state, t.value, t.params) for t in studies_trials(out)}
    kept = {n: v for n, v in before.items() if v[0].is_finished()}
    running = [n for n, v in before.items() if v[0] == optuna.trial.TrialState.RUNNING]
    total = len(kept) + 2
    done = subprocess.run([*args, "--trials", str(total), "--resume"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    after = studies_trials(out)
    for n, v in kept.items():  # every finished trial is still there, unchanged
        assert (after[n].state, after[n].value, after[n].params) == v
    moved = [t for t in after if hidden(t)]  # queued neighbours, moved behind the retry
    for n in running:  # the trial the kill cut short failed, and ran again first
        assert after[n].state == optuna.trial.TrialState.FAIL
        (retry,) = [t for t in after if t.user_attrs.get(RETRY_OF) == n and not hidden(t)]
        assert retry.state.is_finished() and retry.number == len(before)  # queued first
    waiting = [t for t in after if t.state == optuna.trial.TrialState.WAITING]
    assert all(t.user_attrs.get("neighbour") for t in waiting)  # queued for --trials 200
    counted = [t for t in after if t.number not in running and t not in waiting + moved]
    assert len(counted) == total and all(t.state.is_finished() for t in counted)


@pytest.mark.slow
def test_two_jobs_share_one_study(tmp_path: Path, space_file: Path):
    out = tmp_path / "j"
    done = run_cli("tune", "--data", "builtin:airline", *TINY_FLAGS, "--trials", "4",
                   "--seeds", "1", "--top", "1", "--no-train-best", "--jobs", "2",
                   "--space", str(space_file), "--out", str(out), "--no-progress-bar")  # fmt: skip
    assert done.returncode == 0, done.stderr
    trials = studies_trials(out)
    assert len(trials) == 4 and all(t.state.is_finished() for t in trials)
    assert trials[0].user_attrs["default"] is True
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2 and os.getpid() not in workers  # two worker processes


def test_tune_is_exported_from_the_package():
    from elman.tuning.run import tune

    assert elman.tune is tune and "tune" in elman.__all__


def test_storage_url_keeps_the_study_in_that_database(tmp_path: Path, space_file: Path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    options = dict(seeds=1, top=1, space=space_file, train_best=False, storage=url, **TINY)
    first = elman.tune("builtin:airline", out=tmp_path / "a", trials=2, **options)
    assert not (tmp_path / "a" / TUNE_JOURNAL).exists()
    second = elman.tune("builtin:airline", out=tmp_path / "b", trials=3, **options)  # joins it
    stored = optuna.load_study(study_name=first.study_name, storage=url).get_trials()
    assert len(stored) == 3 and len(second.trials) == 3
    assert [t.user_attrs.get("default", False) for t in stored] == [True, False, False]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--resume"], "--resume: '{out}' holds no study.json; give the --out directory of a"),
        (["--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
        (["--jobs", "0"], "--jobs (0) must be >= 1"),
        (["--timeout", "-3"], "--timeout (-3.0) must be > 0 seconds"),
        (["--neighbours", "-1"], "--neighbours (-1) must be >= 0"),
    ],
)
def test_bad_search_options_end_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
):
    out = tmp_path / "plain"
    out.mkdir()
    (out / "keep.txt").write_text("precious\n")
    args = ["tune", "--data", "builtin:airline", *TINY_FLAGS, "--out", str(out), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("elman: error: ") and message.format(out=out) in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # nothing written, nothing lost
