"""The HTML pages: each run's index.html, the comparison of runs (`maskdepth report`) and the HTML
metric tables.

Modules: metric_html, report, runpage.
"""
