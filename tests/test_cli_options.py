"""One meaning per flag: every option has one help text, metavar and default in every command, the
option sets are declared once, and the old spellings of renamed options still work, with one line."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
import torch
import typer
import typer.main
from typer.testing import CliRunner, Result

from torchscope.cli import app
from torchscope.cli._renames import EXCEPTIONS as ALLOWED
from torchscope.cli._renames import RENAMED, deprecation_line
from torchscope.cli._sets import Defaults, InputSet, LoadSet, OutputSet, takes_sets

CliRun = Callable[..., Result]
ZOO = Path(__file__).parent / "zoo.py"
CNN = f"{ZOO}:SmallCNN"

def _commands() -> dict[str, Any]:
    group = typer.main.get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


def _options_by_name() -> dict[str, dict[str, dict[str, str]]]:
    """option name -> attribute (help, metavar, default) -> command -> value."""
    found: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    for command, cmd in _commands().items():
        for param in cmd.params:
            if param.param_type_name != "option":
                continue
            for name in (*param.opts, *param.secondary_opts):
                if not name.startswith("--"):
                    continue  # -b is --batch-size's
                found[name]["help"][command] = str(param.help)
                found[name]["metavar"][command] = str(param.metavar)
                found[name]["default"][command] = repr(param.default)
    return found


def test_every_option_has_one_help_metavar_and_default_across_commands() -> None:
    differing = {
        (name, attribute): values
        for name, attributes in _options_by_name().items()
        for attribute, values in attributes.items()
        if len(set(values.values())) > 1 and (name, attribute) not in ALLOWED
    }
    assert differing == {}


def test_every_allowed_exception_is_still_needed() -> None:
    options = _options_by_name()
    stale = [key for key in ALLOWED if len(set(options[key[0]][key[1]].values())) <= 1]
    assert stale == []


def test_every_option_that_takes_a_value_says_what_it_takes() -> None:
    vague = {
        f"{command} {param.opts[0]}": param.metavar
        for command, cmd in _commands().items()
        for param in cmd.params
        if param.param_type_name == "option"
        and not param.is_flag
        and (not param.metavar or param.metavar.startswith("<") or param.metavar in ("INTEGER", "FLOAT", "TEXT"))
    }
    assert vague == {}


def test_the_shared_options_are_declared_once_in_their_sets() -> None:
    # the loading options of every command that loads a model are the set's, in the set's words
    commands = _commands()
    load_help = {p.opts[0]: p.help for p in commands["tree"].params if p.opts[0] in ("--weights", "--arg")}
    for command in ("summary", "activations", "stats", "grads", "check-freeze", "memory", "report"):
        mine = {p.opts[0]: p.help for p in commands[command].params if p.opts[0] in load_help}
        assert mine == load_help, command


# -- the decorator ---------------------------------------------------------------------------------
def _mini_app() -> typer.Typer:
    mini = typer.Typer()

    @mini.command()
    @takes_sets
    def show(
        *,
        load: Annotated[LoadSet, Defaults(device="meta")],
        inputs: InputSet,
        depth: int = 3,
        out: OutputSet,
    ) -> None:
        typer.echo(f"{load!r}|{inputs!r}|{depth}|{out!r}")

    @mini.command()
    def other() -> None:  # two commands, so `show` is a subcommand
        pass

    return mini


def test_a_command_gets_one_frozen_dataclass_per_set_with_its_own_defaults() -> None:
    result = CliRunner().invoke(_mini_app(), ["show", "resnet18", "--input-size", "1,3,8,8", "--json"])
    assert result.exit_code == 0, result.output
    load_repr, inputs_repr, depth, out_repr = result.stdout.strip().split("|")
    assert load_repr == repr(LoadSet(model="resnet18", device="meta"))
    assert inputs_repr == repr(InputSet(input_size="1,3,8,8"))
    assert depth == "3"
    assert out_repr == repr(OutputSet(json=True))
    with pytest.raises(dataclasses_frozen_error()):
        LoadSet(model="x").device = "cpu"  # type: ignore[misc]


def dataclasses_frozen_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_a_default_for_a_field_the_set_lacks_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match=r"Defaults\(colour=\.\.\.\): LoadSet has no such field"):

        @takes_sets
        def bad(*, load: Annotated[LoadSet, Defaults(colour="red")]) -> None: ...


def test_an_option_declared_twice_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match="option 'device' is declared twice"):

        @takes_sets
        def bad(*, load: LoadSet, device: str = "cpu") -> None: ...


# -- old spellings ---------------------------------------------------------------------------------
def _rename(old: str, command: str) -> str:
    for rename in RENAMED:
        if rename.old == old and (command in rename.commands or not rename.commands):
            return deprecation_line(rename)
    raise LookupError(old)


def test_html_still_saves_the_console_html_with_one_line(cli: CliRun, tmp_path: Path) -> None:
    page = tmp_path / "tree.html"
    result = cli("tree", CNN, "--no-cache", "--html", page)
    assert result.exit_code == 0, result.output
    assert result.stderr == _rename("--html", "tree") + "\n"
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_summary_strict_is_require_exact(cli: CliRun) -> None:
    result = cli("summary", CNN, "--input-size", "2,3,8,8", "--strict", "--no-color")
    assert result.exit_code == 0, result.output
    assert result.stderr == _rename("--strict", "summary") + "\n"


def test_diff_expand_is_unchanged(cli: CliRun, tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save({"w": torch.zeros(2), "v": torch.zeros(2)}, a)
    torch.save({"w": torch.ones(2), "v": torch.zeros(2)}, b)
    new = cli("diff", a, b, "--unchanged", "--no-color")
    old = cli("diff", a, b, "--expand", "--no-color")
    assert old.exit_code == new.exit_code == 0, old.output
    assert old.stdout == new.stdout and " v " in f" {new.stdout} "
    assert old.stderr == _rename("--expand", "diff") + "\n"


@pytest.mark.parametrize(
    ("old", "new", "field", "value"),
    [
        (["--mode", "full"], ["--finetune", "full"], "modes", ("full",)),
        (["--mode=frozen"], ["--finetune=frozen"], "modes", ("frozen",)),
        (["--steps", "7"], ["--window-steps", "7"], "steps", 7),
    ],
)
def test_bench_old_spellings_set_the_same_settings(
    cli: CliRun, monkeypatch: pytest.MonkeyPatch, old: list[str], new: list[str], field: str, value: object
) -> None:
    from torchscope.errors import TorchscopeError

    seen: list[Any] = []

    def no_run(settings: Any, **kwargs: Any) -> None:
        seen.append(getattr(settings, field))
        raise TorchscopeError("stopped before the run")

    monkeypatch.setattr("torchscope._bench.run.run_bench", no_run)
    base = ["bench", "--model", CNN, "--device", "cpu", "--no-progress"]
    for args in (new, old):
        result = cli(*base, *args)
        assert result.exit_code == 2 and "stopped before the run" in result.stderr, result.output
    assert seen == [value, value]
    assert result.stderr.startswith(_rename(old[0].partition("=")[0], "bench") + "\n")


def test_bench_strict_is_require_speed(cli: CliRun, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchscope.errors import TorchscopeError

    def no_run(settings: Any, **kwargs: Any) -> None:
        raise TorchscopeError("stopped before the run")

    monkeypatch.setattr("torchscope._bench.run.run_bench", no_run)
    result = cli("bench", "--model", CNN, "--device", "cpu", "--no-progress", "--strict")
    assert result.exit_code == 2, result.output
    assert result.stderr == _rename("--strict", "bench") + "\nerror: stopped before the run\n"


def test_an_old_and_a_new_spelling_together_are_one_usage_error(cli: CliRun) -> None:
    result = cli("summary", CNN, "--strict", "--require-exact")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --strict is the old spelling of --require-exact; give --require-exact only; "
        "see 'torchscope summary --help'\n"
    )


def test_an_old_spelling_after_double_dash_is_left_alone() -> None:
    from torchscope.cli._renames import rewrite_renamed

    lines: list[str] = []
    assert rewrite_renamed("diff", {"--unchanged"}, ["a", "--", "--expand"], lines.append) == ["a", "--", "--expand"]
    assert lines == []


def test_memory_sgd_momentum_is_sgd_with_its_momentum(cli: CliRun) -> None:
    base = ["memory", CNN, "--input-size", "2,3,8,8", "--device", "cpu", "--json"]
    old = cli(*base, "--optimizer", "sgd-momentum")
    new = cli(*base, "--optimizer", "sgd")
    plain = cli(*base, "--optimizer", "sgd", "--momentum", "0")
    assert old.exit_code == new.exit_code == plain.exit_code == 0, old.output
    assert old.stdout == new.stdout != plain.stdout
    assert re.fullmatch(r"warning: `--optimizer sgd-momentum` is deprecated[^\n]*\n", old.stderr)
    assert new.stderr == plain.stderr == ""


# -- --batch-size, one meaning ---------------------------------------------------------------------
def test_bench_tokens_with_batch_size_is_one_samples_length() -> None:
    from torchscope.cli.bench import _tokens

    assert _tokens("8", None, "4") == _tokens("4x8", None, None) == (4, 8, "int64")
    assert _tokens("8", "long", "auto") == ("auto", 8, "int64")
