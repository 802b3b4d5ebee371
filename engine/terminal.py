"""The terminal: the one object the command line and the application open.

A terminal is a workspace opened with the terminal's own keys (the workspace key file, or a
passphrase an engineer types at boot, and the audit signing key file), the policy in force,
and everything assembled on them: accounts and sessions, casework, the Permitted Image
Reference Libraries, the audit log, and the face engine (loaded once, in the background, the
first time it is wanted). Neither the command line nor the application wires engine packages
itself; both take a ``Terminal``.

People never hold the workspace key: the terminal does. Every action goes through a
signed-in, named user (``sign_in``), checked against their role and rank and recorded in the
audit log; what the terminal does by itself under the policy (the retention sweep) is
recorded as ``system``. The retention sweep runs when the terminal opens and, for a
long-running terminal (the application), every ``retention.sweep_minutes``.

Safe to use from several threads: the workspace serialises database access, sessions have
their own lock, the face engine is loaded once and shared, and the index set locks itself.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import yaml

from engine import audit
from engine.audit.access import AuditAccess, pending_key_path
from engine.audit.export import AuditExport
from engine.casework.export import ReportSealing, read_report_recipients
from engine.casework.monitoring import bundle_figures
from engine.casework.service import Casework, SweepReport
from engine.errors import AuditError, ConfigError, RfrError
from engine.files import read_regular_file
from engine.library.enrol import FaceAnalyzer
from engine.library.service import Libraries
from engine.media.service import Media, installed_models, recover
from engine.policy import Policy, load_default_policy, load_policy
from engine.policy.store import policy_in_force
from engine.security.keys import WorkspaceKey, obtain_key
from engine.security.users import DEFAULT_SCRYPT, Accounts, ScryptParams, Session, User
from engine.workspace import Clock, Workspace, WorkspaceHeader

CONFIG_ENV = "RFR_CONFIG"
DEFAULT_CONFIG_FILE = Path("/etc/rfr/terminal.yaml")
MAX_CONFIG_BYTES = 64 * 1024
_ENV = {
    "workspace": "RFR_WORKSPACE",
    "key_file": "RFR_KEY_FILE",
    "audit_key_file": "RFR_AUDIT_KEY_FILE",
    "device": "RFR_DEVICE",
    "models_dir": "RFR_MODELS",
    "name": "RFR_TERMINAL_NAME",
    "policy_file": "RFR_POLICY",
    "oversight_key_file": "RFR_OVERSIGHT_KEY_FILE",
    "media_key_file": "RFR_MEDIA_KEY_FILE",
    "report_recipients_file": "RFR_REPORT_RECIPIENTS_FILE",
    "force": "RFR_FORCE",
    "groups": "RFR_GROUPS",
}
# The configuration file's keys, and the field each sets.
_FILE_KEYS = {
    "terminal": "name",
    "workspace": "workspace",
    "workspace_key_file": "key_file",
    "audit_key_file": "audit_key_file",
    "device": "device",
    "models": "models_dir",
    "policy": "policy_file",
    "oversight_key_file": "oversight_key_file",
    "media_key_file": "media_key_file",
    "report_recipients_file": "report_recipients_file",
    "force": "force",
    "groups": "groups",
}
_PATHS = {
    "workspace",
    "key_file",
    "audit_key_file",
    "models_dir",
    "policy_file",
    "oversight_key_file",
    "media_key_file",
    "report_recipients_file",
}


@dataclass(frozen=True)
class TerminalConfig:
    """Where a terminal's workspace and keys are, and which device it infers on.

    Resolved from, in order: what the caller gives (command-line options), the environment
    (``RFR_WORKSPACE``, ``RFR_KEY_FILE``, ``RFR_AUDIT_KEY_FILE``, ``RFR_DEVICE``, ``RFR_MODELS``,
    ``RFR_TERMINAL_NAME``, ``RFR_POLICY``, ``RFR_OVERSIGHT_KEY_FILE``, ``RFR_MEDIA_KEY_FILE``,
    ``RFR_REPORT_RECIPIENTS_FILE``), and the configuration file (``RFR_CONFIG``, else
    ``/etc/rfr/terminal.yaml`` when it exists). ``key_file`` None means the workspace opens with a
    passphrase (``RFR_PASSPHRASE`` or a prompt, typed by an engineer at boot). ``force`` and
    ``groups`` (``RFR_FORCE``, ``RFR_GROUPS``) say which packages from the central unit are for this
    terminal: its force, and the terminal groups it belongs to (comma-separated). A terminal with
    no force applies none.
    """

    workspace: Path
    audit_key_file: Path
    key_file: Path | None = None
    device: str = "AUTO"
    models_dir: Path | None = None
    name: str = field(default_factory=platform.node)
    policy_file: Path | None = None
    oversight_key_file: Path | None = None
    """The oversight's X25519 public key (PEM) that audit bundles are encrypted to (``rfr audit export``)."""
    media_key_file: Path | None = None
    """The force's media key, which opens the sealed packages on removable media (``rfr central keys media-key``)."""
    report_recipients_file: Path | None = None
    """The age public keys Match Reports are encrypted to; without it, each export asks for a passphrase."""
    force: str | None = None
    groups: tuple[str, ...] = ()

    @classmethod
    def resolve(
        cls,
        *,
        given: Mapping[str, object] | None = None,
        env: Mapping[str, str] | None = None,
        config_file: Path | None = None,
    ) -> TerminalConfig:
        """The configuration from ``given`` (None values ignored), then the environment, then the file."""
        environ = os.environ if env is None else env
        values: dict[str, object] = {}
        path = config_file or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
        if path is None and DEFAULT_CONFIG_FILE.is_file():
            path = DEFAULT_CONFIG_FILE
        if path is not None:
            values.update(_read_config_file(path))
        for name, variable in _ENV.items():
            if environ.get(variable):
                values[name] = Path(environ[variable]) if name in _PATHS else environ[variable]
        for name, value in (given or {}).items():
            if value is not None:
                values[name] = Path(str(value)) if name in _PATHS else value
        if "workspace" not in values:
            raise ConfigError(
                "no workspace configured: set 'workspace' in the terminal configuration (RFR_CONFIG), "
                "set RFR_WORKSPACE, or pass --workspace DIR"
            )
        if "audit_key_file" not in values:
            raise ConfigError(
                "no audit signing key file configured: set 'audit_key_file' in the terminal configuration, "
                "set RFR_AUDIT_KEY_FILE, or pass --audit-key-file PATH"
            )
        if "force" in values:
            values["force"] = _force(values["force"])
        if "groups" in values:
            values["groups"] = _groups(values["groups"])
        return cls(**values)  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        return {
            "terminal": self.name,
            "workspace": str(self.workspace),
            "workspace_key": "key file" if self.key_file is not None else "passphrase",
            "audit_key_file": str(self.audit_key_file),
            "device": self.device,
            "force": self.force,
            "groups": list(self.groups),
        }


