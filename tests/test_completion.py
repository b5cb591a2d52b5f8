"""Shell completion, as bash, zsh and fish ask the installed program for it: the scripts
``--show-completion`` and ``_DOCQ_COMPLETE=source_SHELL`` print, command and option names,
and ids from the queue (documents for ``show``, failed items for ``retry``, pending ones
for ``cancel``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import docq_env, run_docq


def complete_bash(words: str, db: str | None) -> list[str]:
    """What bash offers for the last word of ``words`` (a trailing space: a new word)."""
    parts = words.split(" ")
    result = run_docq(
        env=docq_env(db, _DOCQ_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(len(parts) - 1))
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout.split()


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory, sample_docs: Path) -> str:
    """Documents 1-12 (12 is broken.pdf, whose item 12 failed) and item 13, pending: doc 1 again."""
    folder = tmp_path_factory.mktemp("completion")
    for number in range(1, 12):
        (folder / f"file{number:02d}.txt").write_text(f"text {number}\n", encoding="utf-8")
    shutil.copy(sample_docs / "broken.pdf", folder / "zz-broken.pdf")
    db = str(folder / "q.db")
    files = sorted(str(path) for path in folder.iterdir() if path.suffix in (".txt", ".pdf"))
    assert run_docq("enqueue", *files, db=db).returncode == 0
    assert run_docq("work", db=db).returncode == 3  # broken.pdf fails
    assert run_docq("reprocess", files[0], db=db).returncode == 0
    return db


@pytest.fixture(scope="module")
def sample_docs() -> Path:
    return Path(__file__).resolve().parent.parent / "sample_docs"


def test_commands_and_options_complete(queue: str) -> None:
    assert complete_bash("docq wo", queue) == ["work", "workers"]
    assert complete_bash("docq list --sta", queue) == ["--status"]


def test_ids_complete_from_the_queue_newest_first(queue: str) -> None:
    assert complete_bash("docq show 1", queue) == ["12", "11", "10", "1"]
    assert complete_bash("docq show --item 1", queue) == ["13", "12", "11", "10", "1"]
    assert complete_bash("docq retry ", queue) == ["12"]  # the failed item only
    assert complete_bash("docq cancel ", queue) == ["13"]  # the pending item only
    assert complete_bash("docq reprocess 9", queue) == ["9"]
    assert complete_bash(f"docq --db {queue} show 2", None) == ["2"]  # --db on the line counts


def test_words_that_are_not_ids_and_queues_that_are_not_there_complete_nothing(
    queue: str, tmp_path: Path
) -> None:
    assert complete_bash("docq show /tmp/fi", queue) == []  # the shell completes paths itself
    assert complete_bash("docq show 99", queue) == []
    assert complete_bash("docq show 0", queue) == []
    missing = str(tmp_path / "none" / "q.db")
    assert complete_bash("docq show 1", missing) == []
    assert not Path(missing).exists()


def test_zsh_and_fish_get_the_ids_with_the_file_names(queue: str) -> None:
    zsh = run_docq(env=docq_env(queue, _DOCQ_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS="docq retry "))
    assert zsh.returncode == 0 and '"12":"zz-broken.pdf"' in zsh.stdout, zsh.stdout
    fish = run_docq(
        env=docq_env(
            queue,
            _DOCQ_COMPLETE="complete_fish",
            _TYPER_COMPLETE_FISH_ACTION="get-args",
            _TYPER_COMPLETE_ARGS="docq cancel 1",
        )
    )
    assert fish.returncode == 0 and fish.stdout.splitlines() == ["13\tfile01.txt"], fish.stdout


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o default -F _docq_completion docq"),
        ("zsh", "#compdef docq"),
        ("fish", "complete --command docq"),
    ],
)
def test_each_shell_gets_its_script(shell: str, marker: str) -> None:
    result = run_docq(env=docq_env(None, _DOCQ_COMPLETE=f"source_{shell}"))
    assert result.returncode == 0 and marker in result.stdout, result.stdout


def test_install_and_show_completion_are_offered() -> None:
    help_text = run_docq("--help").stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text
    shown = run_docq("--show-completion", env=docq_env(None, SHELL="/bin/bash"))
    assert shown.returncode == 0, shown.stderr
    assert "_DOCQ_COMPLETE=complete_bash" in shown.stdout


def test_ids_near_the_largest_a_queue_holds_complete(tmp_path: Path) -> None:
    """A prefix's ranges stop at the largest id: past 2**63 - 1 the database would refuse them."""
    import sqlite3

    db = str(tmp_path / "q.db")
    (tmp_path / "a.txt").write_text("a\n", encoding="utf-8")
    assert run_docq("enqueue", str(tmp_path / "a.txt"), db=db).returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE queue_items SET id = 9223372036854775000")
    conn.close()
    assert complete_bash("docq show --item 9", db) == ["9223372036854775000"]
    assert complete_bash("docq show --item 92233720368547750", db) == ["9223372036854775000"]
