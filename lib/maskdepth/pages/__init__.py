"""The HTML pages: each run's index.html, the comparison of runs (`maskdepth report`) and the HTML
metric tables. The modules gather the values; the jinja2 templates in templates/ (package data)
write the HTML.

Modules: comparison, html, metric_html, notebook_html, report, runpage.
"""
