"""The sidecar's own Elasticsearch client (its credentials, not a caller's): hidden indices,
mappings it writes, node facts."""

from __future__ import annotations

from elasticsearch import AsyncElasticsearch

from ..config import Config


def sidecar_client(config: Config) -> AsyncElasticsearch:
    kwargs: dict = {"request_timeout": 30, "retry_on_timeout": True, "max_retries": 2}
    if config.es_api_key:
        kwargs["api_key"] = config.es_api_key
    elif config.es_username:
        kwargs["basic_auth"] = (config.es_username, config.es_password or "")
    if config.es_url.startswith("https"):
        kwargs["verify_certs"] = config.es_verify_certs
        if config.es_ca_file:
            kwargs["ca_certs"] = config.es_ca_file
    return AsyncElasticsearch(config.es_url, **kwargs)