_GROUP = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def _force(value: object) -> str:
    text = str(value).strip()
    if not text or len(text) > 64 or not text.isprintable():
        raise ConfigError("force: give the force's name as the central unit writes it (at most 64 characters)")
    return text


def _groups(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    groups = tuple(dict.fromkeys(str(g).strip() for g in items if str(g).strip()))
    for group in groups:
        if not _GROUP.fullmatch(group):
            raise ConfigError(
                f"groups: {group!r} is not a terminal group name (lowercase letters, digits, '.', '_', '-'); "
                "list them separated by commas"
            )
    return groups


def _read_config_file(path: Path) -> dict[str, object]:
    data = read_regular_file(path, limit=MAX_CONFIG_BYTES, what="terminal configuration", error=ConfigError)
    try:
        parsed = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        raise ConfigError(f"terminal configuration {path} is not valid YAML: fix it or restore it") from None
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise ConfigError(f"terminal configuration {path}: expected a mapping of settings")
    values: dict[str, object] = {}
    for key, value in parsed.items():
        name = _FILE_KEYS.get(str(key))
        if name is None:
            raise ConfigError(
                f"terminal configuration {path}: unknown setting {key!r} (settings: {', '.join(_FILE_KEYS)})"
            )
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"terminal configuration {path}: {key} must be text")
        if name in _PATHS:
            given = Path(value)
            values[name] = given if given.is_absolute() else path.parent / given
        else:
            values[name] = value.strip()
    return values


