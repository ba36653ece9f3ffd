"""Reports read from the billing history: summary, provider statements, billing export (CSV/XLSX)."""
