"""A small synchronous wrapper of the official client for the calls the launcher makes, on plain
JSON dicts. Every method blocks: the launcher calls them in a thread (``asyncio.to_thread``).

Status codes are classified once here: 409 on create and 404 on read or delete are answers, not
errors; 410 on a watch is :class:`WatchExpired` (re-list, then watch again); 401/403 and other 4xx are
configuration errors; 429, 5xx and connection failures are transient.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tidemark.errors import ConfigError, TransientError
from tidemark_ingest.settings import KubernetesSettings

Obj = dict[str, Any]


class WatchExpired(Exception):  # noqa: N818 - the API's own name for it is "Gone"
    """The watch's resourceVersion is too old (410 Gone): list again and watch from the new one."""


def _classified(exc: Exception, doing: str) -> Exception:
    if isinstance(exc, ApiException):
        status = exc.status or 0
        if status in (401, 403):
            return ConfigError(f"Kubernetes API refused to {doing} ({status} {exc.reason}): check the service "
                               f"account's RBAC in the namespace")
        if status == 429 or status >= 500 or status == 0:
            return TransientError(f"Kubernetes API could not {doing} ({status} {exc.reason})")
        return ConfigError(f"Kubernetes API rejected a request to {doing} ({status} {exc.reason}): {exc.body}")
    return TransientError(f"Kubernetes API unreachable while trying to {doing}: {type(exc).__name__}")


def _json(response: Any) -> Obj:
    data: Obj = json.loads(response.data)
    return data


class KubeJobs:
    """Jobs and pods in one namespace, through ``api_client`` (tests pass one pointed at a fake server)."""

    def __init__(self, api_client: client.ApiClient, namespace: str, request_timeout: float = 30.0) -> None:
        self.namespace = namespace
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._timeout = request_timeout
        self._watch: watch.Watch | None = None

    @classmethod
    def from_settings(cls, settings: KubernetesSettings) -> KubeJobs:
        configuration = client.Configuration()
        try:
            if settings.in_cluster:
                config.load_incluster_config(client_configuration=configuration)
            else:
                path = str(settings.kubeconfig.expanduser()) if settings.kubeconfig else None
                config.load_kube_config(config_file=path, client_configuration=configuration)
        except config.ConfigException as exc:
            raise ConfigError(f"kubernetes: cannot load the API's address and credentials ({exc})") from exc
        return cls(client.ApiClient(configuration), settings.job_namespace())

    def create_job(self, body: Obj) -> Obj | None:
        """The created Job, or None when one of that name exists already (409)."""
        try:
            return _json(self._batch.create_namespaced_job(self.namespace, body, _preload_content=False,
                                                           _request_timeout=self._timeout))
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise _classified(exc, "create a Job") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise _classified(exc, "create a Job") from exc

    def read_job(self, name: str) -> Obj | None:
        try:
            return _json(self._batch.read_namespaced_job(name, self.namespace, _preload_content=False,
                                                         _request_timeout=self._timeout))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _classified(exc, "read a Job") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise _classified(exc, "read a Job") from exc

    def list_jobs(self, selector: str) -> tuple[list[Obj], str]:
        """The Jobs matching ``selector`` and the list's resourceVersion (where a watch starts)."""
        try:
            listed = _json(self._batch.list_namespaced_job(self.namespace, label_selector=selector,
                                                           _preload_content=False, _request_timeout=self._timeout))
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise _classified(exc, "list Jobs") from exc
        return list(listed.get("items") or []), str((listed.get("metadata") or {}).get("resourceVersion", ""))

    def watch_jobs(self, selector: str, resource_version: str, seconds: int) -> Iterator[tuple[str, Obj, str]]:
        """Job events after ``resource_version`` for up to ``seconds``: (type, Job, its resourceVersion).
        Raises :class:`WatchExpired` on 410 Gone."""
        stream = watch.Watch()
        self._watch = stream
        try:
            for event in stream.stream(self._batch.list_namespaced_job, self.namespace, label_selector=selector,
                                       resource_version=resource_version, timeout_seconds=seconds,
                                       allow_watch_bookmarks=True, _request_timeout=(self._timeout, seconds + 5)):
                raw: Obj = event["raw_object"]
                rv = str((raw.get("metadata") or {}).get("resourceVersion", resource_version))
                yield event["type"], raw, rv
        except ApiException as exc:
            if exc.status == 410:
                raise WatchExpired(str(exc.reason)) from exc
            raise _classified(exc, "watch Jobs") from exc
        except urllib3.exceptions.HTTPError as exc:
            if stream._stop:
                return
            raise _classified(exc, "watch Jobs") from exc
        finally:
            self._watch = None

    def stop_watch(self) -> None:
        """Interrupt a running :meth:`watch_jobs` from another thread (shutting its socket)."""
        if self._watch is not None:
            self._watch.stop()

    def delete_job(self, name: str) -> bool:
        """Delete the Job and, first, its pods (foreground propagation; each pod gets its own
        terminationGracePeriodSeconds). False when no such Job exists."""
        try:
            self._batch.delete_namespaced_job(name, self.namespace, propagation_policy="Foreground",
                                              _preload_content=False, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise _classified(exc, "delete a Job") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise _classified(exc, "delete a Job") from exc
        return True

    def list_pods(self, selector: str, field_selector: str | None = None) -> list[Obj]:
        try:
            listed = _json(self._core.list_namespaced_pod(self.namespace, label_selector=selector,
                                                          field_selector=field_selector, _preload_content=False,
                                                          _request_timeout=self._timeout))
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise _classified(exc, "list pods") from exc
        return list(listed.get("items") or [])
