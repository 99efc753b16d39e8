"""pytest: the page scripts (views/) and the entry script run Streamlit at import, so doctest collection skips them."""

collect_ignore = ["app.py", "views"]
