"""Reports from the store: the self-contained HTML report and the audit evidence pack.

``period`` parses ``FROM..TO``; ``data`` reads the store into plain values (the numbers);
``charts`` draws them as inline SVG; ``html_report`` renders the report page;
``evidence`` writes and verifies an evidence pack; ``commands`` holds the CLI.
"""
