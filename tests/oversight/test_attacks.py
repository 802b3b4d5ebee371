"""Attacks on audit bundles, as a table: each named, each refused with its own message, or classified as it is.

In the style of python-tuf's ``test_updater_top_level_update.py``: an attack is a name, what the
attacker does to the media (or what the terminal's history did), and the expected verdict.
Anyone can encrypt to the oversight's public key, so an attacker who edits a bundle's contents
simply seals them again: what stops them is the terminal's signature and the hash chain.

- ``REFUSED``: the bundle is refused with a message matching the pattern, the oversight holds
  exactly what it held before (its terminals, keys, bundles, events, figures and findings), and
  the refusal is in the oversight's own audit log.
- ``CLASSIFIED``: bundles imported in order, the last one's outcome and message as expected:
  replays are harmless and change nothing; a gap is quarantined and released when the missing
  bundle comes; a fork, a rolled-back and a rebuilt log are kept as evidence and reported.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from engine import audit
from engine.audit import AuditSigningKey
from engine.audit._encoding import canonical_json
from engine.audit.bundle import BundleRefused, container, dsse_pae, seal, statement
from engine.oversight.imports import import_bundle
from engine.oversight.service import Oversight
from engine.security.users import Session
from tests.oversight.history import World, oversight_state

ATTACKER = AuditSigningKey.generate()
ANOTHER_OVERSIGHT = X25519PrivateKey.generate()


# ---- what an attacker can do to a bundle -------------------------------------------------------------


def reseal(world: World, plaintext: bytes) -> bytes:
    from engine.audit.bundle import load_oversight_public_key

    return seal(plaintext, load_oversight_public_key(world.oversight_public.read_bytes()))


def parts(world: World, name: str) -> tuple[dict[str, Any], dict[str, bytes], dict[str, Any]]:
    """(container, its files, its Statement) of a genuine bundle."""
    body = json.loads(world.plaintext(name))
    files = {k: base64.b64decode(v) for k, v in body["files"].items()}
    stated = json.loads(base64.b64decode(body["envelope"]["payload"]))
    return body, files, stated


def edited_file(name: str, file: str, edit: Callable[[bytes], bytes]) -> Callable[[World], bytes]:
    """A file of the bundle changed; the Statement and its signature left as they were."""

    def attack(world: World) -> bytes:
        body, files, _ = parts(world, name)
        body["files"][file] = base64.b64encode(edit(files[file])).decode()
        return reseal(world, canonical_json(body).encode())

    return attack


def edited_statement(name: str, edit: Callable[[dict[str, Any], dict[str, bytes]], None]) -> Callable[[World], bytes]:
    """The Statement (and files) changed under the terminal's signature, which is kept."""

    def attack(world: World) -> bytes:
        body, files, stated = parts(world, name)
        edit(stated, files)
        body["envelope"]["payload"] = base64.b64encode(canonical_json(stated).encode()).decode()
        body["files"] = {k: base64.b64encode(v).decode() for k, v in files.items()}
        return reseal(world, canonical_json(body).encode())

    return attack


def resigned(
    name: str,
    key: Callable[[World], AuditSigningKey],
    edit: Callable[[dict[str, Any], dict[str, bytes]], None] = lambda predicate, files: None,
    claim_terminal_key: bool = False,
) -> Callable[[World], bytes]:
    """Files and predicate changed, the Statement made again naming them, and signed with ``key``."""

    def attack(world: World) -> bytes:
        _, files, stated = parts(world, name)
        predicate = stated["predicate"]
        edit(predicate, files)
        payload = statement(files, predicate)
        signer = key(world)
        signature = signer.sign(dsse_pae("application/vnd.in-toto+json", payload))
        key_id = terminal_key(world).key_id if claim_terminal_key else signer.key_id
        return reseal(world, container(payload, key_id, signature, files))

    return attack


def terminal_key(world: World) -> AuditSigningKey:
    return AuditSigningKey.read_file(world.terminal_dir.with_name(world.terminal_dir.name + ".audit-key"))


def genuine(name: str) -> Callable[[World], bytes]:
    return lambda world: world.bundles[name].read_bytes()


def change_actor(data: bytes) -> bytes:
    return data.replace(b'"actor":"alice"', b'"actor":"mallory"', 1)


def more_searches(predicate: dict[str, Any], files: dict[str, bytes]) -> None:
    figures = json.loads(files["figures.json"])
    q3 = figures["by_quarter"]["2026Q3"]
    q3["searches"] += 1
    q3["searches_by_use_case"]["identify_unknown_subject"] += 1
    q3["searches_by_age_band"]["adult"] += 1
    files["figures.json"] = canonical_json(figures).encode()


