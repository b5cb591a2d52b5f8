"""Custom operations with real processes: ``docq work --operation NAME -- CMD ARG...``.

Every worker here is the installed program on a real SQLite file under ``tmp_path``; the
commands it runs are the small scripts in ``tests/helpers_ops/``, which record what they
were given (argv and environment as exact bytes, their pids) in files the tests read.
What is proven: placeholders are replaced inside arguments and never interpreted by a
shell, whatever the file is called; exit codes map to completed, retried and failed;
stdout is capped and drained; the command's process group dies on timeout, cancel, worker
death and once the command has exited; four workers run each item exactly once; the
enqueue checks and the counts are per operation; a shutdown lets a running command finish.

Every wait polls the queue or /proc with a generous deadline; every process a test starts
is killed, with everything it started, when the test ends.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from clirunner import zeros
from conftest import docq_command, run_docq
from workload import (
    Processes,
    WorkerProcess,
    add_files,
    alive,
    counts,
    history,
    item,
    only,
    outcomes,
    rows,
    wait_until,
)

from docq.paths import from_db
from docq.queue import DocumentQueueService

pytestmark = pytest.mark.slow

HELPERS = Path(__file__).resolve().parent / "helpers_ops"
# A worker that is killed holds its items for a short lease, so that the test need not wait
# long for them to come back; a worker that must keep its items holds them for long, so
# that only the behaviour under test (never a stall of a loaded machine) makes it lose one.
VICTIM_LEASE = ("--lease", "2s")
LEASE = ("--lease", "60s")
CANCEL_LEASE = ("--lease", "6s")  # heartbeats, and so cancels, every 2 s
LOOP = ("--loop", "--poll-interval", "0.1s")
USAGE = 2


def helper(script: str, *args: str) -> list[str]:
    """The argv that runs ``tests/helpers_ops/SCRIPT`` with ``args``, for after ``--``."""
    return [sys.executable, str(HELPERS / script), *args]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The working directory of the test's workers (so of their commands too): anything a
    shell would wrongly create lands here, never in the repository."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def start_worker(procs: Processes, db: str, cwd: Path, *args: str) -> WorkerProcess:
    """Start ``docq work ARGS`` on ``db`` in ``cwd``, killed (with its children) when the
    test ends."""
    return procs.spawn([*docq_command(), "work", *args], procs.env(db), cwd=cwd)


def finished(worker: WorkerProcess, code: int = 0, timeout: float = 60) -> dict[str, int]:
    """Wait for a worker to exit with ``code``; its ``--json`` summary."""
    assert worker.wait(timeout) == code, worker.stderr()
    assert "Traceback" not in worker.stderr()
    return worker.summary()


def stop(worker: WorkerProcess, code: int = 0) -> dict[str, int]:
    """Stop a ``--loop`` worker with SIGTERM; its ``--json`` summary."""
    worker.send(signal.SIGTERM)
    return finished(worker, code, timeout=30)


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """The command was refused as a usage error, in one line on stderr naming ``needles``."""
    assert result.returncode == USAGE, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("docq: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""


def snapshot(service: DocumentQueueService) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every queue item and attempt, to show that a refused command changed nothing."""
    return rows(service, "SELECT * FROM queue_items ORDER BY id"), rows(
        service, "SELECT * FROM attempts ORDER BY id"
    )


