"""``rfr central ...``: the central unit's commands: signing keys, enrolment on Dask, package build and sign.

These run on the central unit's own machines, never on a terminal: ``engine.central`` (and Dask) is
imported inside the handlers only, so the terminal's command line never loads them. Passphrases
come from the environment (``RFR_CENTRAL_PASSPHRASE``; root key ``i``: ``RFR_CENTRAL_ROOT_PASSPHRASE_i``),
taken out of it before anything else runs (no Dask worker process inherits them), or a prompt;
never from argv.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from pathlib import Path
from typing import Any

from engine.cli import emit
from engine.errors import UsageError
from engine.security.environment import take_all, take_secret

PASSPHRASE_ENV = "RFR_CENTRAL_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)
ROOT_PASSPHRASE_ENV = "RFR_CENTRAL_ROOT_PASSPHRASE_"  # noqa: S105 (a prefix: _1, _2 ... per root key)


def register(sub: Any) -> None:
    parser = sub.add_parser("central", help="the central unit: signing keys, enrolment on Dask, packages for media")
    commands = parser.add_subparsers(dest="central_command", metavar="COMMAND", required=True)

    keys = commands.add_parser("keys", help="the TUF role keys").add_subparsers(
        dest="keys_command", metavar="COMMAND", required=True
    )
    init = keys.add_parser(
        "init",
        help="make every role's key, the public keys file and root metadata version 1",
        description=(
            "Makes Ed25519 keys for root (K of N, each with its own passphrase: RFR_CENTRAL_ROOT_PASSPHRASE_i or "
            "a prompt), timestamp, snapshot, targets, library, accounts and models (the central passphrase: "
            "RFR_CENTRAL_PASSPHRASE or a prompt), each in a passphrase-encrypted PKCS#8 PEM file (0600); "
            "public-keys.json; and 1.root.json, which terminals pin ('rfr media trust'). Move the root keys "
            "offline, each to the person who holds it."
        ),
    )
    init.add_argument("directory", metavar="DIR", type=Path, help="a new folder for the keys")
    init.add_argument("--root-threshold", type=int, default=1, metavar="K", help="root signatures needed (default 1)")
    init.add_argument("--root-keys", type=int, default=1, metavar="N", help="root keys made (default 1)")
    init.add_argument("--root-expires-days", type=int, default=365, metavar="DAYS", help="root expiry (default 365)")
    init.add_argument("--json", action="store_true", help="machine-readable output")
    init.set_defaults(handler=_keys_init)

    renew = keys.add_parser(
        "renew-root",
        help="sign the next root version with a new expiry (same keys; needs a threshold of root keys)",
    )
    renew.add_argument("--keys", required=True, type=Path, metavar="DIR", help="the keys folder")
    renew.add_argument("--repo", required=True, type=Path, metavar="REPO", help="the central repository")
    renew.add_argument("--root-key", action="append", type=Path, default=[], metavar="FILE", help="a root key file")
    renew.add_argument("--expires-days", type=int, default=365, metavar="DAYS", help="root expiry (default 365)")
    renew.add_argument("--json", action="store_true", help="machine-readable output")
    renew.set_defaults(handler=_renew_root)

    media_key = keys.add_parser(
        "media-key",
        help="write the force's media key file for its terminals (their 'media_key_file')",
        description=(
            "Every target on the media is sealed with the force's media key (made by 'keys init', kept in the keys "
            "folder under the central passphrase). Terminals open packages with it: write it to a new file (0600) "
            "and install that file on each of the force's terminals, readable by the rfr service account only, "
            "as their 'media_key_file' (RFR_MEDIA_KEY_FILE). Carry it apart from the media."
        ),
    )
    media_key.add_argument("--keys", required=True, type=Path, metavar="DIR", help="the keys folder")
    media_key.add_argument("--out", required=True, type=Path, metavar="FILE", help="a new file for the media key")
    media_key.add_argument("--json", action="store_true", help="machine-readable output")
    media_key.set_defaults(handler=_media_key)

    enrol = commands.add_parser(
        "enrol",
        help="templates for a manifest of custody images, on a Dask cluster (restartable)",
        description=(
            "MANIFEST is a CSV with the terminal's enrolment metadata columns: subject, image (the image's path, "
            "relative to the CSV's folder or absolute), sex, ic_code, date_of_birth, capture_date, age_range, "
            "source. Runs on a local Dask cluster (--workers processes) or on --scheduler ADDRESS; the output "
            "folder is sealed with a key from the central passphrase. Run the same command again after a failure: "
            "finished batches are kept and never computed again."
        ),
    )
    enrol.add_argument("--manifest", required=True, type=Path, metavar="FILE.csv")
    enrol.add_argument("--out", required=True, type=Path, metavar="DIR", help="the output folder (new, or to resume)")
    enrol.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler (tcp://host:8786, tls://...)")
    enrol.add_argument("--workers", type=int, default=None, metavar="N", help="local worker processes (default: cores)")
    enrol.add_argument("--threads-per-worker", type=int, default=1, metavar="T", help="threads per local worker")
    enrol.add_argument("--batch-size", type=int, metavar="B", help="images per task (default 32; kept on resuming)")
    enrol.add_argument(
        "--upsample", type=int, choices=range(0, 3), help="detector upsampling to start at (0; kept on resuming)"
    )
    enrol.add_argument("--models", type=Path, metavar="DIR", help="the models folder (default RFR_MODELS or models/)")
    enrol.add_argument("--device", default="CPU", help="inference device on the workers (default CPU)")
    enrol.add_argument("--json", action="store_true", help="machine-readable output")
    enrol.set_defaults(handler=_enrol)

    package = commands.add_parser("package", help="build and sign packages").add_subparsers(
        dest="package_command", metavar="COMMAND", required=True
    )
    build = package.add_parser(
        "build",
        help="build a library, accounts, policy or models package into the repository (signed by 'sign')",
    )
    build.add_argument("--repo", required=True, type=Path, metavar="REPO", help="the central repository folder")
    build.add_argument(
        "--keys", required=True, type=Path, metavar="DIR", help="the keys folder (its media key seals the package)"
    )
    build.add_argument("--kind", required=True, choices=("library", "accounts", "policy", "models"))
    build.add_argument("--force", required=True, metavar="FORCE", help="the force the package is for")
    build.add_argument(
        "--group", action="append", required=True, metavar="GROUP", help="terminal group ('*': all; repeatable)"
    )
    build.add_argument("--sequence", type=int, metavar="N", help="check the sequence (default: the next of its stream)")
    build.add_argument("--description", default="", help="what the package is for")
    build.add_argument("--library", metavar="NAME", help="library: its name (stream library:NAME)")
    build.add_argument("--library-kind", choices=("substantive", "temporary"), default="substantive")
    build.add_argument("--authorisation", metavar="REF", help="library: a temporary library's authorisation")
    build.add_argument("--expires", metavar="DATE", help="library: a temporary library's expiry (YYYY-MM-DD)")
    build.add_argument("--library-description", default="", help="library: what the library holds")
    build.add_argument("--enrolment", type=Path, metavar="DIR", help="library: an enrolment output (additions)")
    build.add_argument("--remove", type=Path, metavar="FILE", help="library: subject references to weed, one a line")
    build.add_argument("--users", type=Path, metavar="FILE", help="accounts: users and role changes (CSV or YAML)")
    build.add_argument(
        "--first-passwords-out", type=Path, metavar="FILE", help="accounts: a new file (0600) for first passwords"
    )
    build.add_argument("--policy", type=Path, metavar="FILE", help="policy: the policy YAML")
    build.add_argument("--models", type=Path, metavar="DIR", help="models: a built models folder")
    build.add_argument("--json", action="store_true", help="machine-readable output")
    build.set_defaults(handler=_build)

    sign = package.add_parser(
        "sign",
        help="sign every built package into the repository's TUF metadata (then copy rfr-packages/ to the media)",
    )
    sign.add_argument("--repo", required=True, type=Path, metavar="REPO")
    sign.add_argument("--keys", required=True, type=Path, metavar="DIR", help="the keys folder")
    sign.add_argument("--timestamp-days", type=int, default=30, metavar="DAYS", help="timestamp expiry (default 30)")
    sign.add_argument("--snapshot-days", type=int, default=60, metavar="DAYS", help="snapshot expiry (default 60)")
    sign.add_argument(
        "--delegated-days", type=int, default=180, metavar="DAYS", help="library/accounts/models expiry (default 180)"
    )
    sign.add_argument("--targets-days", type=int, default=365, metavar="DAYS", help="top-level targets (default 365)")
    sign.add_argument("--json", action="store_true", help="machine-readable output")
    sign.set_defaults(handler=_sign)


# Passphrases


def _take_central_secrets() -> None:
    """Every central passphrase out of the environment now, before anything can start a process."""
    names = tuple(n for n in os.environ if n == PASSPHRASE_ENV or n.startswith(ROOT_PASSPHRASE_ENV))
    take_all(names)


def _ask(env_name: str, what: str, *, confirm: bool) -> str:
    value = take_secret(env_name)
    if value is None:
        if not sys.stdin.isatty():
            raise UsageError(f"no {what}: set {env_name}, or run from a terminal to be asked")
        value = getpass.getpass(f"{what[0].upper()}{what[1:]}: ")
        if confirm and getpass.getpass("Repeat it: ") != value:
            raise UsageError(f"the two entries of the {what} differ: nothing was made")
    if not value:
        raise UsageError(f"the {what} is empty (set {env_name} or type it when asked)")
    return value


class _Passphrase:
    """The central passphrase, asked once per command and only if needed."""

    def __init__(self, *, confirm: bool = False) -> None:
        self._value: str | None = None
        self._confirm = confirm

    def __call__(self) -> str:
        if self._value is None:
            self._value = _ask(PASSPHRASE_ENV, "central passphrase", confirm=self._confirm)
        return self._value


def _root_passphrase(number: int, path: Path | None = None, *, confirm: bool = False) -> str:
    where = f" ({path})" if path is not None else ""
    return _ask(f"{ROOT_PASSPHRASE_ENV}{number}", f"passphrase of root key {number}{where}", confirm=confirm)


# Handlers


def _keys_init(args: argparse.Namespace) -> int:
    _take_central_secrets()
    from engine.central.keys import MAX_ROOT_KEYS, init_keys

    if not 1 <= args.root_keys <= MAX_ROOT_KEYS:
        raise UsageError(f"--root-keys must be between 1 and {MAX_ROOT_KEYS}")
    if not 1 <= args.root_threshold <= args.root_keys:
        raise UsageError("--root-threshold must be between 1 and --root-keys")
    passphrase = _Passphrase(confirm=True)()
    roots = [_root_passphrase(i, confirm=True) for i in range(1, args.root_keys + 1)]
    made = init_keys(
        args.directory, passphrase, roots, root_threshold=args.root_threshold, root_days=args.root_expires_days
    )
    lines = [f"Keys made in {made.directory} (each file 0600, encrypted with its passphrase)."]
    for role, keys in made.public.keys.items():
        lines += [f"  {role:<9} {k.keyid}" for k in keys]
    lines += [
        f"Root: {made.public.root_threshold} of {len(made.public.keys['root'])} root keys; expires "
        f"{made.root_expires:%Y-%m-%d}.",
        f"Give terminals {made.root_file} ('rfr media trust'); move each root key offline to its holder.",
        f"Media key {made.media_key_id} (sealed in the keys folder): write its terminal file with "
        "'rfr central keys media-key'.",
    ]
    emit(args, made.to_json(), "\n".join(lines))
    return 0


def _key_ring(args: argparse.Namespace) -> Any:
    from engine.central.keys import KeyRing

    return KeyRing(args.keys, _Passphrase(), _root_passphrase, getattr(args, "root_key", ()) or ())


def _media_key(args: argparse.Namespace) -> int:
    _take_central_secrets()
    from engine.central.keys import export_media_key

    key = export_media_key(args.keys, _Passphrase()(), args.out)
    text = (
        f"Media key {key.key_id} written to {args.out} (0600). Install it on each of the force's terminals as "
        "their 'media_key_file', readable by the rfr service account only; carry it apart from the media."
    )
    emit(args, {"media_key_id": key.key_id, "out": str(args.out)}, text)
    return 0


def _renew_root(args: argparse.Namespace) -> int:
    _take_central_secrets()
    from engine.central.repository import Repository

    root = Repository.open(args.repo).renew_root(_key_ring(args), args.expires_days)
    signed = root.signed
    payload = {"version": signed.version, "expires": signed.expires.isoformat().replace("+00:00", "Z")}
    emit(args, payload, f"Root version {signed.version} signed; expires {signed.expires:%Y-%m-%d}.")
    return 0


def _enrol(args: argparse.Namespace) -> int:
    _take_central_secrets()
    from engine.central.enrol import CentralProgress, enrol

    passphrase = _Passphrase()()
    workers = args.workers if args.workers is not None else max(1, os.cpu_count() or 1)
    last = [0.0]

    def progress(p: CentralProgress) -> None:
        now = time.monotonic()
        if now - last[0] >= 5.0 or p.done == p.total:
            last[0] = now
            sys.stderr.write(
                f"enrolment: {p.done:,}/{p.total:,} images done ({p.enrolled:,} enrolled, {p.skipped:,} skipped "
                f"this run; {p.images_per_second:.1f} images/s)\n"
            )
            sys.stderr.flush()

    summary = enrol(
        args.manifest,
        args.out,
        passphrase,
        scheduler=args.scheduler,
        workers=workers,
        threads_per_worker=args.threads_per_worker,
        batch_size=args.batch_size,
        upsample=args.upsample,
        models_dir=args.models,
        device=args.device,
        progress=progress,
    )
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.skipped_by_reason.items())) or "none"
    chosen = [
        f"{n:,} {words}"
        for n, words in (
            (summary.chose_dominant_face, "with the dominant face of several"),
            (summary.face_named_by_person, "with the face the manifest names"),
        )
        if n
    ]
    text = (
        f"Enrolment {summary.output}: {summary.enrolled:,} of {summary.rows:,} images enrolled"
        + (f" ({', '.join(chosen)})" if chosen else "")
        + f"; skipped: {skipped}.\n"
        f"This run: {summary.computed:,} computed, {summary.resumed:,} already done; {summary.seconds:.1f} s"
        + (f" on {summary.workers} worker(s), {summary.threads} thread(s)." if summary.workers else ".")
    )
    emit(args, summary.to_json(), text)
    return 0


def _need(args: argparse.Namespace, kind: str, *names: str) -> None:
    for name in names:
        if getattr(args, name) is None:
            raise UsageError(f"a {kind} package needs --{name.replace('_', '-')}")


def _build(args: argparse.Namespace) -> int:
    _take_central_secrets()
    from engine.central import packages
    from engine.central.keys import KeyRing
    from engine.central.repository import Repository

    target = packages.Target(args.force, tuple(args.group), args.description)
    passphrase = _Passphrase()
    media_key = KeyRing(args.keys, passphrase).media_key()
    repo = Repository.create_or_open(args.repo)
    if args.kind == "library":
        _need(args, "library", "library")
        if args.enrolment is None and args.remove is None:
            raise UsageError("a library package needs --enrolment DIR (additions), --remove FILE (weeding), or both")
        temporary = args.library_kind == "temporary"
        if temporary != (args.authorisation is not None and args.expires is not None):
            raise UsageError("a temporary library needs --authorisation and --expires; a substantive one neither")
        library = packages.LibraryTarget(
            args.library,
            args.library_kind,
            args.authorisation,
            packages.parse_expiry_date(args.expires) if args.expires else None,
            args.library_description,
        )
        removals = packages.read_removals(args.remove) if args.remove is not None else []
        built = packages.build_library(
            repo,
            target,
            library,
            media_key=media_key,
            enrolment=args.enrolment,
            passphrase=passphrase,
            removals=removals,
            sequence=args.sequence,
        )
    elif args.kind == "accounts":
        _need(args, "accounts", "users")
        changes, removals = packages.read_accounts(args.users)
        built = packages.build_accounts(
            repo,
            target,
            changes,
            removals,
            media_key=media_key,
            passwords_out=args.first_passwords_out,
            sequence=args.sequence,
        )
    elif args.kind == "policy":
        _need(args, "policy", "policy")
        built = packages.build_policy(repo, target, args.policy, media_key=media_key, sequence=args.sequence)
    else:
        _need(args, "models", "models")
        built = packages.build_models(repo, target, args.models, media_key=media_key, sequence=args.sequence)
    details = ", ".join(f"{k} {v}" for k, v in built.summary.items() if not isinstance(v, dict))
    text = (
        f"Built {built.kind} package {built.sequence} of stream {built.stream} ({built.blobs} blobs, "
        f"{built.bytes:,} bytes; {details}). Sign it with 'rfr central package sign'."
    )
    emit(args, built.to_json(), text)
    return 0


def _sign(args: argparse.Namespace) -> int:
    _take_central_secrets()
    from engine.central.repository import Expiry, Repository

    expiry = Expiry(args.timestamp_days, args.snapshot_days, args.delegated_days, args.targets_days)
    report = Repository.open(args.repo).sign(_key_ring(args), expiry)
    signed = ", ".join(report.packages) or "no new package (metadata renewed)"
    text = (
        f"Signed: {signed}.\nSnapshot {report.versions['snapshot']}, timestamp {report.versions['timestamp']} "
        f"(issued {report.issued_at}, expires {report.expires['timestamp']}).\n"
        f"Copy {report.media_folder} to the media as it is."
    )
    emit(args, report.to_json(), text)
    return 0
