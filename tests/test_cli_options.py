"""occam.cli.options: Typer options from config dataclasses, presets, and errors in CLI terms."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import typer
from typer.testing import CliRunner

from occam.cli.options import cli_terms, config_options
from occam.errors import DataError, OccamError


@dataclass
class Toy:
    name: str = field(metadata={"help": "A name."})
    width: int = field(default=8, metadata={"help": "Units per layer.", "min": 1, "max": 64})
    rate: float | None = field(default=None, metadata={"help": "Rate."})
    mode: Literal["fast", "slow"] = field(default="fast", metadata={"help": "Mode."})
    shuffle: bool = field(default=True, metadata={"help": "Shuffle."})
    tags: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.width == 13:
            raise OccamError("`width` 13 is unlucky", "set `width` to 12, or `unexposed` to anything")


def _app(**kw) -> tuple[typer.Typer, list]:
    seen: list = []
    app = typer.Typer()

    @app.command()
    @config_options(Toy, exclude=("tags",), flags={"width": ("--width", "-w")}, explicit="given", **kw)
    def run(name: str = typer.Argument(...), *, cfg: Toy, given: set[str],
            verbose: bool = typer.Option(False, "--verbose")) -> None:
        cfg.validate()
        seen.append((cfg, given, verbose))

    @app.command()
    def other() -> None:  # a second command, so that `run` is a subcommand
        pass

    return app, seen


def test_defaults_types_and_choices_come_from_the_fields():
    app, seen = _app()
    r = CliRunner().invoke(app, ["run", "x"])
    assert r.exit_code == 0, r.output
    cfg, given, verbose = seen[-1]
    assert cfg == Toy(name="x") and given == {"name"} and verbose is False  # the argument was given
    r = CliRunner().invoke(app, ["run", "y", "-w", "32", "--rate", "0.5", "--mode", "slow", "--no-shuffle", "--verbose"])
    assert r.exit_code == 0, r.output
    cfg, given, verbose = seen[-1]
    assert cfg == Toy(name="y", width=32, rate=0.5, mode="slow", shuffle=False)
    assert given == {"name", "width", "rate", "mode", "shuffle"} and verbose is True


@pytest.mark.parametrize("args", [["--mode", "medium"], ["--width", "0"], ["--width", "65"], ["--width", "wide"]])
def test_choices_and_bounds_are_enforced(args):
    app, seen = _app()
    r = CliRunner().invoke(app, ["run", "x", *args])
    assert r.exit_code == 2 and not seen


def test_help_shows_field_help_and_defaults():
    app, _ = _app()
    r = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for text in ("Units per layer.", "--no-shuffle", "--width", "--rate", "fast", "--verbose"):
        assert text in r.output, text
    assert "--tags" not in r.output


def test_errors_naming_fields_show_flags():
    app, _ = _app()
    r = CliRunner().invoke(app, ["run", "x", "--width", "13"])
    assert isinstance(r.exception, OccamError)
    assert r.exception.problem == "--width 13 is unlucky"
    assert r.exception.fix == "set --width to 12, or `unexposed` to anything"  # no flag: left as the library wrote it


def test_cli_terms_keeps_the_error_class():
    err = cli_terms(DataError("`seed` is bad", None), {"seed": "--seed"})
    assert type(err) is DataError and err.problem == "--seed is bad" and err.fix is None
    same = OccamError("nothing to rewrite")
    assert cli_terms(same, {"seed": "--seed"}) is same


def test_misuse_is_caught_when_the_command_is_built():
    with pytest.raises(TypeError, match="no field"):
        config_options(Toy, include=("nope",))
    with pytest.raises(TypeError, match="no CLI option"):
        config_options(Toy)(lambda *, cfg: None)  # `tags` is a dict: must be excluded
    with pytest.raises(TypeError, match="no parameter 'cfg'"):
        config_options(Toy, exclude=("tags",))(lambda: None)


def test_train_options_mirror_trainconfig_defaults():
    """Every TrainConfig field that `occam train` exposes has the config's default (one source)."""
    import inspect

    from occam.cli.training import train_cmd
    from occam.training.config import TrainConfig

    params = inspect.signature(train_cmd).parameters
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("task", "arch_kwargs"):
            continue
        assert params[f.name].default.default == f.default, f.name


