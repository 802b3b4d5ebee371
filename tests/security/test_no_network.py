"""The terminal reaches no network, writes nothing in the home folder, and starts no child with a secret.

The real console script (``.venv/bin/rfr``) runs each command of ``SCENARIO`` as its own process
under ``strace -f`` (every thread and child followed), with a scratch ``HOME``. A command fails
the test when its trace shows any of:

- an internet socket: ``socket()`` of any family but ``AF_UNIX`` and ``AF_NETLINK`` (both local
  to the machine; glibc asks its name-service cache over ``AF_UNIX`` for user names), or any
  call naming an ``AF_INET``/``AF_INET6`` address (connect, sendto, bind...). An attempt is
  enough, answered or not: a terminal whose network happens to be down would still be trying;
- a host-name lookup: opening ``/etc/resolv.conf`` or ``/etc/hosts`` (where glibc starts one);
- a write under ``HOME`` (``~/intel`` is where OpenVINO's telemetry keeps its client id and
  usage count): opening a file there for writing, or creating, renaming, linking or deleting
  anything there; and ``HOME`` must still be empty at the end;
- a secret handed on: a program started (``execve``) with ``RFR_PASSWORD``, ``RFR_NEW_PASSWORD``
  or ``RFR_PASSPHRASE`` in its environment, or a process forked from the terminal that never
  starts a program (a copy of the terminal holds everything it holds, secrets included, and its
  ``/proc/<pid>/environ`` shows the environment the terminal started with).

CI variables are removed from the commands' environment: OpenVINO's telemetry keeps quiet when
it sees ``CI=true``, and the test must see the terminal as deployed. ``test_the_rules_catch``
shows each rule firing on a trace of what OpenVINO's telemetry did before it was switched off.

When the commands change (``--as`` everywhere, new form fields), edit ``SCENARIO`` only.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

PASSWORDS = {
    "eve": "pw-1 correct horse battery",
    "ed": "pw-0 correct horse battery",
    "alice": "pw-2 correct horse battery",
    "ivan": "pw-3 correct horse battery",
}
FIRST = "a first password an engineer set"  # what an engineer sets; its owner changes it at first use
CHECKS = " ".join(
    f"--check {key} {status} 'Done as the procedure asks, without result'"
    for key, status in (
        ("local_intelligence", "exhausted"),
        ("circulation", "exhausted"),
        ("other_enquiries", "exhausted"),
        ("biometric_identification", "unviable"),
    )
)

# The commands, in order. RFR_PASSWORD is the password of the user after --as; RFR_NEW_PASSWORD
# that of the user added by "user add USER". Placeholders: {photo} (a photograph with faces),
# {work} (a scratch folder for new files), {ws}, {key}, {source} (LFW photographs, one folder per
# subject), {probe} (another photograph of the first subject), and any top-level field of an
# earlier command's JSON output, such as {case} from "case new".
SCENARIO = [
    "faces detect {photo} --json",
    "workspace init {ws} --new-key-file {key} --new-audit-key-file {work}/audit.key --json",
    "user add eve --role engineer --json",
    "user add ed --role engineer --as eve --json",
    "user passwd ed --json",
    "user add alice --role rfr_user --rank Constable --as eve --json",
    "user confirm {request} --as ed --json",
    "user passwd alice --json",
    "user add ivan --role approver --rank Inspector --as eve --json",
    "user confirm {request} --as ed --json",
    "user passwd ivan --json",
    "library create custody --kind substantive --as eve --json",
    "library enroll {source} --library custody --as eve --json",
    "case new --use-case identify_unknown_subject --reference OCC/2025/0001 --offence robbery"
    " --justification 'Identify the robber of a post office; every other line of enquiry is exhausted.'"
    f" {CHECKS} --probe-source police --captured 2025-01-02 --obtained 'From the post office CCTV by PC 1234'"
    " --library custody --age-band adult --probe {probe} --as alice --json",
    "case submit {case} --as alice --json",
    "case approve {case} --reason proportionate --as ivan --json",
    "case search {case} --as alice --json",
]
SUBJECTS = ("Colin_Powell", "Tony_Blair")

SECRETS = ("RFR_PASSWORD", "RFR_NEW_PASSWORD", "RFR_PASSPHRASE")
LOCAL_FAMILIES = {"AF_UNIX", "AF_LOCAL", "AF_NETLINK"}
NAME_LOOKUP_FILES = {"/etc/resolv.conf", "/etc/hosts"}
# "?" lets strace skip a name the architecture lacks (aarch64 has no open, mkdir, rename...).
TRACED = (
    "%network,%process,?open,openat,?creat,?mkdir,mkdirat,?rename,renameat,?renameat2,?link,linkat,"
    "?symlink,symlinkat,?unlink,unlinkat,truncate"
)
WRITE_CALLS = {"creat", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "link", "linkat"}
WRITE_CALLS |= {"symlink", "symlinkat", "unlink", "unlinkat", "truncate"}
PROCESS_CALLS = {"clone", "clone3", "fork", "vfork"}


def violations(trace: str, home: Path) -> list[str]:
    """What one command's ``strace -f -v`` output shows it doing against the rules above."""
    found: list[str] = []
    pending: dict[str, str] = {}
    children: set[str] = set()
    started: set[str] = set()
    first_exec = True
    inside_home = str(home) + "/"
    for line in trace.splitlines():
        pid, _, call = line.strip().partition(" ")
        call = call.strip()
        if call.endswith("<unfinished ...>"):
            pending[pid] = call.removesuffix("<unfinished ...>")
            continue
        if call.startswith("<..."):
            call = pending.pop(pid, "") + call.partition("resumed>")[2]
        name = call.partition("(")[0]
        shown = call.replace(str(home), "~")[:120]
        if name == "socket" and call[7:].split(",")[0].strip() not in LOCAL_FAMILIES:
            found.append(f"opened an internet socket: {shown}")
        elif "sa_family=AF_INET" in call:
            found.append(f"addressed the internet: {shown}")
        elif name in PROCESS_CALLS and "CLONE_THREAD" not in call:
            result = call.rpartition("= ")[2].split()[0]
            if result.isdigit():
                children.add(result)
        elif name in {"execve", "execveat"}:
            started.add(pid)
            leaked = [s for s in SECRETS if f'"{s}=' in call]
            if leaked and not first_exec:  # the first is the command itself, given its secrets
                found.append(f"started a program with {', '.join(leaked)} in its environment: {shown}")
            first_exec = False
        paths = re.findall(r'"((?:[^"\\]|\\.)*)"', call)
        if name in {"open", "openat"} and paths:
            if paths[0] in NAME_LOOKUP_FILES:
                found.append(f"looked up a host name: read {paths[0]}")
            writing = any(flag in call for flag in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"))
            if writing and (paths[0] + "/").startswith(inside_home):
                found.append(f"wrote in the home folder: {shown}")
        elif name in WRITE_CALLS and any((p + "/").startswith(inside_home) for p in paths):
            found.append(f"changed the home folder: {shown}")
    for child in sorted(children - started):
        found.append(f"forked a copy of the terminal (pid {child}) that started no program")
    return found


@pytest.fixture(scope="module")
def strace() -> str:
    path = shutil.which("strace")
    if path is None:
        pytest.fail("strace is not installed: run `make test`, which installs it")
    return path


def rfr_script() -> Path:
    script = Path(sys.executable).parent / "rfr"
    if not script.is_file():
        pytest.fail(f"the console script {script} is missing: run `make setup`")
    return script


def secrets_for(argv: list[str]) -> dict[str, str]:
    """The passwords a command is given: the acting user's; a new user's first one; a changed one."""
    secrets = {}
    if "--as" in argv:
        secrets["RFR_PASSWORD"] = PASSWORDS[argv[argv.index("--as") + 1]]
    if argv[:2] == ["user", "add"]:  # the first engineer sets their own; the second is given a first one
        secrets["RFR_NEW_PASSWORD"] = FIRST if "--as" in argv else PASSWORDS[argv[2]]
    if argv[:2] == ["user", "confirm"]:  # the confirming engineer sets a new account's first password
        secrets["RFR_NEW_PASSWORD"] = FIRST
    if argv[:2] == ["user", "passwd"]:
        secrets |= {"RFR_PASSWORD": FIRST, "RFR_NEW_PASSWORD": PASSWORDS[argv[2]]}
    return secrets


def test_the_terminal_stays_offline(strace: str, tmp_path: Path, data_root: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    for folder in (home, work / "tmp"):
        folder.mkdir(parents=True)
    lfw = data_root / "lfw" / "images"
    for subject in SUBJECTS:
        (work / "source" / subject).mkdir(parents=True)
        for image in sorted((lfw / subject).glob("*.jpg"))[:2]:
            shutil.copy(image, work / "source" / subject / image.name)
    fixed = {
        "photo": str(data_root / "examples" / "face_recognition" / "examples" / "two_people.jpg"),
        "work": str(work),
        "ws": str(work / "ws"),
        "key": str(work / "key"),
        "source": str(work / "source"),
        "probe": str(sorted((lfw / SUBJECTS[0]).glob("*.jpg"))[2]),
    }
    env = {k: v for k, v in os.environ.items() if k not in {*SECRETS, "CI", "TF_BUILD", "JENKINS_URL"}}
    env.update(
        HOME=str(home),
        RFR_WORKSPACE=fixed["ws"],
        RFR_KEY_FILE=fixed["key"],
        RFR_AUDIT_KEY_FILE=str(work / "audit.key"),
        TMPDIR=str(work / "tmp"),
    )
    script = rfr_script()
    learned: dict[str, str] = {}
    problems: list[str] = []
    outputs: dict[str, dict[str, Any]] = {}  # the last output of each command, by its first two words
    for number, line in enumerate(SCENARIO):
        argv = shlex.split(line.format(**learned, **{k: shlex.quote(v) for k, v in fixed.items()}))
        trace = work / f"trace.{number}"
        strace_argv = [strace, "-f", "--seccomp-bpf", "-qq", "-v", "-s", "256", "-e", f"trace={TRACED}", "-o", trace]
        result = subprocess.run(
            [*map(str, strace_argv), str(script), *argv],
            env={**env, **secrets_for(argv)},
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"rfr {line}: {result.stderr.strip()}"
        output = json.loads(result.stdout)
        outputs[" ".join(argv[:2])] = output
        learned |= {k: shlex.quote(str(v)) for k, v in output.items() if isinstance(v, str | int) and k not in fixed}
        problems += [f"rfr {' '.join(argv[:2])}: {p}" for p in violations(trace.read_text(), home)]

    assert problems == [], "\n".join(problems)
    assert [p.name for p in home.rglob("*")] == []
    # The commands did their work: faces found, photographs enrolled, the probe's subject ranked first.
    assert outputs["faces detect"]["images"][0]["faces"]
    assert outputs["library enroll"]["enrolled"] == 2 * len(SUBJECTS)
    assert outputs["case search"]["probes"][0]["candidates"][0]["subject"] == SUBJECTS[0]


SEALING = """
import pyrage
from engine.casework.export import ReportSealing
from engine.media.sealing import MediaKey
key = MediaKey.generate()
assert key.open("blobs/x", key.seal("blobs/x", b"image" * 1000)) == b"image" * 1000
ReportSealing(passphrase="a passphrase of some length").seal(b"<html>report</html>")
ReportSealing((str(pyrage.x25519.Identity.generate().to_public()),)).seal(b"<html>report</html>")
print("sealed")
"""


def test_sealing_match_reports_and_media_stays_offline(strace: str, tmp_path: Path) -> None:
    """The age library (pyrage, native code) and the media seal, traced as the commands are: no socket, no child."""
    home = tmp_path / "home"
    home.mkdir()
    trace = tmp_path / "trace"
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    result = subprocess.run(
        [strace, "-f", "--seccomp-bpf", "-qq", "-v", "-s", "256", "-e", f"trace={TRACED}", "-o", str(trace),
         sys.executable, "-c", SEALING],
        env={**env, "HOME": str(home), "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "sealed", result.stderr
    assert violations(trace.read_text(), home) == []
    assert [p.name for p in home.rglob("*")] == []


# A trace of ``rfr workspace init`` before OpenVINO's telemetry was switched off (6049 is the
# telemetry's sending thread, 6050 the process it forked), with one child started with a secret.
BEFORE = """\
6047  execve("/w/.venv/bin/rfr", ["/w/.venv/bin/rfr", "workspace", "init"], ["RFR_PASSWORD=pw", "HOME=/h"]) = 0
6047  clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, exit_signal=0}, 88) = 6049
6047  mkdir("/h/intel", 0777)           = 0
6047  openat(AT_FDCWD, "/h/intel/stats", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 3
6049  clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>
6047  openat(AT_FDCWD, "/w/engine/__init__.py", O_RDONLY|O_CLOEXEC) = 3
6049  <... clone resumed>, child_tidptr=0x7fdd941ff990) = 6050
6050  openat(AT_FDCWD, "/etc/resolv.conf", O_RDONLY|O_CLOEXEC) = 7
6050  socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 6
6050  connect(6, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0
6047  socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, 0) = 5
6047  connect(5, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory)
6047  vfork()                           = 6051
6051  execve("/usr/bin/ldconfig", ["ldconfig", "-p"], ["HOME=/h", "RFR_PASSPHRASE=x"]) = 0
6050  +++ exited with 1 +++
"""


def test_the_rules_catch() -> None:
    found = violations(BEFORE, Path("/h"))
    assert [f.split(":")[0] for f in found] == [
        "changed the home folder",
        "wrote in the home folder",
        "looked up a host name",
        "opened an internet socket",
        "addressed the internet",
        "started a program with RFR_PASSPHRASE in its environment",
        "forked a copy of the terminal (pid 6050) that started no program",
    ]
    assert found[1] == "wrote in the home folder: " + BEFORE.splitlines()[3].partition("  ")[2].replace("/h", "~")
    assert not any("home folder" in f for f in violations(BEFORE, Path("/elsewhere")))


def test_openvino_telemetry_cannot_load_once_the_engine_is_imported() -> None:
    importlib.import_module("engine")  # first, as in every entry point
    ovc = importlib.import_module("openvino.tools.ovc")  # what "import openvino" imports, and starts telemetry in
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("openvino_telemetry")
    assert type(ovc.telemetry).__module__ == "openvino.tools.ovc.telemetry_stub"


def test_the_engine_refuses_to_load_after_the_telemetry() -> None:
    late = "import sys, types; sys.modules['openvino_telemetry'] = types.ModuleType('x'); import engine"
    result = subprocess.run([sys.executable, "-c", late], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "engine._offline.OfflineError: openvino_telemetry was imported before the engine and may already have "
        "reached the network: import engine before openvino"
    )