def show_item(db: str, item_id: int) -> dict[str, Any]:
    """``docq show --item ID --json``."""
    result = run_docq("show", "--item", str(item_id), "--json", db=db)
    assert result.returncode == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def enqueue_json(db: str, *args: str) -> dict[str, Any]:
    """``docq enqueue --json ARGS`` (exit 0)."""
    result = run_docq("enqueue", "--json", *args, db=db)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def write_docs(directory: Path, contents: dict[str, str]) -> dict[str, Path]:
    """Create one file per name with its content; name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, content in contents.items():
        path = directory / name
        path.write_text(content)
        paths[name] = path
    return paths


def pids_of(directory: Path, item_id: int, attempt: int = 1, suffix: str = "pids") -> list[int]:
    """The pids a helper recorded for that attempt (empty until it has)."""
    path = directory / f"{item_id}-{attempt}.{suffix}"
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def wait_for_pids(
    directory: Path, item_id: int, worker: WorkerProcess, attempt: int = 1, suffix: str = "pids"
) -> list[int]:
    """Wait until the command of that attempt has started and recorded its pids."""
    return wait_until(
        lambda: pids_of(directory, item_id, attempt, suffix),
        60,
        f"the command of item {item_id} (attempt {attempt}) to start",
        watch=[worker],
    )


def all_dead(pids: Sequence[int], timeout: float = 10, what: str = "the command") -> None:
    """Wait until none of ``pids`` is alive (a zombie counts as dead)."""
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout, f"{what} {list(pids)} to die")


# --- 1. placeholders, argv and environment ----------------------------------------------------

# (file name, {stem}, {suffix}) as bytes: each would do harm, or break, if split or run by
# a shell. The "commands" only ever create files (never `; reboot`) should one run.
HOSTILE = [
    (b"with space.txt", b"with space", b".txt"),
    (b'it\'s a "quote".txt', b'it\'s a "quote"', b".txt"),
    (b"line\nbreak.txt", b"line\nbreak", b".txt"),
    (b"tab\there.txt", b"tab\there", b".txt"),
    (b" padded .txt", b" padded ", b".txt"),
    (b"$(touch pwned).pdf", b"$(touch pwned)", b".pdf"),
    (b"`touch pwned-backtick`.tar.gz", b"`touch pwned-backtick`.tar", b".gz"),
    (b"; touch pwned-semicolon", b"; touch pwned-semicolon", b""),
    (b"-rf --no-preserve-root", b"-rf --no-preserve-root", b""),
    (b"a|b&c>redirected.txt", b"a|b&c>redirected", b".txt"),
    (b"*.txt", b"*", b".txt"),
    (b"caf\xe9.txt", b"caf\xe9", b".txt"),
    (b"caf\xe9 \\xe9 back\\slash.txt", b"caf\xe9 \\xe9 back\\slash", b".txt"),
    (b"{id}{{x}}{nope}.txt", b"{id}{{x}}{nope}", b".txt"),
    (b".hidden", b".hidden", b""),
]
# What a shell would have created, had one run any of those names.
SHELL_TRACES = {"pwned", "pwned-backtick", "pwned-semicolon", "pwned-dir", "redirected.txt"}


def test_placeholders_reach_the_command_as_exact_bytes_never_through_a_shell(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path
) -> None:
    """Hostile file names (in a hostile directory) arrive byte for byte in every
    placeholder, inside arguments and alone; ``{{``/``}}`` are braces; DOCQ_* variables are
    set; the command leads its own process group; no shell ever ran."""
    directory = os.fsencode(tmp_path / "in dir; $(touch pwned-dir)")
    os.mkdir(directory)
    expected: dict[bytes, tuple[bytes, bytes, bytes, str]] = {}  # path -> name, stem, suffix, sha256
    for n, (name, stem, suffix) in enumerate(HOSTILE):
        path = os.path.join(directory, name)
        content = f"document {n}\n".encode()
        with open(path, "wb") as stream:
            stream.write(content)
        expected[os.fsencode(os.path.realpath(path))] = (
            name,
            stem,
            suffix,
            hashlib.sha256(content).hexdigest(),
        )
    listing = tmp_path / "list.bin"
    listing.write_bytes(b"\0".join(expected))
    report = enqueue_json(db_path, "--operation", "argv", "-0", "--from", str(listing))
    assert report["skipped"] == [] and report["rejected"] == []
    queued = {os.fsencode(from_db(entry["path"])): entry for entry in report["queued"]}
    assert set(queued) == set(expected)

    dumps = tmp_path / "dumps"
    dumps.mkdir()
    template = [
        str(dumps),
        "{path}",
        "--name={name}",
        "{stem}",
        "{suffix}",
        "{sha256}",
        "{id}",
        "{attempt}",
        "{{literal}}",
        "}}{{",
        "{stem}.ocr.pdf",
        "in={path};id={id}",
        "plain",
    ]

    # An unknown placeholder is refused before anything is claimed or run.
    before = snapshot(service)
    refused = run_docq(
        "work", "--operation", "argv", "--", *helper("argv_dump.py", *template, "{nope}"), db=db_path
    )
    one_line_error(refused, "{nope}")
    assert snapshot(service) == before
    assert list(dumps.iterdir()) == []

    worker = start_worker(
        procs, db_path, workdir, "--operation", "argv", "--json", "--", *helper("argv_dump.py", *template)
    )
    assert finished(worker)["completed"] == len(HOSTILE)
    assert counts(service) == only(completed=len(HOSTILE))

    for path, (name, stem, suffix, sha256) in expected.items():
        entry = queued[path]
        dump = json.loads((dumps / f"{entry['item_id']}-1.json").read_text())
        document_id = str(entry["document_id"]).encode()
        assert [bytes.fromhex(argument) for argument in dump["argv"]] == [
            os.fsencode(dumps),
            path,
            b"--name=" + name,
            stem,
            suffix,
            sha256.encode(),
            document_id,
            b"1",
            b"{literal}",
            b"}{",
            stem + b".ocr.pdf",
            b"in=" + path + b";id=" + document_id,
            b"plain",
        ], name
        environment = {key: bytes.fromhex(value) for key, value in dump["env"].items()}
        assert {key: environment.get(key) for key in ("DOCQ_DOCUMENT_ID", "DOCQ_DOCUMENT_PATH")} == {
            "DOCQ_DOCUMENT_ID": document_id,
            "DOCQ_DOCUMENT_PATH": path,
        }
        assert environment.get("DOCQ_ITEM_ID") == str(entry["item_id"]).encode()
        assert environment.get("DOCQ_ATTEMPT") == b"1"
        assert dump["pgid"] == dump["pid"] != worker.pid, "the command leads a process group of its own"
        assert dump["cwd"] == str(workdir)

    traces = [
        os.path.join(root, name)
        for root, dirs, files in os.walk(tmp_path)
        for name in files + dirs
        if name in SHELL_TRACES
    ]
    assert traces == [], "a shell ran a file name"
    assert sorted(os.listdir(workdir)) == []
    shown = show_item(db_path, queued[next(iter(expected))]["item_id"])
    assert shown["output"]["text"] == "dumped\n"


# --- 2. exit codes -------------------------------------------------------------------------


def test_exit_codes_complete_retry_or_fail(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path
) -> None:
    """One worker (``--max-attempts 3 --permanent-exit-codes 3``), one document per case;
    each document's content is the exit codes its attempts give."""
    docs = write_docs(
        tmp_path / "docs",
        {
            "ok.txt": "0",
            "always-1.txt": "1",
            "tempfail.txt": "75 75 0",
            "permanent.txt": "3",
            "two.txt": "2 0",
        },
    )
    report = enqueue_json(db_path, "--operation", "codes", *map(str, docs.values()))
    ids = {Path(entry["path"]).name: entry["item_id"] for entry in report["queued"]}
    command = ["--", *helper("exit_with.py", "@{path}")]

    # 75 means "retry later" whatever the worker is told: the CLI refuses to list it.
    before = snapshot(service)
    one_line_error(
        run_docq("work", "--operation", "codes", "--permanent-exit-codes", "3,75", *command, db=db_path), "75"
    )
    assert snapshot(service) == before

    options = ("--max-attempts", "3", "--retry-delay", "0.1s", "--permanent-exit-codes", "3", "--json")
    worker = start_worker(procs, db_path, workdir, "--operation", "codes", *LOOP, *options, *command)
    wait_until(
        lambda: counts(service) == only(completed=3, failed=2), 60, "every case to settle", watch=[worker]
    )
    summary = stop(worker, code=3)  # some items failed
    assert summary == {
        "processed": 10,
        "completed": 3,
        "failed": 2,
        "retried": 0,  # items waiting for a retry at the end: none (five retries happened on the way)
        "cancelled": 0,
        "discarded": 0,
        "released": 0,
        "items": 5,  # ten attempts at five items; each counted once, by its last attempt
    }

    # Exit 0: stdout is the result, the stderr tail the note.
    ok = show_item(db_path, ids["ok.txt"])
    assert (ok["status"], ok["attempts"], ok["last_error"]) == ("completed", 1, None)
    assert ok["output"] == {
        "text": "result of attempt 1\nsecond line\n",
        "note": "starting attempt 1\nlast words: exit 0",
    }

    # Exit 1 (or 2, not listed): retried after the backoff until attempts run out.
    failing = show_item(db_path, ids["always-1.txt"])
    expected_error = "transient: command exited with code 1: last words: exit 1"
    assert (failing["status"], failing["attempts"], failing["last_error"]) == ("failed", 3, expected_error)
    assert [(a["attempt"], a["outcome"], a["error"]) for a in failing["history"]] == [
        (n, "failed", expected_error) for n in (1, 2, 3)
    ]
    attempts = history(service, ids["always-1.txt"])
    for earlier, later in itertools.pairwise(attempts):
        assert later["started_at"] - earlier["finished_at"] >= 0.1 * 0.75 - 0.01, "retried before its backoff"
    assert outcomes(service, ids["two.txt"]) == ["failed", "completed"]
    assert (
        history(service, ids["two.txt"])[0]["error"]
        == "transient: command exited with code 2: last words: exit 2"
    )

    # Exit 75: transient, retried; here the third attempt succeeds.
    tempfail = show_item(db_path, ids["tempfail.txt"])
    assert (tempfail["status"], tempfail["attempts"]) == ("completed", 3)
    assert [(a["outcome"], a["error"]) for a in tempfail["history"]] == [
        ("failed", "transient: command exited with code 75: last words: exit 75"),
        ("failed", "transient: command exited with code 75: last words: exit 75"),
        ("completed", None),
    ]
    assert tempfail["output"]["text"] == "result of attempt 3\nsecond line\n"

    # A listed permanent code fails at once.
    permanent = show_item(db_path, ids["permanent.txt"])
    error = "permanent: command exited with code 3: last words: exit 3"
    assert (permanent["status"], permanent["attempts"], permanent["last_error"]) == ("failed", 1, error)
    assert [a["outcome"] for a in permanent["history"]] == ["failed"]


