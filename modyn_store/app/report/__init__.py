"""Reports of pipeline runs: tables (Markdown, HTML) and plots."""