class FaceProvider:
    """The face engine, loaded once (in the background when asked) and shared by everyone who wants it."""

    def __init__(self, load: Callable[[], FaceAnalyzer], identity: Callable[[], tuple[str, str]]) -> None:
        self._load = load
        self._identity = identity
        self._future: Future[FaceAnalyzer] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Begin loading in a background thread (the application's start-up must not wait for it)."""
        with self._lock:
            if self._future is not None:
                return
            future: Future[FaceAnalyzer] = Future()
            self._future = future

        def run() -> None:
            try:
                future.set_result(self._load())
            except BaseException as exc:  # handed to whoever waits for the engine
                future.set_exception(exc)

        threading.Thread(target=run, name="rfr-face-engine", daemon=True).start()

    def get(self, timeout: float | None = None) -> FaceAnalyzer:
        """The loaded engine (starting the load if nobody has); raises what loading raised."""
        self.start()
        assert self._future is not None
        return self._future.result(timeout)

    @property
    def ready(self) -> bool:
        return self._future is not None and self._future.done() and self._future.exception() is None

    @property
    def problem(self) -> str | None:
        """Why the engine could not be loaded, as one line, or None."""
        if self._future is None or not self._future.done():
            return None
        exc = self._future.exception()
        if exc is None:
            return None
        return exc.diagnostics() if isinstance(exc, RfrError) else f"the face engine failed to load ({exc!r})"

    def identity(self) -> tuple[str, str]:
        """The face model's id and sha256: from the loaded engine, else from its manifest without loading it."""
        if self.ready:
            engine = self.get()
            return engine.model_id, engine.model_sha256
        return self._identity()

    @property
    def device(self) -> str:
        """The inference device actually used, once loaded (what AUTO chose)."""
        if not self.ready:
            return "loading" if self.problem is None else "unavailable"
        engine = self.get()
        used = getattr(engine, "device_used", None)
        return str(used) if used else "CPU"


def _policy_of(config: TerminalConfig, ws: Workspace | None = None) -> Policy:
    """The policy in force: the one a policy package from the central unit set, else the configured file, else
    the default. Once the central unit has set one, a file on the terminal no longer decides."""
    if ws is not None:
        with ws.reading() as conn:
            in_force = policy_in_force(conn)
        if in_force is not None:
            return in_force
    return load_policy(config.policy_file) if config.policy_file is not None else load_default_policy()


def face_provider(config: TerminalConfig) -> FaceProvider:
    """The real face engine on the configured device, verified against the model manifest."""

    def load() -> FaceAnalyzer:
        from engine.faces.pipeline import FaceEngine

        return FaceEngine.open(device=config.device, models_dir=config.models_dir)

    def identity() -> tuple[str, str]:
        from engine.faces.pipeline import model_identity

        return model_identity(config.models_dir)

    return FaceProvider(load, identity)


@dataclass(frozen=True)
class LibrarySize:
    name: str
    kind: str
    subjects: int
    images: int


@dataclass(frozen=True)
class TerminalStatus:
    """What the status bar always shows."""

    terminal: str
    user: str | None
    roles: tuple[str, ...]
    device: str
    face_engine: str
    libraries: tuple[LibrarySize, ...]
    policy_version: str
    free_disk_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "terminal": self.terminal,
            "user": self.user,
            "roles": list(self.roles),
            "device": self.device,
            "face_engine": self.face_engine,
            "libraries": [lib.__dict__ for lib in self.libraries],
            "policy_version": self.policy_version,
            "free_disk_bytes": self.free_disk_bytes,
        }


@dataclass(frozen=True)
class ModelFile:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class SystemStatus:
    """What an engineer checks: software, keys, device, models and their hashes, disk, policy."""

    terminal: str
    software: str
    workspace: str
    workspace_key: str
    audit_key_id: str | None
    device_configured: str
    device_used: str
    face_engine: str
    model_source: str
    model_files: tuple[ModelFile, ...]
    policy_version: str
    policy_sha256: str
    index_profile: str
    disk_free_bytes: int
    disk_total_bytes: int

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["model_files"] = [f.__dict__ for f in self.model_files]
        return out


