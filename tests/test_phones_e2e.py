"""A mixed-country export through the real CLI into the real sandbox: phones of IR,
US and GB, with and without +, with extensions, and bad phones left out, not fatal."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.cli_helpers import assert_no_traceback
from tests.e2e import failure_rows, run_cli, summary
from tests.sandbox_helpers import Sandbox

ROWS = [
    # id, phone, expected phoneNumber (None: left out), expected extension
    ("ir-mobile", "0912 112 2333", "09121122333", None),
    ("ir-excel", "9121122333", "09121122333", None),
    ("ir-plus", "+98 912 112 2333", "09121122333", None),
    ("ir-landline", "021 8888 7777", "02188887777", None),
    ("us-bare", "(702) 555-0101", "+17025550101", None),  # not Iranian: never +98...
    ("us-plus-ext", "+1 702 555 0101 x6413", "+17025550101", "6413"),
    ("us-ext", "(702) 555-0101 ext. 12", "+17025550101", "12"),
    ("gb-bare", "07911 123456", "+447911123456", None),
    ("gb-00", "0044 20 7946 0000", "+442079460000", None),
    ("de-plus", "+49 30 123456", "+4930123456", None),  # not listed, but has its +code
    ("ambiguous", "(212) 555-0143", "02125550143", None),  # Tehran and New York: IR first
    ("bad", "call me maybe", None, None),
    ("not-anywhere", "555-0199", None, None),
]

pytestmark = pytest.mark.e2e  # the CLI and the sandbox run as processes

MAPPING = """
user_id: id
fields:
  firstName: name
  phoneNumber: {column: phone, phone_format: national, region: [IR, US, GB],
                extension: phone_ext, on_invalid: drop_field}
hashed:
  hashedPhoneNumber: {from: phoneNumber}
"""


def test_mixed_country_phones_arrive_as_their_own_numbers(sandbox: Sandbox, tmp_path: Path) -> None:
    data = tmp_path / "crm.csv"
    lines = ["id,name,phone"] + [f'{uid},Name {uid},"{phone}"' for uid, phone, _, _ in ROWS]
    data.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")

    result = run_cli(sandbox, tmp_path, data, "-m", mapping)
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr  # no row lost for a decorative field

    for uid, _phone, expected, extension in ROWS:
        stored = sandbox.user(uid)
        assert stored is not None, uid
        profile = stored["profile"]
        assert profile.get("phoneNumber") == expected, uid
        assert profile.get("customAttributes", {}).get("phone_ext") == extension, uid
        if expected is None:
            assert "hashedPhoneNumber" not in profile, uid
        else:
            e164 = "+98" + expected[1:] if expected.startswith("0") else expected
            assert profile["hashedPhoneNumber"] == hashlib.sha256(e164.encode()).hexdigest()

    data_summary = summary(tmp_path)
    assert data_summary["rows_sent"] == len(ROWS) and data_summary["rows_failed"] == 0
    assert data_summary["warnings"] == {
        "phone: numbers valid in IR and US, read as IR": 1,
        "phone: not a phone number; left out of fields.phoneNumber (on_invalid: drop_field)": 1,
        "phone: not a valid phone number in IR or US or GB; left out of fields.phoneNumber "
        "(on_invalid: drop_field)": 1,
    }
    # Nothing hidden: every row kept despite a warning is listed, with its reason.
    listed = failure_rows(tmp_path / "failures.warnings.csv")
    assert data_summary["warnings_path"] == str(tmp_path / "failures.warnings.csv")
    assert [(r["_row"], r["_stage"], r["id"]) for r in listed] == [
        ("11", "warning", "ambiguous"),
        ("12", "warning", "bad"),
        ("13", "warning", "not-anywhere"),
    ]
    assert listed[1]["_error"] == (
        'phone: not a phone number ("call me maybe"); left out (on_invalid: drop_field)'
    )
    assert "Rows kept despite a warning, and why:" in result.stdout
    assert not (tmp_path / "failures.csv").exists()