def edit_an_event(predicate: dict[str, Any], files: dict[str, bytes]) -> None:
    files["events.jsonl"] = change_actor(files["events.jsonl"])


def drop_last_event(stated: dict[str, Any], files: dict[str, bytes]) -> None:
    lines = files["events.jsonl"].splitlines(keepends=True)
    files["events.jsonl"] = b"".join(lines[:-1])
    for subject in stated["subject"]:
        subject["digest"]["sha256"] = hashlib.sha256(files[subject["name"]]).hexdigest()


def list_the_attackers_key(predicate: dict[str, Any], files: dict[str, bytes]) -> None:
    heads = json.loads(files["heads.json"])
    public = ATTACKER.public_bytes.hex()
    heads["keys"].append({"key_id": ATTACKER.key_id, "public_key": public, "introduced_seq": 10**6})
    files["heads.json"] = canonical_json(heads).encode()


def claim_another_range(stated: dict[str, Any], files: dict[str, bytes]) -> None:
    stated["predicate"]["exported_by"] = "mallory"


def exported_again(predicate: dict[str, Any], files: dict[str, bytes]) -> None:
    predicate["exported_at"] = "2026-09-29T08:00:00.000000Z"


# ---- the table --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    name: str
    bundle: Callable[[World], bytes]
    message: str
    before: tuple[str, ...] = ()  # genuine bundles imported first


REFUSED = [
    Refused(
        "a file of the bundle altered",
        edited_file("q3", "events.jsonl", change_actor),
        r"events\.jsonl does not match the signed Statement",
    ),
    Refused(
        "the figures altered",
        edited_file("q3", "figures.json", lambda d: d.replace(b'"searches":3', b'"searches":30', 1)),
        r"figures\.json does not match the signed Statement",
    ),
    Refused(
        "the signed Statement altered", edited_statement("q3", claim_another_range), r"DSSE signature does not verify"
    ),
    Refused(
        "a file altered and the Statement's digests made to match",
        edited_statement(
            "q3", lambda s, f: (f.update({"events.jsonl": change_actor(f["events.jsonl"])}), drop_digests(s, f))
        ),
        r"DSSE signature does not verify",
    ),
    Refused(
        "signed by another key, naming it",
        resigned("q3", lambda w: ATTACKER, edit_an_event),
        r"not signed by terminal CUSTODY-01's audit key \(it is signed by key " + ATTACKER.key_id[:16],
    ),
    Refused(
        "signed by another key, naming the terminal's",
        resigned("q3", lambda w: ATTACKER, edit_an_event, claim_terminal_key=True),
        r"DSSE signature does not verify with terminal CUSTODY-01's key",
    ),
    Refused(
        "signed by another key, added to the bundle's list of the terminal's keys",
        resigned("q3", lambda w: ATTACKER, list_the_attackers_key),
        r"signed by key " + ATTACKER.key_id[:16] + r", which the terminal never handed over to",
    ),
    Refused(
        "from a terminal never registered", genuine("unknown"), r"terminal CUSTODY-02, which is not registered here"
    ),
    Refused(
        "encrypted to another oversight key",
        lambda w: seal(w.plaintext("q3"), ANOTHER_OVERSIGHT.public_key()),
        r"encrypted to another oversight key .* not this oversight's",
    ),
    Refused(
        "a truncated file", lambda w: genuine("q3")(w)[:-100], r"does not decrypt: it was truncated, damaged or altered"
    ),
    Refused("a file cut inside its header", lambda w: genuine("q3")(w)[:60], r"the bundle is truncated"),
    Refused("one bit flipped", lambda w: flip(genuine("q3")(w), 5000), r"does not decrypt"),
    Refused("not a bundle at all", lambda w: b"PK\x03\x04" + bytes(500), r"not an rfr audit bundle"),
    Refused(
        "an event edited, signed again with the terminal's own key",
        resigned("q3", terminal_key, edit_an_event),
        r"seq \d+: hash mismatch \(the event was edited",
    ),
    Refused(
        "figures that disagree with the events, signed with the terminal's own key",
        resigned("q3", terminal_key, more_searches),
        r"figures for 2026Q3 disagree with its events: searches 4, but the events show 3",
    ),
    Refused(
        "the last event cut off, the Statement's digests made to match",
        edited_statement("q3", drop_last_event),
        r"DSSE signature does not verify",
    ),
    Refused(
        "the last event cut off, signed again with the terminal's own key",
        resigned("q3", terminal_key, lambda p, f: drop_last_event({"subject": []}, f)),
        r"events\.jsonl holds \d+ events; the Statement says \d+",
    ),
]


