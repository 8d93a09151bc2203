"""Environment variables, settings= and the auto-resume file (contract §2, §5)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import api


async def test_the_default_store_is_under_the_root(root: Path) -> None:
    async with api.init(project="p") as run:
        pass
    assert (root / "runlog" / "runlog.db").exists()
    assert run.project == "p"


async def test_runlog_run_id_and_wandb_run_id(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_RUN_ID", "from-wandb")
    async with api.init(project="p") as run:
        assert run.id == "from-wandb"
    monkeypatch.setenv("RUNLOG_RUN_ID", "from-runlog")
    async with api.init(project="p") as run:
        assert run.id == "from-runlog"  # the RUNLOG_ variable wins over WANDB_


async def test_an_explicit_argument_beats_settings_beats_the_environment(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNLOG_RUN_ID", "env")
    async with api.init(project="p", settings={"id": "settings"}) as run:
        assert run.id == "settings"
    async with api.init(project="p", id="explicit", settings=api.Settings(id="settings")) as run:
        assert run.id == "explicit"


async def test_runlog_project_store_and_dir(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLOG_PROJECT", "envproject")
    monkeypatch.setenv("RUNLOG_DIR", str(root / "d"))
    monkeypatch.setenv("RUNLOG_STORE", str(root / "elsewhere.db"))
    async with api.init(resume="auto") as run:
        assert run.project == "envproject"
    assert (root / "elsewhere.db").exists()
    assert (root / "d" / "runlog" / "resume.json").exists() is False  # exit 0 deletes it


async def test_the_project_defaults_to_uncategorized(root: Path) -> None:
    async with api.init() as run:
        assert run.project == "uncategorized"


@pytest.mark.parametrize("value", ["true", "yes", "ALLOW"])
async def test_a_bad_resume_variable_is_a_configuration_error(
    root: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("WANDB_RESUME", value)
    with pytest.raises(api.ConfigurationError, match=rf"^WANDB_RESUME='{value}' is not"):
        await api.init(project="p")


async def test_a_bad_resume_variable_is_named_as_the_user_set_it(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_RESUME", "allow")
    monkeypatch.setenv("RUNLOG_RESUME", "true")  # the runlog one wins, so it is the culprit
    with pytest.raises(api.ConfigurationError, match=r"^RUNLOG_RESUME='true' is not"):
        await api.init(project="p")


async def test_an_empty_resume_variable_means_unset(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNLOG_RESUME", "")
    async with api.init(project="p", id="r1"):
        pass
    with pytest.raises(api.RunAlreadyExists):
        await api.init(project="p", id="r1")


async def test_the_resume_variable_applies_when_the_argument_is_absent(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with api.init(project="p", id="r1"):
        pass
    monkeypatch.setenv("WANDB_RESUME", "allow")
    async with api.init(project="p", id="r1") as run:
        assert run.resumed
    with pytest.raises(api.RunAlreadyExists):  # an explicit False overrides the variable
        await api.init(project="p", id="r1", resume=False)


async def test_inside_a_sweep_the_agents_id_wins_with_a_warning(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNLOG_SWEEP_ID", "s1")
    monkeypatch.setenv("RUNLOG_RUN_ID", "agent-run")
    with pytest.warns(UserWarning, match="Ignoring run_id 'mine' when running a sweep"):
        run = await api.init(project="p", id="mine")
    assert run.id == "agent-run"
    await run.finish()


# --- §5 the auto-resume file ---------------------------------------------------------------


def auto_file(root: Path) -> Path:
    return root / "runlog" / "resume.json"


async def test_auto_writes_the_file_with_the_final_id(root: Path) -> None:
    run = await api.init(project="p", resume="auto")
    assert json.loads(auto_file(root).read_text()) == {"run_id": run.id}
    await run.finish(1)
    assert auto_file(root).exists()  # kept on a non-zero exit


async def test_auto_resumes_the_id_in_the_file(root: Path) -> None:
    first = await api.init(project="p", resume="auto")
    await first.log({"loss": 1.0})
    await first.finish(1)
    async with api.init(project="p", resume=True) as again:
        assert (again.id, again.resumed, again.step) == (first.id, True, 1)
    assert not auto_file(root).exists()  # deleted on exit 0


async def test_an_explicit_id_beats_the_file_with_a_warning(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    auto_file(root).parent.mkdir(parents=True)
    auto_file(root).write_text(json.dumps({"run_id": "fromfile", "extra": 1}))
    with caplog.at_level(logging.WARNING, logger="runlog"):
        async with api.init(project="p", id="explicit", resume="auto") as run:
            assert run.id == "explicit"
    assert (
        "Ignoring ID fromfile loaded due to resume='auto' because the run ID is set to explicit."
        in caplog.text
    )


@pytest.mark.parametrize(
    "content", ["{not json", json.dumps({"no": "id"}), json.dumps({"run_id": "a/b"})]
)
async def test_an_unreadable_file_is_ignored_and_a_new_id_generated(
    root: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    auto_file(root).parent.mkdir(parents=True)
    auto_file(root).write_text(content)
    with caplog.at_level(logging.WARNING, logger="runlog"):
        async with api.init(project="p", resume="auto") as run:
            assert len(run.id) == 8
    assert "ignoring" in caplog.text


async def test_the_file_is_read_only_with_auto(root: Path) -> None:
    auto_file(root).parent.mkdir(parents=True)
    auto_file(root).write_text(json.dumps({"run_id": "fromfile"}))
    async with api.init(project="p", resume="allow") as run:
        assert run.id != "fromfile"


async def test_an_init_without_resume_deletes_the_file(root: Path) -> None:
    auto_file(root).parent.mkdir(parents=True)
    auto_file(root).write_text(json.dumps({"run_id": "fromfile"}))
    async with api.init(project="p"):
        assert not auto_file(root).exists()


# --- the settings file (precedence level 4) ------------------------------------------------


def settings_file(root: Path, text: str) -> None:
    (root / "runlog").mkdir(exist_ok=True)
    (root / "runlog" / "settings.toml").write_text(text)


async def test_the_settings_file_applies_below_the_environment(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file(root, 'project = "fromfile"\nid = "file-id"\nresume = "allow"\n')
    async with api.init() as run:
        assert (run.project, run.id) == ("fromfile", "file-id")
    async with api.init() as run:  # resume = "allow" from the file
        assert run.resumed
    monkeypatch.setenv("RUNLOG_PROJECT", "fromenv")
    async with api.init(id="other") as run:
        assert run.project == "fromenv"


async def test_a_bad_settings_file_is_a_configuration_error(root: Path) -> None:
    settings_file(root, 'colour = "blue"\n')
    with pytest.raises(api.ConfigurationError, match="unknown settings \\['colour'\\]"):
        await api.init()
    settings_file(root, "not = [toml\n")
    with pytest.raises(api.ConfigurationError, match="cannot read the settings file"):
        await api.init()
