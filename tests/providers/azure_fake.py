"""Azure OpenAI: ``/openai/deployments/{id}/{embeddings,chat/completions}?api-version=…`` with
an ``api-key`` header or an Entra ID bearer token; Azure AI Studio's ``/v1/...`` routes."""

from __future__ import annotations

from .harness import Call
from .openai_fake import FakeOpenAi


class FakeAzureOpenAi(FakeOpenAi):
    deployment = "my-deployment"
    api_version = "2024-02-01"
    entra = False

    @property
    def embeddings_path(self) -> str:  # type: ignore[override]
        return f"/openai/deployments/{self.deployment}/embeddings"

    @property
    def chat_path(self) -> str:  # type: ignore[override]
        return f"/openai/deployments/{self.deployment}/chat/completions"

    def authorized(self, call: Call) -> bool:
        if self.entra:
            return call.headers.get("Authorization") == f"Bearer {self.key}" and "api-key" not in call.headers
        return call.headers.get("api-key") == self.key and "Authorization" not in call.headers

    def validate(self, call: Call) -> str | None:
        if call.query.get("api-version") != self.api_version:
            return "missing api-version"
        if "model" in call.json:
            return "Azure takes the model from the deployment"
        return super().validate(call)
