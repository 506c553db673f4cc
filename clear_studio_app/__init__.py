"""The installed home of the Streamlit app.

In the source tree this package holds nothing else: the app stays at the repository root (app.py, app_pages/, ui/,
.streamlit/, sample_data/), where `streamlit run app.py` and `make demo` run it in place. Building a wheel copies
those files into this package (setup.py), so that `clear-studio app` finds them in an installed package too
(clear_core/commands/serve.py looks here first, then next to this folder).
"""
