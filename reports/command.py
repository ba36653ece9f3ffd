"""``rating report summary|provider|export --period YYYY-MM``: read the history, write a file.

The handler parses nothing itself (stream/cli.py does) and does no arithmetic:
it opens the billing history, hands the period's rows to a builder and the
result to a writer, prints where the file went and the control lines, and
fails (exit 2, one sentence) when the summary's control check does not pass, or
when ``--provider`` names a provider without rows in the period (no file then).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from reports.export import build_billing_export
from reports.provider import build_provider_statements
from reports.summary import build_summary
from reports.table import PLATFORM, Report, ReportError, provider_label
from reports.writers import control_text, write_csv, write_xlsx
from sinks.history import HistoryFilter, open_history_store
from sinks.history.model import BillingHistoryStore
from stream.settings import load_settings

KINDS = ("summary", "provider", "export")
FORMATS = ("csv", "xlsx")
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def add_report_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser(
        "report", help="monthly reports from the billing history: summary (control report), "
        "provider (statements at net), export (BRM billing export at gross)")
    report.add_argument("kind", choices=KINDS)
    report.add_argument("--period", required=True, help="billing period, YYYY-MM")
    report.add_argument("--provider", default=None,
                        help=f"only this provider (provider and export; {PLATFORM} = the "
                        "platform's own services)")
    report.add_argument("--format", choices=FORMATS, default=None,
                        help="csv or xlsx (default: from --out's extension, else csv)")
    report.add_argument("--out", type=Path, default=None,
                        help="file, or existing folder for the default name "
                        "(<kind>-<period>[-<provider>].<format>)")
    report.add_argument("--history-url", default=None,
                        help="billing-history store (default: sinks.history_url, "
                        "RATING_HISTORY_URL)")
    report.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace) -> int:
    period = parse_period(args.period)
    if args.kind == "summary" and args.provider is not None:
        raise ReportError("the summary covers every provider (it is the control report of the "
                          "month): drop --provider, or use the provider report")
    file_format = args.format or _format_of(args.out)
    _require_matching_suffix(file_format, args.out)
    path = output_path(args.kind, period, args.provider, file_format, args.out)
    url = args.history_url or load_settings(args.settings).sinks.history_url
    store = open_history_store(url, must_exist=True)
    try:
        report = build_report(store, args.kind, period, args.provider)
        period_rows = store.count(HistoryFilter(billing_period=period))
        if file_format == "xlsx":
            controls = write_xlsx(report, path)
        else:
            with path.open("w", newline="", encoding="utf-8") as out:
                controls = write_csv(report, out)
    except OSError as exc:
        raise ReportError(f"--out {path}: cannot write the report: "
                          f"{exc.strerror or exc}") from None
    finally:
        store.close()
    print(f"wrote {path}")
    if not period_rows:
        # An empty month passes every control; a mistyped year reads the same. Say so.
        print(f"warning: the billing history has no rows at all for {period}: the report is "
              "empty (is the period right, and has the billing-history sink caught up?)",
              file=sys.stderr)
    for line in controls:
        print(control_text(line))
    failed = [line for line in controls if not line.passed]
    if failed:
        raise ReportError(f"{path}: control check failed: {failed[0].text}")
    return 0


def build_report(store: BillingHistoryStore, kind: str, period: str,
                 provider: str | None) -> Report:
    """The report over the period's rows, streamed from the store."""
    where = HistoryFilter(billing_period=period)
    if kind == "summary":
        # Counted before the rows are read: on a period still receiving records the
        # control fails rather than passing on a moving total.
        history_count = store.count(where)
        return build_summary(store.iter_rows(where), period, history_count)
    if provider is not None:
        require_rows_of(store, period, provider)
        if provider != PLATFORM:
            where = HistoryFilter(billing_period=period, provider=provider)  # index, fewer rows
    if kind == "provider":
        return build_provider_statements(store.iter_rows(where), period, provider)
    return build_billing_export(store.iter_rows(where), period, provider)


def require_rows_of(store: BillingHistoryStore, period: str, provider: str) -> None:
    """A provider without rows in the period (a typo, say) is an error, not an empty
    statement that reads as "nothing due"; raised before any file is written."""
    present = sorted({provider_label(name) for name in store.providers(period)})
    if provider in present:
        return
    having = (f"its providers in {period}: {', '.join(present)}" if present
              else f"it has no rows at all for {period}")
    raise ReportError(f"--provider {provider}: the billing history has no rows of that "
                      f"provider for {period} ({having})")


def parse_period(text: str) -> str:
    if not _PERIOD.match(text):
        raise ReportError(f"--period must be a month as YYYY-MM (e.g. 2024-05), got {text!r}")
    return text


def output_path(kind: str, period: str, provider: str | None, file_format: str,
                out: Path | None) -> Path:
    """``--out`` as given, or ``<kind>-<period>[-<provider>].<format>`` (in ``--out`` when
    that is an existing folder, else in the current one)."""
    if out is not None and not out.is_dir():
        if not out.parent.is_dir():
            raise ReportError(f"--out {out}: folder {out.parent} does not exist")
        return out
    name = {"export": "billing-export"}.get(kind, kind) + f"-{period}"
    if provider is not None:
        name += "-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", provider).strip("_") or "provider")
    return (out or Path.cwd()) / f"{name}.{file_format}"


def _require_matching_suffix(file_format: str, out: Path | None) -> None:
    """``--format xlsx --out x.csv`` would write a workbook under a .csv name."""
    suffix = out.suffix.lower().lstrip(".") if out is not None and not out.is_dir() else ""
    if suffix in FORMATS and suffix != file_format:
        raise ReportError(f"--format {file_format} but --out {out} ends in .{suffix}: "
                          "make them agree")


def _format_of(out: Path | None) -> str:
    if out is not None and out.suffix.lower() == ".xlsx":
        return "xlsx"
    return "csv"

