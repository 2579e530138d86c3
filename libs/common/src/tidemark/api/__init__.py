"""The FastAPI kit every service uses: app factory, problems, auth, health, metrics."""
