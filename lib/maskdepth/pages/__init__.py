"""The HTML pages: each run's index.html, the comparison of runs (`maskdepth report`) and the HTML
metric tables.

Modules: comparison, html, metric_html, notebook_html, report, runpage.
"""
