"""`snapline rebuild --help` says what the command does; a service it does not know is refused."""

from __future__ import annotations

import pytest

from snapline_cli.main import build_parser


def test_help_names_the_tables_the_group_and_the_checksum(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["rebuild", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("{query,analytics}", "offset 0", "<group>-rebuild-<UTC time>", "swap lock", "checksum",
                  "plays, games", "stat_totals"):  # fmt: skip
        assert words in text, words


def test_an_unknown_service_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["rebuild", "gateway"])
    assert done.value.code == 2
    assert "invalid choice: 'gateway'" in capsys.readouterr().err
