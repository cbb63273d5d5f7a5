"""The adoption policy (``plan/adopt.py``): which evidence it asks for, and its verdicts."""

from __future__ import annotations

import hashlib

import pytest

from mlhub_sync.plan.adopt import Adopt, AskHost, Evidence, HashFile, Replace, Verdict, adopt
from mlhub_sync.plan.decide import Desired, Reason
from mlhub_sync.stac.checksum import ServerMd5

MD5 = hashlib.md5(b"bytes").hexdigest()
SHA256 = hashlib.sha256(b"bytes").hexdigest()
OTHER = "0" * 32


def desired(
    size: int | None = 5, checksum: str | None = None, href: str = "https://h/a"
) -> Desired:
    return Desired("a.tif", href, size, checksum, "c", "i", "k")


HASHED = {"hashed": True, "md5": MD5}
HEAD_OK = {"asked_host": True, "head_size": 5}

# (scenario, desired, checksum mode, reason, recorded md5, evidence, expected verdict)
CASES: list[tuple[str, Desired, str, Reason, str | None, Evidence, type | Verdict]] = [
    ("no file", desired(), "auto", Reason.UNTRACKED, None, Evidence(None), Replace),
    ("the wrong size", desired(size=6), "auto", Reason.UNTRACKED, None, Evidence(5), Replace),
    ("an md5 claim: hash first", desired(checksum="d50110" + MD5), "auto", Reason.UNTRACKED,
     None, Evidence(5), HashFile(None)),
    ("an md5 claim that matches", desired(checksum="d50110" + MD5), "auto", Reason.UNTRACKED,
     None, Evidence(5, **HASHED), Adopt("file:checksum", MD5)),
    ("an md5 claim that does not", desired(checksum="d50110" + OTHER), "auto", Reason.UNTRACKED,
     None, Evidence(5, **HASHED), Replace),
    ("a sha256 claim that matches", desired(checksum="1220" + SHA256), "auto", Reason.UNTRACKED,
     None, Evidence(5, hashed=True, md5=MD5, claimed_digest=SHA256), Adopt("file:checksum", MD5)),
    ("an unusable claim falls through to the host", desired(checksum="zz"), "auto",
     Reason.UNTRACKED, None, Evidence(5), AskHost()),
    ("checksum off ignores the claim", desired(checksum="d50110" + OTHER), "off",
     Reason.UNTRACKED, None, Evidence(5), AskHost()),
    ("touched, still its recorded md5", desired(), "auto", Reason.MODIFIED_LOCALLY, MD5,
     Evidence(5, **HASHED), Adopt("md5", MD5)),
    ("touched, changed", desired(), "auto", Reason.MODIFIED_LOCALLY, OTHER,
     Evidence(5, **HASHED), Replace),
    ("a file: href is copied again", desired(href="file:///x/a.tif"), "auto", Reason.UNTRACKED,
     None, Evidence(5), Replace),
    ("no checksum: ask the host", desired(), "auto", Reason.UNTRACKED, None, Evidence(5),
     AskHost()),
    ("the host did not answer", desired(), "auto", Reason.UNTRACKED, None,
     Evidence(5, asked_host=True), Replace),
    ("the host has another size", desired(size=None), "auto", Reason.UNTRACKED, None,
     Evidence(5, asked_host=True, head_size=6), Replace),
    ("the host vouches for an md5: hash", desired(), "auto", Reason.UNTRACKED, None,
     Evidence(5, asked_host=True, head_size=5, server_md5=ServerMd5(MD5, "content-md5")),
     HashFile()),
    ("the host's md5 matches", desired(), "auto", Reason.UNTRACKED, None,
     Evidence(5, **HASHED, **HEAD_OK, server_md5=ServerMd5(MD5, "s3-etag")),
     Adopt("s3-etag", MD5)),
    ("the host's md5 does not", desired(), "auto", Reason.UNTRACKED, None,
     Evidence(5, **HASHED, **HEAD_OK, server_md5=ServerMd5(OTHER, "s3-etag")), Replace),
    ("required, nothing to check against", desired(), "required", Reason.UNTRACKED, None,
     Evidence(5, **HEAD_OK), Replace),
    ("only the size: hashed anyway, for verify --deep", desired(), "auto", Reason.UNTRACKED,
     None, Evidence(5, **HEAD_OK), HashFile()),
    ("only the size, hashed", desired(), "auto", Reason.UNTRACKED, None,
     Evidence(5, **HASHED, **HEAD_OK), Adopt("size", MD5)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("desired_asset", "mode", "reason", "record_md5", "evidence", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_adoption_asks_for_evidence_then_decides(
    desired_asset: Desired,
    mode: str,
    reason: Reason,
    record_md5: str | None,
    evidence: Evidence,
    expected: type | Verdict,
) -> None:
    verdict = adopt(
        desired_asset, checksum_mode=mode, reason=reason, record_md5=record_md5, evidence=evidence
    )
    if isinstance(expected, type):
        assert isinstance(verdict, expected)
    else:
        assert verdict == expected


def test_a_sha256_claim_asks_for_a_hash_in_its_own_algorithm() -> None:
    verdict = adopt(
        desired(checksum="1220" + SHA256),
        checksum_mode="auto",
        reason=Reason.UNTRACKED,
        record_md5=None,
        evidence=Evidence(5),
    )
    assert isinstance(verdict, HashFile) and verdict.claim is not None
    assert verdict.claim.name == "sha2-256"


CATALOG = {"from_catalog": True}

# The file may be a member of the catalog archive: only a checksum match adopts it.
FROM_CATALOG: list[tuple[str, Desired, str, Evidence, type | Verdict]] = [
    ("the host vouches for the size only", desired(), "auto",
     Evidence(5, **CATALOG, **HASHED, **HEAD_OK), Replace),
    ("... not even hashed yet", desired(), "auto", Evidence(5, **CATALOG, **HEAD_OK), Replace),
    ("the host has no size either", desired(size=None), "auto",
     Evidence(5, **CATALOG, asked_host=True), Replace),
    ("its file:checksum matches", desired(checksum="d50110" + MD5), "auto",
     Evidence(5, **CATALOG, **HASHED), Adopt("file:checksum", MD5)),
    ("its file:checksum does not", desired(checksum="d50110" + OTHER), "auto",
     Evidence(5, **CATALOG, **HASHED), Replace),
    ("the host's md5 matches", desired(), "auto",
     Evidence(5, **CATALOG, **HASHED, **HEAD_OK, server_md5=ServerMd5(MD5, "content-md5")),
     Adopt("content-md5", MD5)),
    ("checksum off: nothing can match", desired(checksum="d50110" + MD5), "off",
     Evidence(5, **CATALOG, **HASHED, **HEAD_OK, server_md5=ServerMd5(MD5, "content-md5")),
     Replace),
]  # fmt: skip


@pytest.mark.parametrize(
    ("desired_asset", "mode", "evidence", "expected"),
    [case[1:] for case in FROM_CATALOG],
    ids=[case[0] for case in FROM_CATALOG],
)
def test_an_archive_member_at_the_path_is_adopted_only_on_a_checksum_match(
    desired_asset: Desired, mode: str, evidence: Evidence, expected: type | Verdict
) -> None:
    verdict = adopt(
        desired_asset, checksum_mode=mode, reason=Reason.UNTRACKED, record_md5=None,
        evidence=evidence,
    )  # fmt: skip
    if isinstance(expected, type):
        assert isinstance(verdict, expected)
    else:
        assert verdict == expected
