"""The few shared pieces of the Streamlit app: cached resources and selectors (state), background runs (jobs),
widgets and charts. Streamlit is imported here and in app.py / app_pages/ only, never in clear_core."""