def test_a_command_that_cannot_start_fails_at_once(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path
) -> None:
    """A program that does not exist, or is not executable, fails the item for good on
    its first attempt (retrying cannot help), naming the program."""
    ids = add_files(service, tmp_path / "docs", ["a.txt", "b.txt"], operation="broken")
    missing = str(tmp_path / "no-such-tool")
    worker = start_worker(procs, db_path, workdir, "--operation", "broken", "--json", "--", missing, "{path}")
    assert finished(worker, code=3)["failed"] == 2
    for item_id in ids.values():
        row = item(service, item_id)
        assert (row["status"], row["attempts"]) == ("failed", 1)
        assert row["last_error"] == f"permanent: command not found: {missing}"

    not_executable = tmp_path / "not-executable"
    not_executable.write_text("#!/bin/sh\n")
    retried = run_docq("retry", "--all-failed", db=db_path)
    assert retried.returncode == 0, retried.stderr
    worker = start_worker(
        procs, db_path, workdir, "--operation", "broken", "--json", "--", str(not_executable), "{path}"
    )
    assert finished(worker, code=3)["failed"] == 2
    for item_id in ids.values():
        assert item(service, item_id)["last_error"] == f"permanent: command not executable: {not_executable}"


# --- 3. stdout cap -------------------------------------------------------------------------

PIECE = b"o" * 65535 + b"\n"  # what flood.py writes to stdout, over and over