def test_cli_modules_and_configs_import_no_heavy_library():
    code = ("import sys\n"
            "import occam.cli, occam.training.config, occam.training.presets, occam.fractal.config\n"
            "heavy = [m for m in ('torch', 'numba', 'onnx', 'onnxruntime', 'sklearn', 'fastapi') if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ---- presets -------------------------------------------------------------------------------------

def _benchmark_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fmnist_quality.py"
    spec = importlib.util.spec_from_file_location("fmnist_quality_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_headline_preset_is_the_benchmarks_config():
    from occam.training.presets import preset_config

    bench = _benchmark_module()
    assert preset_config("headline") == bench.recipe_config(1500, minutes=5.0)
    cfg = preset_config("headline")
    assert (cfg.task, cfg.arch, cfg.arch_kwargs, cfg.epochs, cfg.minutes, cfg.prune, cfg.target_nnz) == (
        "fashion-mnist", "sepcnn", {"stem": 16, "width": 32}, 60.0, 5.0, "gradual", 1500)


def test_preset_errors_and_overrides():
    from occam.training.presets import get_preset, preset_config

    with pytest.raises(OccamError, match="unknown preset 'nope'") as err:
        get_preset("nope")
    assert "headline" in err.value.fix
    with pytest.raises(OccamError, match="no field"):
        preset_config("headline", widht=3)
    cfg = preset_config("headline", task="mnist", minutes=1.0)
    assert cfg.task == "mnist" and cfg.minutes == 1.0 and cfg.target_nnz == 1500
    cfg.arch_kwargs["width"] = 1
    assert preset_config("headline").arch_kwargs["width"] == 32  # presets are never mutated through a config


def occam(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "occam", *args], capture_output=True, text=True, timeout=600)


def test_list_presets_prints_the_command_that_reaches_the_figure():
    r = occam("train", "--list-presets")
    assert r.returncode == 0, r.stderr
    assert "headline" in r.stdout and "0.627" in r.stdout
    assert "occam train fashion-mnist --arch sepcnn --opt stem=16 --opt width=32 --epochs 60 --minutes 5" in r.stdout


def test_preset_with_overrides_trains(tmp_path):
    out = tmp_path / "m.onnx"
    r = occam("train", "digits", "--preset", "headline", "--minutes", "0.05", "--epochs", "1", "--target-nnz", "900",
              "--opt", "width=8", "--threads", "1", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    import json

    card = json.loads(r.stdout)
    cfg = card["config"]
    assert cfg["arch_kwargs"] == {"stem": 16, "width": 8} and cfg["prune"] == "gradual"
    assert cfg["target_nnz"] == 900 and cfg["epochs"] == 1.0 and cfg["minutes"] == 0.05 and card["nnz"] <= 900


def test_unknown_preset_is_a_clear_cli_error():
    r = occam("train", "digits", "--preset", "fastest")
    assert r.returncode == 2 and "unknown preset 'fastest'" in r.stderr and "fix:" in r.stderr


def test_library_error_reaches_the_cli_user_as_flags():
    r = occam("train", "digits", "--target-nnz", "0")
    assert r.returncode == 2 and "--target-nnz must be at least 1" in r.stderr and "set --target-nnz" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["bogus"], "No such command 'bogus'"),
    (["score"], "Missing argument"),
    (["train", "digits", "--prune", "sometimes"], "'sometimes' is not one of"),
])
def test_usage_errors_are_messages_not_tracebacks(args, message):
    r = occam(*args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_main_builds_only_the_verbs_part_and_behaves_like_the_full_app():
    from occam.cli import _app_for, app

    small = _app_for(["score", "m.onnx"])
    assert small is not app
    assert {c.name for c in small.registered_commands} == {"inspect", "score"}
    assert _app_for(["--help"]) is app and _app_for([]) is app
    r = occam("data", "list", "--json")
    assert r.returncode == 0 and '"fashion-mnist"' in r.stdout


def _fractal_commands() -> dict:
    from occam.cli import fractal

    app = typer.Typer()
    fractal.register(app)
    (group,) = app.registered_groups
    return {c.name: c.callback for c in group.typer_instance.registered_commands}


def _defaults(command) -> dict:
    import inspect

    out = {}
    for name, p in inspect.signature(command).parameters.items():
        info = p.default
        out[name] = (info.default, (info.param_decls or (None,))[0]) if hasattr(info, "param_decls") else None
    return out


def test_fractal_commands_take_their_defaults_from_the_configs():
    from occam.fractal.config import ExperimentConfig, FractalConfig, PretrainConfig

    cmds = _fractal_commands()
    make = _defaults(cmds["make"])
    f = FractalConfig()
    assert make["categories"][0] == f.categories and make["points"][0] == f.points and make["size"][0] == f.size
    assert make["colour"] == (False, "--colour/--gray") and make["patch"] == (True, "--patch/--no-patch")
    assert "intensity" not in make and "cfg" not in make
    pre = _defaults(cmds["pretrain"])
    p = PretrainConfig()
    for name in ("arch", "categories", "instances", "points", "epochs", "batch_size", "workers", "seed"):
        assert pre[name][0] == getattr(p, name), name
    exp = _defaults(cmds["experiment"])
    assert exp["epochs"] == (p.epochs, "--pretrain-epochs")
    assert exp["finetune_steps"][0] == ExperimentConfig().finetune_steps and exp["arch"][0] == ExperimentConfig().arch


def test_fractal_make_errors_show_flags(tmp_path):
    res = CliRunner().invoke(_fractal_app(), ["fractal", "make", "--size", "4", "--out", str(tmp_path / "x"), "--quiet"])
    assert isinstance(res.exception, OccamError)
    assert res.exception.problem.startswith("--size must be at least 8") and "--size" in res.exception.fix
    assert not (tmp_path / "x").exists()


def _fractal_app() -> typer.Typer:
    from occam.cli import fractal

    app = typer.Typer()

    @app.callback()
    def _group() -> None:
        pass

    fractal.register(app)
    return app
