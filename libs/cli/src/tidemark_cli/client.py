"""A small synchronous client of the Tidemark HTTP API, used by the CLI and the demo."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


class ApiError(Exception):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or "request failed"
        super().__init__(f"HTTP {status}: {detail}")


def default_token(home: Path | None = None) -> str | None:
    token = os.environ.get("TIDEMARK_API_TOKEN")
    if token:
        return token
    path = (home or Path(os.environ.get("TIDEMARK_HOME", ".tidemark"))) / "token"
    return path.read_text().strip() if path.is_file() else None


class Client:
    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(0, {"detail": f"cannot reach {self._http.base_url}: {exc}"}) from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500]}
            raise ApiError(response.status_code, problem)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, params: dict[str, str] | None = None) -> Any:
        return self.request("POST", path, json=json, params=params)

    def patch(self, path: str, json: Any, params: dict[str, str] | None = None) -> Any:
        return self.request("PATCH", path, json=json, params=params)

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def resolve(self, collection: str, id_or_name: str) -> dict[str, Any]:
        """Find an item of ``/v1/<collection>`` by id or by name."""
        try:
            return dict(self.get(f"/v1/{collection}/{uuid.UUID(id_or_name)}"))
        except ValueError:
            pass
        for item in self.get(f"/v1/{collection}"):
            if item.get("name") == id_or_name:
                return dict(item)
        raise ApiError(404, {"detail": f"no {collection[:-1]} named {id_or_name!r}"})