@pytest.mark.parametrize(
    ("cap_options", "cap"),
    [(("--output-cap", "1M"), 1024 * 1024), ((), 1024 * 1024), (("--output-cap", "100K"), 100 * 1024)],
    ids=["1M", "default", "100K"],
)
def test_stdout_is_capped_and_drained(
    db_path: str,
    service: DocumentQueueService,
    procs: Processes,
    workdir: Path,
    tmp_path: Path,
    cap_options: tuple[str, ...],
    cap: int,
) -> None:
    """A command printing 3 MiB (and 100 KiB on stderr) runs to its end and completes;
    exactly the first ``cap`` bytes are kept, and the note (stderr's tail) says so."""
    item_id = add_files(service, tmp_path / "docs", ["big.txt"], operation="flood")["big.txt"]
    done = tmp_path / "flood.done"
    command = helper("flood.py", str(3 * 1024 * 1024), str(100 * 1024), str(done))
    worker = start_worker(
        procs, db_path, workdir, "--operation", "flood", *cap_options, "--json", "--", *command
    )
    assert finished(worker)["completed"] == 1
    assert done.exists(), "the command did not run to its end"

    shown = show_item(db_path, item_id)
    assert shown["status"] == "completed"
    text, note = shown["output"]["text"], shown["output"]["note"]
    assert len(text) == cap
    assert text.encode() == (PIECE * 64)[:cap]
    marker = f"[stdout truncated at {cap} bytes]"
    assert note.endswith("stderr ends here\n" + marker)
    assert len(note) <= 4096 + len(marker) + 1, "the note is stderr's tail, not all of it"


# --- 4. process groups on timeout and exit ------------------------------------------------------


def test_timeout_kills_the_command_and_its_grandchild(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path
) -> None:
    """A command that starts ``sleep 600`` and then hangs: after ``--timeout 1s`` the attempt
    fails as a timeout, and the command and its grandchild are gone."""
    item_id = add_files(service, tmp_path / "docs", ["hang.txt"], operation="hang")["hang.txt"]
    piddir = tmp_path / "pids"
    piddir.mkdir()
    command = helper("spawn_grandchild.py", str(piddir), "hang")
    worker = start_worker(
        procs, db_path, workdir, "--operation", "hang", "--timeout", "1s", "--max-attempts", "1", "--json",
        "--", *command,
    )  # fmt: skip
    pids = wait_for_pids(piddir, item_id, worker)
    assert finished(worker, code=3)["failed"] == 1
    all_dead(pids, what="the timed-out command and its grandchild")
    row = item(service, item_id)
    assert (row["status"], row["attempts"], row["last_error"]) == (
        "failed",
        1,
        "transient: timeout: stopped after 1s",
    )
    [attempt] = history(service, item_id)
    assert attempt["outcome"] == "failed" and 1 <= attempt["seconds"] < 30


def test_a_background_grandchild_dies_when_its_command_exits(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path
) -> None:
    """A command that starts ``sleep 600`` in the background and exits 0: the item
    completes, and the grandchild is killed with the group once the command has exited."""
    item_id = add_files(service, tmp_path / "docs", ["daemon.txt"], operation="daemon")["daemon.txt"]
    piddir = tmp_path / "pids"
    piddir.mkdir()
    command = helper("spawn_grandchild.py", str(piddir), "exit")
    worker = start_worker(procs, db_path, workdir, "--operation", "daemon", "--json", "--", *command)
    assert finished(worker)["completed"] == 1
    command_pid, grandchild = pids_of(piddir, item_id)
    all_dead([command_pid, grandchild], what="the command and its background grandchild")
    assert show_item(db_path, item_id)["output"]["text"] == f"grandchild {grandchild} started\n"


def test_a_grandchild_holding_the_pipes_does_not_keep_the_item_running(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path
) -> None:
    """As above, but the grandchild inherited the command's stdout and stderr (a daemon
    started with ``&`` from a script): the command's exit still completes the item, at once."""
    item_id = add_files(service, tmp_path / "docs", ["daemon.txt"], operation="daemon")["daemon.txt"]
    piddir = tmp_path / "pids"
    piddir.mkdir()
    command = helper("spawn_grandchild.py", str(piddir), "exit-holding-pipes")
    worker = start_worker(
        procs, db_path, workdir, "--operation", "daemon", "--timeout", "4s", "--max-attempts", "1", "--json",
        "--", *command,
    )  # fmt: skip
    command_pid, grandchild = wait_for_pids(piddir, item_id, worker)
    worker.wait(60)
    all_dead([command_pid, grandchild], what="the command and its grandchild")
    row = item(service, item_id)
    assert (row["status"], row["last_error"]) == ("completed", None)
    [attempt] = history(service, item_id)
    assert attempt["seconds"] < 3, "the item ran on after its command had exited"