def drop_digests(stated: dict[str, Any], files: dict[str, bytes]) -> None:
    for subject in stated["subject"]:
        subject["digest"]["sha256"] = hashlib.sha256(files[subject["name"]]).hexdigest()


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


@pytest.mark.parametrize("attack", REFUSED, ids=[a.name for a in REFUSED])
def test_refused(attack: Refused, world: World, oversight: tuple[Oversight, Session]) -> None:
    ov, olive = oversight
    key = world.private_key()
    for name in attack.before:
        import_bundle(ov, olive, world.bundles[name].read_bytes(), key, source=name)
    data = attack.bundle(world)
    before = oversight_state(ov)
    with pytest.raises(BundleRefused, match=attack.message):
        import_bundle(ov, olive, data, key, source="attack.rfrbundle")
    assert oversight_state(ov) == before
    with ov.ws.reading() as conn:
        last = list(audit.events(conn))[-1]
    assert (last.actor, last.action, last.details["file"]) == ("olive", "oversight.import_refused", "attack.rfrbundle")
    assert last.details["file_sha256"] == hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Classified:
    name: str
    bundles: tuple[str, ...]
    outcome: str
    message: str
    changes: bool = True  # whether the last import changes what the oversight holds


CLASSIFIED = [
    Classified("the same bundle again", ("q3", "q3"), "replay", r"a replay of bundle 1 \(accepted\)", changes=False),
    Classified(
        "the same range exported again (another envelope)",
        ("q3", "q3-again"),
        "replay",
        r"a replay: seq 1 to seq \d+ are already accepted, identical",
        changes=False,
    ),
    Classified("a gap", ("q4",), "quarantined", r"gap: seq 1 to seq \d+ have not arrived"),
    Classified("the missing bundle after a gap", ("q4", "q3"), "accepted", r"accepted: seq 1 to seq \d+"),
    Classified(
        "a fork", ("q3", "q4", "fork"), "fork", r"fork: seq \d+ differs from accepted bundle 2 \(over the same range"
    ),
    Classified(
        "a rolled-back log",
        ("q3", "q4", "rollback"),
        "rollback",
        r"rolled back: seq \d+ differs from accepted bundle 2",
    ),
    # The oversight cannot tell which branch is the terminal's own: when the clone's bundle comes first it is
    # accepted, and the genuine one, written after the clone's was exported, then looks rolled back. Either way
    # the second is kept as evidence and reported, never merged.
    Classified(
        "a clone's bundle seen before the genuine one",
        ("q3", "fork", "q4"),
        "rollback",
        r"rolled back: seq \d+ differs from accepted bundle 2",
    ),
    Classified(
        "a rebuilt log", ("q3", "rebuilt"), "rebuilt", r"rebuilt: terminal CUSTODY-01 now sends the log of another"
    ),
]


@pytest.mark.parametrize("case", CLASSIFIED, ids=[c.name for c in CLASSIFIED])
def test_classified(case: Classified, world: World, oversight: tuple[Oversight, Session]) -> None:
    ov, olive = oversight
    key = world.private_key()
    data = {name: world.bundles[name].read_bytes() for name in world.bundles}
    data["q3-again"] = resigned("q3", terminal_key, exported_again)(world)
    outcomes = []
    for i, name in enumerate(case.bundles):
        if i == len(case.bundles) - 1:
            before = oversight_state(ov)
        outcomes.append(import_bundle(ov, olive, data[name], key, source=name))
    last = outcomes[-1]
    assert last.outcome == case.outcome, last.message
    assert re.search(case.message, last.message), last.message
    assert (oversight_state(ov) != before) == case.changes
    if case.outcome in ("fork", "rollback", "rebuilt"):
        # Kept whole as signed evidence, reported, never merged into the accepted events or figures.
        (status,) = ov.ws.query("SELECT status FROM oversight_bundles WHERE id = ?", (last.bundle_id,))
        assert status == ("evidence",)
        findings = ov.ws.query(
            "SELECT kind, resolved_at FROM oversight_findings WHERE bundle_id = ?", (last.bundle_id,)
        )
        assert findings == [(case.outcome, None)]
        stored = ov.ws.query("SELECT contents FROM oversight_bundles WHERE id = ?", (last.bundle_id,))[0][0]
        assert json.loads(bytes(stored))["envelope"]["signatures"][0]["keyid"] == terminal_key(world).key_id
        after = oversight_state(ov)
        for table in ("oversight_events", "oversight_figures", "oversight_compositions", "oversight_terminal_keys"):
            assert after[table] == before[table], table
    if case.name == "the missing bundle after a gap":
        assert last.released == (outcomes[0].bundle_id,)
        assert ov.ws.query("SELECT status FROM oversight_bundles ORDER BY id") == [("accepted",), ("accepted",)]
