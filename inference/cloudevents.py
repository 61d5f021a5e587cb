"""CloudEvents in binary mode, as KServe's payload logger sends them: the event's attributes in ``ce-`` headers."""

REQUEST_TYPE = "org.kubeflow.serving.inference.request"  # KServe's logger: the request, before the model sees it
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


def ce_headers(event_id: str, event_type: str, source: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The headers of a binary-mode CloudEvent (spec 1.0) with a JSON body; ``extra``: extension headers."""
    headers = {"content-type": "application/json", "ce-specversion": "1.0", "ce-id": event_id, "ce-type": event_type}
    return {**headers, "ce-source": source, **(extra or {})}