class Terminal:
    """One open terminal: the workspace, the policy in force, and every service on them."""

    def __init__(
        self, config: TerminalConfig, ws: Workspace, policy: Policy, faces: FaceProvider, scrypt: ScryptParams
    ) -> None:
        self.config = config
        self.ws = ws
        self.policy = policy
        self.faces = faces
        self.accounts = Accounts(ws, policy, scrypt=scrypt)
        self.libraries = Libraries(ws, self.accounts, policy, faces.get, faces.identity)
        self.cases = Casework(ws, self.accounts, policy, faces=faces.get, libraries=self.libraries)
        self.audit = AuditAccess(ws, self.accounts)
        self.media = Media(
            ws,
            self.accounts,
            self.libraries,
            force=config.force,
            groups=config.groups,
            media_key_file=config.media_key_file,
            identity=faces.identity,
            policy=lambda: self.policy,
            adopt_policy=self._adopt_policy,
        )
        self.exports = AuditExport(
            ws,
            self.accounts,
            terminal_name=config.name,
            oversight_key_file=config.oversight_key_file,
            figures=bundle_figures,
        )
        self._sweeper: threading.Thread | None = None
        self._stop = threading.Event()

    # ---- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        config: TerminalConfig,
        *,
        key: WorkspaceKey | None = None,
        faces: FaceProvider | None = None,
        scrypt: ScryptParams = DEFAULT_SCRYPT,
        clock: Clock | None = None,
        sweep: bool = True,
        policy: Policy | None = None,
    ) -> Self:
        """Open the configured terminal with its keys; apply the retention sweep at once (unless ``sweep=False``).

        ``key``: the workspace key when the caller already has it (the application's boot unlock);
        otherwise the key file, or the passphrase from ``RFR_PASSPHRASE`` or a prompt.
        """
        audit_key = audit.AuditSigningKey.read_file(config.audit_key_file)
        if key is None:
            header = WorkspaceHeader.read(config.workspace)
            key = obtain_key(header.kdf, config.key_file)
        try:
            ws = Workspace.open(config.workspace, key, clock=clock, audit_key=audit_key)
        except AuditError:
            # A rotation interrupted after it was recorded leaves the new key beside the old file.
            pending = pending_key_path(config.audit_key_file)
            if not pending.exists():
                raise
            audit_key = audit.AuditSigningKey.read_file(pending)
            ws = Workspace.open(config.workspace, key, clock=clock, audit_key=audit_key)
            os.replace(pending, config.audit_key_file)
        try:
            recover(ws)  # what an interrupted media apply left behind
            models = installed_models(ws)
            if models is not None and config.models_dir is None:
                config = replace(config, models_dir=models)  # the face model a models package installed
            in_force = policy or _policy_of(config, ws)
            terminal = cls(config, ws, in_force, faces or face_provider(config), scrypt)
            if sweep:
                terminal.sweep()
        except BaseException:
            ws.close()
            raise
        return terminal

    @classmethod
    def create(
        cls,
        config: TerminalConfig,
        key: WorkspaceKey,
        *,
        faces: FaceProvider | None = None,
        scrypt: ScryptParams = DEFAULT_SCRYPT,
        clock: Clock | None = None,
        policy: Policy | None = None,
    ) -> Self:
        """Make a new workspace for this terminal and its audit signing key file (which must not exist)."""
        signing = audit.AuditSigningKey.generate()
        signing.write_file(config.audit_key_file)
        try:
            ws = Workspace.create(config.workspace, key, audit_key=signing, clock=clock)
        except BaseException:
            Path(config.audit_key_file).unlink(missing_ok=True)  # a key for nothing is only a liability
            raise
        return cls(config, ws, policy or _policy_of(config), faces or face_provider(config), scrypt)

    def _adopt_policy(self, policy: Policy) -> None:
        """A policy package took effect: from now on every service decides under it (sessions carry on)."""
        self.policy = policy
        for service in (self.accounts, self.libraries, self.cases):
            service._policy = policy

    # ---- people -------------------------------------------------------------------------------

    def sign_in(self, username: str, password: str) -> Session:
        return self.accounts.login(username, password)

    def sign_out(self, session: Session) -> None:
        self.accounts.logout(session)

    def user(self, session: Session) -> User:
        return self.accounts.check(session)

    # ---- Match Reports leave encrypted --------------------------------------------------------

    @property
    def report_needs_passphrase(self) -> bool:
        """True when no recipients are configured for Match Reports: each export is encrypted with a passphrase."""
        return self.config.report_recipients_file is None

    def report_sealing(self, passphrase: str | None = None) -> ReportSealing:
        """How this terminal encrypts a Match Report: to its configured recipients, else with ``passphrase``."""
        if self.config.report_recipients_file is not None:
            return ReportSealing(read_report_recipients(self.config.report_recipients_file))
        return ReportSealing(passphrase=passphrase)

    # ---- the policy, applied by the terminal itself ---------------------------------------------

    def sweep(self) -> SweepReport:
        """Apply retention now: lapsed temporary libraries, expired cases, lapsed account requests."""
        report = self.cases.sweep()
        report.libraries_destroyed.extend(self.libraries.purge_expired())
        report.account_requests_lapsed += self.accounts.lapse_requests()
        return report

    def start_sweeping(self, on_report: Callable[[SweepReport], None] | None = None) -> None:
        """Sweep every ``retention.sweep_minutes`` in a background thread until ``close``."""
        if self._sweeper is not None:
            return
        interval = self.policy.retention.sweep_minutes * 60.0

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    report = self.sweep()
                except RfrError:
                    continue  # the next sweep tries again; each deletion is its own transaction
                if on_report is not None and report.anything:
                    on_report(report)

        self._sweeper = threading.Thread(target=run, name="rfr-retention-sweep", daemon=True)
        self._sweeper.start()

    # ---- what the status bar shows ----------------------------------------------------------------

    def status(self, session: Session | None = None) -> TerminalStatus:
        user = None
        if session is not None and self.accounts.is_signed_in(session):
            user = self.accounts.get_user(session.username)
        sizes = tuple(LibrarySize(*row) for row in self.libraries.sizes())
        try:
            free = shutil.disk_usage(self.ws.directory).free
        except OSError:
            free = -1
        return TerminalStatus(
            terminal=self.config.name,
            user=None if user is None else user.username,
            roles=() if user is None else tuple(sorted(r.label for r in user.roles)),
            device=self.faces.device,
            face_engine="ready" if self.faces.ready else (self.faces.problem or "loading"),
            libraries=sizes,
            policy_version=self.policy.version,
            free_disk_bytes=free,
        )

    def system_status(self, session: Session) -> SystemStatus:
        """Software, keys, device, models and their pinned hashes, disk: for engineers (the look is recorded)."""
        from engine.faces.models import Manifest, models_dir
        from engine.library.index import index_profile, profile_name
        from engine.security.users import Role
        from engine.version import software_version

        user = self.accounts.require_any(session, "reading the system status", Role.ENGINEER)
        directory = self.config.models_dir or models_dir()
        manifest = Manifest.load(directory / "manifest.yaml")
        files = {**manifest.outputs, **manifest.pinned}
        try:
            disk = shutil.disk_usage(self.ws.directory)
            free, total = disk.free, disk.total
        except OSError:
            free = total = -1
        with self.ws.transaction() as conn:
            audit.append(conn, user.username, "terminal.status_view", clock=self.ws.clock)
        return SystemStatus(
            terminal=self.config.name,
            software=software_version(),
            workspace=str(self.ws.directory),
            workspace_key="key file" if self.config.key_file is not None else "passphrase typed at boot",
            audit_key_id=self.ws.audit_key_id,
            device_configured=self.config.device,
            device_used=self.faces.device,
            face_engine="ready" if self.faces.ready else (self.faces.problem or "loading"),
            model_source=manifest.source,
            model_files=tuple(ModelFile(name, d.sha256, d.size) for name, d in sorted(files.items())),
            policy_version=self.policy.version,
            policy_sha256=self.policy.sha256,
            index_profile=profile_name(index_profile()),
            disk_free_bytes=free,
            disk_total_bytes=total,
        )

    # ---- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        self.ws.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "CONFIG_ENV",
    "FaceProvider",
    "LibrarySize",
    "Terminal",
    "TerminalConfig",
    "TerminalStatus",
    "face_provider",
]
