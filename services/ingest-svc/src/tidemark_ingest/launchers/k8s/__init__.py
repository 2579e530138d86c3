"""The Kubernetes launcher's parts: the pure Job manifest, the API wrapper, reading a Job's state."""
