"""Reports read from the billing history: the monthly summary, provider statements and
the billing export, as CSV or XLSX (docs/reports.md)."""
