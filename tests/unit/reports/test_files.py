"""XLSX cells are exact numbers in currency formats; `rating report` end to end on SQLite."""

from __future__ import annotations

import csv
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from reports.export import build_billing_export
from reports.summary import build_summary
from reports.table import Money
from reports.writers import write_xlsx, xlsx_value
from sinks.base import SinkRecord
from sinks.history import open_history_store
from stream.cli import main
from tests.unit.reports.sample import PERIOD, may_rows, may_values


def test_summary_workbook_numbers_formats_and_control(tmp_path: Path) -> None:
    path = tmp_path / "summary.xlsx"
    write_xlsx(build_summary(may_rows(), PERIOD, history_count=7), path)
    sheet = load_workbook(path)["summary 2024-05"]
    rows = list(sheet.iter_rows())
    header = [cell.value for cell in rows[0]]
    usd_total = next(r for r in rows if r[0].value == "total" and r[4].value == "USD")
    jpy_total = next(r for r in rows if r[0].value == "total" and r[4].value == "JPY")
    gross = header.index("gross_amount")
    assert Decimal(str(usd_total[gross].value)) == Decimal("419.00")
    assert usd_total[gross].number_format == "#,##0.00"
    assert usd_total[gross].font.bold
    assert Decimal(str(jpy_total[gross].value)) == Decimal("1100")
    assert jpy_total[gross].number_format == "#,##0"
    texts = [r[0].value for r in rows if isinstance(r[0].value, str)]
    assert "control OK: the grand totals are the revenue to record for 2024-05" in texts
    # In the file itself the numbers are the exact decimals, not float artefacts.
    xml = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode()
    for exact in ("<v>372.5</v>", "<v>46.5</v>", "<v>419</v>", "<v>12.5</v>"):
        assert exact in xml


def test_more_digits_than_excel_keeps_are_written_as_exact_text() -> None:
    assert xlsx_value(Money(Decimal("12345678901234.56"), "USD")) == (
        "12345678901234.56", None)
    assert xlsx_value(Money(Decimal("1234567890123.45"), "USD")) == (
        Decimal("1234567890123.45"), "#,##0.00")
    assert xlsx_value(Money(Decimal("1.234"), "KWD")) == (Decimal("1.234"), "#,##0.000")


def test_export_workbook_keeps_its_table_plain(tmp_path: Path) -> None:
    path = tmp_path / "export.xlsx"
    write_xlsx(build_billing_export(may_rows(), PERIOD), path)
    workbook = load_workbook(path)
    assert workbook.sheetnames == ["charges", "control"]
    assert workbook["charges"].max_row == 8  # header + 7 charges
    assert workbook["control"]["A1"].value == (
        "control OK: billing export layout v1, 2024-05: 7 charges")


@pytest.fixture
def history_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    store = open_history_store(url)
    june = dict(may_values()[0], event_id="june-1", billing_period="2024-06")
    store.write_batch([SinkRecord("usage.rated", 0, n, value)
                       for n, value in enumerate([*may_values(), june])])
    store.close()
    return url


def test_rating_report_writes_each_kind(tmp_path: Path, history_url: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for kind in ("summary", "provider", "export"):
        assert main(["report", kind, "--period", PERIOD, "--history-url", history_url,
                     "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "billing-export-2024-05.csv", "provider-2024-05.csv", "summary-2024-05.csv"]
    printed = capsys.readouterr().out
    assert "control OK: the grand totals are the revenue to record for 2024-05" in printed
    with (out / "billing-export-2024-05.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 7  # June's row is not in May's export
    assert main(["report", "provider", "--period", PERIOD, "--provider", "(platform)",
                 "--history-url", history_url, "--out", str(out / "p.xlsx")]) == 0
    assert load_workbook(out / "p.xlsx").sheetnames == ["(platform)"]
    assert main(["report", "export", "--period", PERIOD, "--provider", "acme",
                 "--format", "xlsx", "--history-url", history_url, "--out", str(out)]) == 0
    assert (out / "billing-export-2024-05-acme.xlsx").is_file()


@pytest.mark.parametrize(("argv", "message"), [
    (["report", "summary", "--period", "2024-5"], "--period must be a month as YYYY-MM"),
    (["report", "summary", "--period", "2024-05", "--provider", "acme"],
     "the summary covers every provider"),
    (["report", "export", "--period", "2024-05", "--out", "/no/such/folder/x.csv"],
     "folder /no/such/folder does not exist"),
    (["report", "export", "--period", "2024-05", "--format", "xlsx", "--out", "x.csv"],
     "--format xlsx but --out x.csv ends in .csv"),
])
def test_report_errors_are_one_sentence_and_exit_2(
        argv: list[str], message: str, history_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--history-url", history_url]) == 2
    assert message in capsys.readouterr().err


def test_a_period_without_rows_is_reported_with_a_warning(
        tmp_path: Path, history_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every control passes on an empty month: a mistyped year must not read as 'all done'."""
    assert main(["report", "summary", "--period", "2042-05", "--history-url", history_url,
                 "--out", str(tmp_path)]) == 0
    assert "no rows at all for 2042-05" in capsys.readouterr().err
    assert main(["report", "summary", "--period", PERIOD, "--history-url", history_url,
                 "--out", str(tmp_path)]) == 0
    assert "warning" not in capsys.readouterr().err
