"""``dsocr web``: a Streamlit demo that talks to the HTTP API only (no model, no Triton client in its process)."""