# --- 5. worker death ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["process-group", "main-pid"])
def test_kill_9_of_the_worker_kills_the_command_and_the_item_is_taken_over(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path, how: str
) -> None:
    """SIGKILL to the worker (its process group, or only its own pid) while its command
    hangs: the command and its grandchild die within seconds; after the 2 s lease a second
    worker takes the item over and completes it."""
    item_id = add_files(service, tmp_path / "docs", ["doc.txt"], operation="grand")["doc.txt"]
    piddir = tmp_path / "pids"
    piddir.mkdir()
    command = ["--", *helper("spawn_grandchild.py", str(piddir), "hang,exit")]
    first = start_worker(procs, db_path, workdir, "--operation", "grand", *VICTIM_LEASE, "--json", *command)
    pids = wait_for_pids(piddir, item_id, first)
    if how == "process-group":
        first.kill_group()
    else:
        first.send(signal.SIGKILL)
    first.wait(10)
    all_dead(pids, timeout=10, what="the dead worker's command and grandchild")
    assert item(service, item_id)["status"] == "in_progress"

    second = start_worker(procs, db_path, workdir, "--operation", "grand", *LOOP, *LEASE, "--json", *command)
    wait_until(lambda: counts(service) == only(completed=1), 60, "the take-over", watch=[second])
    assert stop(second)["completed"] == 1
    assert outcomes(service, item_id) == ["abandoned", "completed"]
    assert item(service, item_id)["attempts"] == 2
    second_attempt = pids_of(piddir, item_id, attempt=2)  # the retry saw DOCQ_ATTEMPT=2
    assert len(second_attempt) == 2
    all_dead(second_attempt, what="the second attempt's command and grandchild")


def test_a_killed_worker_child_takes_its_command_with_it(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path
) -> None:
    """SIGKILL to the worker's child process (the command's parent) while the command
    hangs: the worker kills the command's group, fails the attempt as a crash, starts a
    fresh child and the retry completes."""
    item_id = add_files(service, tmp_path / "docs", ["doc.txt"], operation="grand")["doc.txt"]
    piddir = tmp_path / "pids"
    piddir.mkdir()
    command = ["--", *helper("spawn_grandchild.py", str(piddir), "hang,exit")]
    worker = start_worker(
        procs, db_path, workdir, "--operation", "grand", *LOOP, "--retry-delay", "0.1s", "--json", *command
    )
    pids = wait_for_pids(piddir, item_id, worker)
    child = parent_of(pids[0])
    assert child != worker.pid
    os.kill(child, signal.SIGKILL)
    all_dead(pids, what="the crashed child's command and grandchild")
    wait_until(lambda: counts(service) == only(completed=1), 30, "the retry", watch=[worker])
    assert stop(worker)["completed"] == 1
    attempts = history(service, item_id)
    assert [(a["outcome"], a["error"]) for a in attempts] == [
        ("failed", "transient: worker child crashed: killed by SIGKILL (out of memory?)"),
        ("completed", None),
    ]


