"""The report's docs stay true: every column is documented, the README links only files in
the repository, and its screenshot is there and small."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from audit.cli.app import app
from audit.reports import SCHEMA_HISTORY, SCHEMA_VERSION, SCHEMAS

ROOT = Path(__file__).resolve().parent.parent


def test_every_column_is_documented_in_its_table() -> None:
    text = (ROOT / "docs" / "report.md").read_text()
    for table, schema in SCHEMAS.items():
        section = text.split(f"### {table}\n", 1)[1].split("\n#", 1)[0]
        documented = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
        assert documented == schema.names, table
    for version in SCHEMA_HISTORY:
        assert f"\n| {version} |" in text
    assert max(SCHEMA_HISTORY, key=int) == SCHEMA_VERSION


def test_readme_and_docs_link_only_files_in_the_repository() -> None:
    for doc in (ROOT / "README.md", *(ROOT / "docs").glob("*.md")):
        for target in re.findall(r"\]\(([^)#]+)\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).resolve().is_relative_to(ROOT), (doc, target)
            assert (doc.parent / target).exists(), (doc, target)


def test_readme_shows_the_morning_commands_and_a_small_screenshot() -> None:
    readme = (ROOT / "README.md").read_text()
    for phrase in ("--html", "audit diff", "--last", "docs/report.png"):
        assert phrase in readme, phrase
    assert (ROOT / "docs" / "report.png").stat().st_size < 300_000


def test_diff_has_help_with_its_exit_codes() -> None:
    result = CliRunner().invoke(app, ["diff", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "0 nothing regressed, 1 something did, 2 bad input" in " ".join(result.output.split())
