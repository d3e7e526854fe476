"""The employee directory: lookups both ways, phone numbers, encodings, reloading safely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from intaked.config import settings_from_mapping
from intaked.routing.directory import Directory, DirectoryFileError, directory_for, parse_directory, to_e164

HEADER = "name,email,phone,mobile,extension,department,site,manager\n"
MEI = (
    "林美華,Mei.Lin@corp.example.com.tw,02-2345-6789,0912-345-678;+886 922 333 444,"
    "1234,製造部,Tainan,王大明\n"
)
CHEN = "陳志明,chen@corp.example.com.tw,(03) 578-1234,,5678,資訊部,Hsinchu,林美華\n"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, encoding: str = "utf-8", *, bump: int = 0) -> None:
    path.write_bytes(text.encode(encoding))
    if bump:  # make sure the mtime differs even on coarse file systems
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("0912345678", "+886912345678"),
        ("0912-345-678", "+886912345678"),
        ("02-2345-6789", "+886223456789"),
        ("(02) 2345 6789 #123", "+886223456789"),
        ("02-2345-6789 分機 55", "+886223456789"),
        ("+886 912 345 678", "+886912345678"),
        ("886912345678", "+886912345678"),
        ("912345678", "+886912345678"),  # Excel ate the leading zero
        ("+1 (415) 555-0100", "+14155550100"),
        ("0014155550100", "+14155550100"),
        ("０９１２３４５６７８", "+886912345678"),
        ("1234", None),
        ("", None),
        ("n/a", None),
    ],
)
def test_phone_numbers_become_e164(number: str, expected: str | None) -> None:
    assert to_e164(number) == expected


def test_lookups_by_email_and_by_phone(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    write(path, HEADER + MEI + CHEN)
    directory = Directory(path)
    mei = directory.by_email("MEI.LIN@corp.example.com.TW")
    assert mei is not None and mei.name == "林美華"
    assert mei.phones == ("+886223456789", "+886912345678", "+886922333444")
    assert (mei.extension, mei.department, mei.site, mei.manager) == ("1234", "製造部", "Tainan", "王大明")
    for number in ("0922333444", "+886-912-345-678", "(02)2345-6789"):
        found = directory.by_phone(number)
        assert found is not None and found.email == "mei.lin@corp.example.com.tw"
    chen = directory.by_phone("035781234")
    assert chen is not None and chen.email == "chen@corp.example.com.tw"
    assert directory.lookup("chen@corp.example.com.tw") == chen
    assert (
        directory.by_email("nobody@corp.example.com.tw") is None and directory.by_phone("0900000000") is None
    )


def test_utf8_with_bom_and_big5_from_excel(tmp_path: Path) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (HEADER + MEI).encode("utf-8"))
    assert Directory(bom).by_phone("0912345678") is not None
    big5 = tmp_path / "big5.csv"
    write(big5, (HEADER + MEI + CHEN).replace("\n", "\r\n"), "cp950")
    person = Directory(big5).by_email("chen@corp.example.com.tw")
    assert person is not None and (person.name, person.department, person.manager) == (
        "陳志明",
        "資訊部",
        "林美華",
    )


def test_reloaded_when_the_file_changes_at_most_every_reload_seconds(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    write(path, HEADER + MEI)
    clock = Clock()
    directory = Directory(path, reload_seconds=30, clock=clock)
    assert directory.by_email("chen@corp.example.com.tw") is None
    write(path, HEADER + MEI + CHEN, bump=5)
    clock.now = 10
    assert directory.by_email("chen@corp.example.com.tw") is None, "not checked again before 30 s"
    clock.now = 31
    assert directory.by_email("chen@corp.example.com.tw") is not None


def test_a_broken_file_keeps_the_previous_version_and_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "people.csv"
    write(path, HEADER + MEI)
    directory = Directory(path, reload_seconds=0)
    assert directory.by_phone("0912345678") is not None
    write(path, HEADER + CHEN + "王小明,wang@corp.example.com.tw,02-", bump=5)  # half written
    assert directory.by_phone("0912345678") is not None, "the previous version stays in use"
    assert directory.by_email("chen@corp.example.com.tw") is None
    assert (
        directory.last_error is not None and "line 3: 3 fields where the header has 8" in directory.last_error
    )
    write(path, HEADER + CHEN, bump=10)
    assert directory.by_email("chen@corp.example.com.tw") is not None and directory.last_error is None
    assert directory.by_phone("0912345678") is None


def test_missing_file_is_empty_and_warns_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.csv"
    directory = Directory(path, reload_seconds=0)
    assert directory.by_email("a@b.example") is None
    assert directory.by_email("a@b.example") is None
    captured = capsys.readouterr()  # stdout or stderr, as the suite's logging was configured last
    assert (captured.out + captured.err).count("directory_missing") == 1
    write(path, HEADER + MEI)
    assert directory.by_phone("0912345678") is not None, "picked up once it appears"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: the file is empty"),
        ("name,phone\nA,0912345678\n", "line 1: no email column"),
        (HEADER + "A,not-an-address,,,,,,\n", "line 2: 'not-an-address' is not an e-mail address"),
        (HEADER + MEI + "A,a@b.example,12,,,,,\n", "line 3: '12' is not a phone number"),
        (HEADER + 'A,a@b.example,"0912,,,,,\n', "line 2"),
    ],
)
def test_malformed_files_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DirectoryFileError, match=message):
        parse_directory(text)


def test_one_directory_per_settings_object(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    write(path, HEADER + MEI)
    settings = settings_from_mapping({"directory": {"path": str(path), "reload_seconds": 5}}, environ={})
    assert directory_for(settings) is directory_for(settings)
    assert directory_for(settings).reload_seconds == 5