def parent_of(pid: int) -> int:
    """The parent process id of ``pid``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


# --- 6. exactly once ---------------------------------------------------------------------------


def test_four_workers_run_each_item_exactly_once(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path
) -> None:
    """500 items, four workers started together: the ledger the command itself writes
    names every item exactly once, and every item has one completed attempt."""
    names = [f"doc-{n:03}.txt" for n in range(500)]
    items = set(add_files(service, tmp_path / "docs", names, operation="ledger").values())
    documents = {
        row["id"]: row["document_id"] for row in rows(service, "SELECT id, document_id FROM queue_items")
    }
    ledger = tmp_path / "ops-ledger.txt"
    command = ["--", *helper("ledger.py", "{id}", str(ledger))]
    workers = [
        start_worker(procs, db_path, workdir, "--operation", "ledger", "--json", *command) for _ in range(4)
    ]
    summaries = [finished(worker, timeout=120) for worker in workers]

    for worker in workers:
        assert "locked" not in worker.stderr().lower(), worker.stderr()
    lines = [line.split() for line in ledger.read_text().splitlines()]
    ran = Counter(int(item_id) for item_id, _document, _pid in lines)
    assert set(ran) == items and set(ran.values()) == {1}, [i for i, n in ran.items() if n > 1]
    assert all(documents[int(item_id)] == int(document) for item_id, document, _pid in lines), "{id} is wrong"
    assert len({pid for _item, _document, pid in lines}) == 500
    assert counts(service) == only(completed=500)
    per_item = rows(
        service,
        "SELECT item_id, count(*) AS n, min(outcome) AS low, max(outcome) AS high "
        "FROM attempts GROUP BY item_id",
    )
    assert len(per_item) == 500 and all(
        (r["n"], r["low"], r["high"]) == (1, "completed", "completed") for r in per_item
    )
    assert sum(summary["completed"] for summary in summaries) == 500
    assert sum(summary["processed"] for summary in summaries) == 500


# --- 7. per-operation rules --------------------------------------------------------------------


def test_enqueue_checks_workers_and_counts_are_per_operation(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path
) -> None:
    """One file queued for ``process`` and ``ocr``: "already queued" and "unchanged" are
    decided per operation, reprocess queues ``ocr`` again, a built-in worker leaves ``ocr``
    alone (and an ``ocr`` worker ``process``), and stats and list count per operation."""
    document = write_docs(tmp_path / "docs", {"scan.txt": "hello scan\n"})["scan.txt"]
    path = str(document)
    process = enqueue_json(db_path, path)["queued"]
    ocr = enqueue_json(db_path, "--operation", "ocr", path)["queued"]
    assert len(process) == len(ocr) == 1
    document_id = process[0]["document_id"]
    assert ocr[0]["document_id"] == document_id and ocr[0]["item_id"] != process[0]["item_id"]
    process_item, ocr_item = process[0]["item_id"], ocr[0]["item_id"]

    def skipped(*args: str) -> str:
        report = enqueue_json(db_path, *args, path)
        assert report["queued"] == [] and len(report["skipped"]) == 1, report
        reason: str = report["skipped"][0]["reason"]
        return reason

    assert skipped("--operation", "ocr") == "already queued"

    # Refused: a custom operation needs its command.
    before = snapshot(service)
    one_line_error(run_docq("work", "--operation", "ocr", db=db_path), "ocr")
    one_line_error(run_docq("work", "--operation", "ocr", "--", db=db_path), "ocr")
    assert snapshot(service) == before

    # The ocr worker runs only ocr; another operation's worker runs neither.
    other = start_worker(
        procs, db_path, workdir, "--operation", "thumb", "--json", "--", *helper("exit_with.py", "0")
    )
    assert finished(other)["processed"] == 0
    ocr_worker = start_worker(
        procs, db_path, workdir, "--operation", "ocr", "--json", "--", *helper("exit_with.py", "0")
    )
    assert finished(ocr_worker)["completed"] == 1
    assert (item(service, ocr_item)["status"], item(service, process_item)["status"]) == (
        "completed",
        "pending",
    )

    assert skipped("--operation", "ocr") == "unchanged"
    assert skipped() == "already queued"
    assert stats(db_path)["by_operation"] == {"process": zeros(pending=1), "ocr": zeros(completed=1)}

    result = run_docq("reprocess", str(document_id), "--operation", "ocr", "--json", db=db_path)
    assert result.returncode == 0, result.stderr
    [change] = json.loads(result.stdout)["changes"]
    assert (change["operation"], change["action"], change["document_id"]) == ("ocr", "queued", document_id)
    ocr_again = change["item_id"]
    assert ocr_again not in (ocr_item, process_item)

    # The built-in worker runs process and leaves the new ocr item waiting, untouched.
    builtin = start_worker(procs, db_path, workdir, "--json")
    assert finished(builtin)["completed"] == 1
    assert item(service, process_item)["status"] == "completed"
    waiting = item(service, ocr_again)
    assert (waiting["status"], waiting["attempts"], history(service, ocr_again)) == ("pending", 0, [])

    assert stats(db_path)["by_operation"] == {
        "process": zeros(completed=1),
        "ocr": zeros(completed=1, pending=1),
    }
    listed = run_docq("list", "--operation", "ocr", "--json", db=db_path)
    assert listed.returncode == 0, listed.stderr
    assert sorted((i["id"], i["operation"], i["status"]) for i in json.loads(listed.stdout)) == [
        (ocr_item, "ocr", "completed"),
        (ocr_again, "ocr", "pending"),
    ]
    plain = run_docq("stats", db=db_path, env=procs.env(db_path))
    assert plain.returncode == 0, plain.stderr
    assert "ocr\t1\t0\t1\t0\t0" in plain.stdout.splitlines(), plain.stdout
    assert "process\t0\t0\t1\t0\t0" in plain.stdout.splitlines(), plain.stdout
    plain_list = run_docq("list", "--operation", "ocr", db=db_path, env=procs.env(db_path))
    assert plain_list.returncode == 0, plain_list.stderr
    body = plain_list.stdout.splitlines()[1:]
    assert len(body) == 2 and all("\tocr\t" in line for line in body), plain_list.stdout

    # Changed content is queued again, for each operation whose last run saw the old one.
    ocr_worker = start_worker(
        procs, db_path, workdir, "--operation", "ocr", "--json", "--", *helper("exit_with.py", "0")
    )
    assert finished(ocr_worker)["completed"] == 1
    assert skipped("--operation", "ocr") == "unchanged"
    assert skipped() == "unchanged"
    document.write_text("hello scan, edited\n")
    assert len(enqueue_json(db_path, "--operation", "ocr", path)["queued"]) == 1
    assert len(enqueue_json(db_path, path)["queued"]) == 1
    assert stats(db_path)["by_operation"] == {
        "process": zeros(completed=1, pending=1),
        "ocr": zeros(completed=2, pending=1),
    }


def stats(db: str) -> dict[str, Any]:
    """``docq stats --json``."""
    result = run_docq("stats", "--json", db=db)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# --- 8. cancel -----------------------------------------------------------------------------


def test_cancel_kills_the_running_command_and_the_worker_carries_on(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path
) -> None:
    """``docq cancel`` of an item whose command (and its grandchild) hangs: both die within
    seconds, the item ends cancelled, and the worker goes on to the next item."""
    docs = write_docs(tmp_path / "docs", {"a-hang.txt": "hang", "b-quick.txt": "exit"})
    report = enqueue_json(db_path, "--operation", "stoppable", *map(str, docs.values()))
    ids = {Path(entry["path"]).name: entry["item_id"] for entry in report["queued"]}
    piddir = tmp_path / "pids"
    piddir.mkdir()
    command = helper("spawn_grandchild.py", str(piddir), "@{path}")
    worker = start_worker(
        procs, db_path, workdir, "--operation", "stoppable", *LOOP, *CANCEL_LEASE, "--json", "--", *command
    )
    pids = wait_for_pids(piddir, ids["a-hang.txt"], worker)

    cancelled = run_docq("cancel", str(ids["a-hang.txt"]), db=db_path)
    assert cancelled.returncode == 0, cancelled.stderr
    all_dead(pids, timeout=15, what="the cancelled command and its grandchild")
    wait_until(lambda: counts(service) == only(cancelled=1, completed=1), 30, "the next item", watch=[worker])
    assert outcomes(service, ids["a-hang.txt"]) == ["cancelled"]
    assert item(service, ids["b-quick.txt"])["status"] == "completed"
    summary = stop(worker)
    assert (summary["cancelled"], summary["completed"], summary["failed"]) == (1, 1, 0)


# --- 9. graceful shutdown --------------------------------------------------------------------


def test_sigterm_lets_the_running_command_finish_and_gives_the_rest_back(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path
) -> None:
    """SIGTERM while a 1 s command runs (``--grace 5s``): it finishes and its item
    completes; the items not started yet go back to pending, their attempts not counted."""
    docs = write_docs(tmp_path / "docs", {"first.txt": "1", "second.txt": "0", "third.txt": "0"})
    report = enqueue_json(db_path, "--operation", "nap", *map(str, docs.values()))
    ids = {Path(entry["path"]).name: entry["item_id"] for entry in report["queued"]}
    piddir = tmp_path / "pids"
    piddir.mkdir()
    command = helper("sleeper.py", str(piddir), "@{path}")
    worker = start_worker(
        procs, db_path, workdir, "--operation", "nap", "--grace", "5s", "--json", "--", *command
    )
    wait_for_pids(piddir, ids["first.txt"], worker, suffix="pid")
    worker.send(signal.SIGTERM)
    summary = finished(worker, timeout=30)
    # The worker claims one item ahead of the running one (so one or two may be given back).
    assert (summary["completed"], summary["failed"]) == (1, 0)
    assert summary["released"] in (1, 2), summary

    first = show_item(db_path, ids["first.txt"])
    assert (first["status"], first["attempts"], first["output"]["text"]) == ("completed", 1, "slept 1\n")
    for name in ("second.txt", "third.txt"):
        row = item(service, ids[name])
        assert (row["status"], row["attempts"]) == ("pending", 0), name
        assert outcomes(service, ids[name]) in ([], ["released"]), name  # given back, or never claimed
        assert pids_of(piddir, ids[name], suffix="pid") == [], f"{name} was started"


def test_a_command_still_running_when_grace_ends_is_killed_and_given_back(
    db_path: str, service: DocumentQueueService, procs: Processes, workdir: Path, tmp_path: Path
) -> None:
    """SIGTERM while a 600 s command runs (``--grace 1s``): once the grace is over the
    command is killed and its item goes back to pending, the attempt not counted."""
    item_id = add_files(service, tmp_path / "docs", ["long.txt"], operation="nap")["long.txt"]
    piddir = tmp_path / "pids"
    piddir.mkdir()
    command = helper("sleeper.py", str(piddir), "600")
    worker = start_worker(
        procs, db_path, workdir, "--operation", "nap", "--grace", "1s", "--json", "--", *command
    )
    pids = wait_for_pids(piddir, item_id, worker, suffix="pid")
    worker.send(signal.SIGTERM)
    summary = finished(worker, timeout=30)
    assert (summary["released"], summary["processed"]) == (1, 0)
    all_dead(pids, what="the command cut off by the end of the grace")
    row = item(service, item_id)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert outcomes(service, item_id) == ["released"]


def test_concurrency_runs_items_side_by_side(db_path: str, tmp_path: Path) -> None:
    """``--concurrency 4`` over four slow items runs all four at once: each command
    records when it ran, and the four intervals overlap."""
    docs = write_docs(tmp_path / "docs", {f"{n}.txt": str(n) for n in range(4)})
    enqueue_json(db_path, "--operation", "nap", *map(str, docs.values()))
    ledger = tmp_path / "intervals"
    record = (
        "import sys, time; start = time.time(); time.sleep(1.5); "
        "open(sys.argv[1], 'a').write('%f %f\\n' % (start, time.time()))"
    )
    result = run_docq(
        "work",
        "--operation",
        "nap",
        "--concurrency",
        "4",
        "--json",
        "--",
        sys.executable,
        "-c",
        record,
        str(ledger),
        db=db_path,
    )
    assert result.returncode == 0, result.stderr
    intervals = [tuple(map(float, line.split())) for line in ledger.read_text().splitlines()]
    assert len(intervals) == 4
    assert max(start for start, _end in intervals) < min(end for _start, end in intervals), intervals


def test_commands_are_not_memory_capped_unless_asked(db_path: str, tmp_path: Path) -> None:
    """A command may need more than the built-in extraction's 1 GiB cap; --memory-limit
    caps it when given."""
    docs = write_docs(tmp_path / "docs", {"big.txt": "x"})
    enqueue_json(db_path, "--operation", "big", str(docs["big.txt"]))
    allocate = [sys.executable, "-c", "x = bytearray(1536 * 1024 * 1024); print(len(x))"]
    uncapped = run_docq("work", "--operation", "big", "--json", "--", *allocate, db=db_path)
    assert uncapped.returncode == 0, uncapped.stderr
    assert json.loads(uncapped.stdout)["completed"] == 1

    run_docq("reprocess", str(docs["big.txt"]), "--operation", "big", db=db_path)
    capped = run_docq(
        "work",
        "--operation",
        "big",
        "--memory-limit",
        "512M",
        "--max-attempts",
        "1",
        "--json",
        "--",
        *allocate,
        db=db_path,
    )
    assert capped.returncode == 3, capped.stderr
    assert "MemoryError" in json.dumps(run_docq("list", "--json", db=db_path).stdout)


def test_commands_do_not_inherit_docqs_settings_or_postgresqls_passwords(
    db_path: str, tmp_path: Path
) -> None:
    """DOCQ_DB may hold a database password and PGPASSWORD is one: a user's command gets the
    worker's environment without them (and without docq's other settings), plus the item's
    DOCQ_* variables; --pass-env passes a name all the same."""
    document = tmp_path / "a.txt"
    document.write_text("a\n", encoding="utf-8")
    enqueue_json(db_path, "--operation", "envdump", str(document))
    from conftest import docq_env

    env = docq_env(
        db_path,
        PGPASSWORD="secret",
        PGUSER="docq",
        DOCQ_LOCK_TIMEOUT="20s",
        DOCQ_GRACE="5s",
        SOMETHING_ELSE="kept",
    )
    dump = "import json, os; print(json.dumps(sorted(os.environ)))"
    result = run_docq(
        "work",
        "--operation",
        "envdump",
        "--pass-env",
        "PGUSER",
        "--json",
        "--",
        sys.executable,
        "-c",
        dump,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    shown = run_docq("show", "--item", "1", "--json", db=db_path)
    names = set(json.loads(json.loads(shown.stdout)["output"]["text"]))
    assert {"SOMETHING_ELSE", "PGUSER", "DOCQ_ITEM_ID", "DOCQ_DOCUMENT_PATH", "DOCQ_ATTEMPT"} <= names
    assert not {"DOCQ_DB", "PGPASSWORD", "DOCQ_LOCK_TIMEOUT", "DOCQ_GRACE"} & names


# --- processes that leave their group -----------------------------------------------------

ESCAPE = """
setsid sh -c 'echo $$ >> "$ESCAPED"; exec sleep 300' </dev/null >/dev/null 2>&1 &
( sh -c 'echo $$ >> "$ESCAPED"; exec sleep 300' </dev/null >/dev/null 2>&1 & ) &
sleep 0.5
case "$DOCQ_DOCUMENT_PATH" in *hang*) sleep 300 ;; esac
echo done
"""


@pytest.mark.parametrize("mode", ["ends", "times-out", "worker-stops"])
def test_processes_a_command_leaves_outside_its_group_die_with_its_item(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path, mode: str
) -> None:
    """A command that starts a new session (setsid) and one that double-forks: both escape
    its process group, and both are killed when the item ends, times out, or its worker
    stops with it still running."""
    name = "hang.txt" if mode != "ends" else "quick.txt"
    item_id = add_files(service, tmp_path / "docs", [name], operation="escape")[name]
    escaped = tmp_path / "escaped.pids"
    options = ("--operation", "escape", "--grace", "1s", "--timeout", "3s" if mode == "times-out" else "60s")
    env = {"ESCAPED": str(escaped)}
    worker = procs.spawn(
        [*docq_command(), "work", *options, "--pass-env", "ESCAPED", "--", "sh", "-c", ESCAPE],
        {**procs.env(db_path), **env},
    )

    pids = wait_until(
        lambda: escaped.exists() and len(found := escaped.read_text().split()) == 2 and found,
        30,
        "both escapes to start",
        watch=[worker],
    )
    if mode == "worker-stops":
        worker.send(signal.SIGTERM)  # with --grace 1s: the item is stopped unfinished
    worker.wait(60)

    for pid in map(int, pids):
        wait_until(lambda pid=pid: not alive(pid), 10, f"escaped process {pid} to be killed")
    row = item(service, item_id)
    if mode == "ends":
        assert row["status"] == "completed"
    elif mode == "times-out":
        assert row["status"] == "pending" and "timeout" in row["last_error"], row
    else:
        assert (row["status"], row["attempts"]) == ("pending", 0), row


def test_the_work_summary_counts_each_item_once_and_adds_up(db_path: str, tmp_path: Path) -> None:
    """An item that fails, is retried and completes within one run counts once, as
    completed; the attempts are counted apart: the parts add up to the items."""
    docs = write_docs(tmp_path / "docs", {"flaky.txt": "x", "steady.txt": "y"})
    enqueue_json(db_path, "--operation", "flaky", *map(str, docs.values()))
    script = 'case "$1" in *flaky*) [ -e "$1.seen" ] && exit 0; touch "$1.seen"; exit 1;; esac'
    args = ("work", "--operation", "flaky", "--retry-delay", "0s", "--retry-max-delay", "0s")
    command = ("--", "sh", "-c", script, "sh", "{path}")

    as_json = run_docq(*args, "--json", *command, db=db_path)
    summary = json.loads(as_json.stdout)
    assert (summary["items"], summary["processed"]) == (2, 3), summary
    assert (summary["completed"], summary["failed"], summary["retried"]) == (2, 0, 0), summary

    (tmp_path / "docs" / "flaky.txt.seen").unlink()
    run_docq("reprocess", "--operation", "flaky", *map(str, docs.values()), db=db_path)
    text = run_docq(*args, *command, db=db_path)
    assert "Processed 2 items in 3 attempts: 2 completed, 0 failed, 0 to retry later." in text.stdout, text
